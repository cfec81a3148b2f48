//! Clients' ICE outcomes per bridge (issue 15): the web app reports how each peer connection
//! went (`ice_report`: connected, with the selected pair's local candidate type, or failed);
//! [`crate::room::media::ice_report`] checks and counts it, here the counts are kept per bridge
//! over a sliding window, and [`publish`] sends each bridge its counts (control `ice_stats`),
//! which the bridge puts in the load report the operator reads: the operator tells a bridge
//! that clients cannot reach, and a pool whose clients mostly go through TURN.
//!
//! Bounded: a participant reports at most once per `media` message it was sent (see
//! [`MAX_DUE`]), only for the bridge it is on, so counts grow with real peer connections and
//! not with what a client sends; the windows are one fixed array per bridge with reports in
//! the last [`WINDOW`], and only registered bridges are ever counted.
use std::collections::HashMap;
use std::time::{Duration, Instant};

use convene_proto::client::{CandidateType, IceOutcome};
use convene_proto::control::{IceCounts, ToBridge};
use convene_proto::load::ICE_WINDOW_SECS;

use crate::state::{App, lock};

/// How far back the counts go.
pub const WINDOW: Duration = Duration::from_secs(ICE_WINDOW_SECS);
/// The window slides by one bucket at a time.
pub const BUCKET: Duration = Duration::from_secs(60);
const BUCKETS: usize = (ICE_WINDOW_SECS / 60) as usize;
/// How often each bridge is sent its counts.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(5);
/// `media` messages a participant may still report on: one for its peer connection, and one
/// more for a migration that overtakes the report. More `media` messages do not add more.
pub const MAX_DUE: u8 = 2;

/// The `candidate` label of a report.
pub fn candidate_label(outcome: IceOutcome, candidate: Option<CandidateType>) -> &'static str {
    match (outcome, candidate) {
        (IceOutcome::Failed, _) => "none",
        (IceOutcome::Connected, Some(c)) => c.as_str(),
        (IceOutcome::Connected, None) => "unknown",
    }
}

/// Every `(outcome, candidate)` label pair a report can have, so each bridge's series exist
/// from its registration at 0 (an `increase()` over a series born at 1 sees nothing).
pub const LABELS: [(&str, &str); 6] = [
    ("connected", "host"),
    ("connected", "srflx"),
    ("connected", "prflx"),
    ("connected", "relay"),
    ("connected", "unknown"),
    ("failed", "none"),
];

/// One bridge's counts by minute: a ring of [`BUCKETS`] buckets, each the counts of one minute
/// (numbered from the stats' origin) it was last used for.
#[derive(Clone, Debug, Default)]
struct Window {
    buckets: [(u64, IceCounts); BUCKETS],
}

impl Window {
    fn record(&mut self, minute: u64, add: IceCounts) {
        let b = &mut self.buckets[(minute % BUCKETS as u64) as usize];
        if b.0 != minute {
            *b = (minute, IceCounts::default());
        }
        b.1 = b.1 + add;
    }

    /// The counts of the minutes in the window ending at `minute`.
    fn total(&self, minute: u64) -> IceCounts {
        self.buckets
            .iter()
            .filter(|(m, _)| *m <= minute && minute - *m < BUCKETS as u64)
            .fold(IceCounts::default(), |sum, (_, c)| sum + *c)
    }
}

/// The counts of every bridge with reports in the window.
#[derive(Debug)]
pub struct IceStats {
    origin: Instant,
    bridges: HashMap<String, Window>,
}

impl IceStats {
    /// Minutes are counted from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin, bridges: HashMap::new() }
    }

    fn minute(&self, now: Instant) -> u64 {
        // Minute 0 is reserved for "never used", so a fresh bucket is never in a window.
        now.saturating_duration_since(self.origin).as_secs() / BUCKET.as_secs() + 1
    }

    /// Count one report for `bridge` at `now`.
    pub fn record(
        &mut self,
        bridge: &str,
        outcome: IceOutcome,
        candidate: Option<CandidateType>,
        now: Instant,
    ) {
        let add = match outcome {
            IceOutcome::Connected => IceCounts {
                connected: 1,
                relayed: u64::from(candidate == Some(CandidateType::Relay)),
                failed: 0,
            },
            IceOutcome::Failed => IceCounts { failed: 1, ..IceCounts::default() },
        };
        let minute = self.minute(now);
        match self.bridges.get_mut(bridge) {
            Some(w) => w.record(minute, add),
            None => {
                let mut w = Window::default();
                w.record(minute, add);
                self.bridges.insert(bridge.to_string(), w);
            }
        }
    }

    /// `bridge`'s counts over the window ending at `now`.
    pub fn counts(&self, bridge: &str, now: Instant) -> IceCounts {
        let minute = self.minute(now);
        self.bridges.get(bridge).map(|w| w.total(minute)).unwrap_or_default()
    }

    /// Forget the bridges without reports in the window ending at `now`.
    pub fn prune(&mut self, now: Instant) {
        let minute = self.minute(now);
        self.bridges.retain(|_, w| w.total(minute) != IceCounts::default());
    }

    /// Bridges with reports in the window (after the last [`IceStats::prune`]).
    pub fn len(&self) -> usize {
        self.bridges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bridges.is_empty()
    }
}

/// Send every registered bridge its counts as of `now` (zero counts too, so they decay on
/// the bridge as they do here).
pub fn publish(app: &App, now: Instant) {
    let conns: Vec<_> =
        app.lock().bridges.values().filter_map(|b| Some((b.id.clone(), b.conn.clone()?))).collect();
    let sends: Vec<_> = {
        let mut stats = lock(&app.ice);
        stats.prune(now);
        conns.into_iter().map(|(id, conn)| (conn, stats.counts(&id, now))).collect()
    };
    for (conn, ice) in sends {
        conn.send(&ToBridge::IceStats { ice });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONNECTED: IceOutcome = IceOutcome::Connected;
    const FAILED: IceOutcome = IceOutcome::Failed;

    #[test]
    fn counts_by_outcome_and_relay() {
        let t0 = Instant::now();
        let mut s = IceStats::new(t0);
        s.record("b1", CONNECTED, Some(CandidateType::Host), t0);
        s.record("b1", CONNECTED, Some(CandidateType::Relay), t0);
        s.record("b1", CONNECTED, None, t0);
        s.record("b1", FAILED, Some(CandidateType::Relay), t0);
        s.record("b2", FAILED, None, t0);
        assert_eq!(s.counts("b1", t0), IceCounts { connected: 3, relayed: 1, failed: 1 });
        assert_eq!(s.counts("b2", t0), IceCounts { connected: 0, relayed: 0, failed: 1 });
        assert_eq!(s.counts("b3", t0), IceCounts::default());
        assert_eq!(candidate_label(FAILED, Some(CandidateType::Relay)), "none");
        assert_eq!(candidate_label(CONNECTED, None), "unknown");
        assert_eq!(candidate_label(CONNECTED, Some(CandidateType::Prflx)), "prflx");
    }

    #[test]
    fn the_window_slides_by_the_minute_and_forgets_what_it_left() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut s = IceStats::new(t0);
        s.record("b1", FAILED, None, at(0));
        s.record("b1", FAILED, None, at(30));
        s.record("b1", CONNECTED, None, at(5 * 60));
        assert_eq!(s.counts("b1", at(9 * 60 + 59)), IceCounts { connected: 1, relayed: 0, failed: 2 });
        // Minute 0 left the window at 10 min; minute 5 is still in it.
        assert_eq!(s.counts("b1", at(10 * 60)), IceCounts { connected: 1, relayed: 0, failed: 0 });
        // A bucket reused after a full turn of the ring starts from zero.
        s.record("b1", FAILED, None, at(20 * 60 + 1));
        assert_eq!(s.counts("b1", at(20 * 60 + 2)), IceCounts { connected: 0, relayed: 0, failed: 1 });
        s.prune(at(20 * 60 + 2));
        assert_eq!(s.len(), 1);
        s.prune(at(31 * 60));
        assert!(s.is_empty(), "a bridge without reports in the window is forgotten");
        // Time before the origin (a clock that cannot go back) counts as the origin.
        let mut s = IceStats::new(at(100));
        s.record("b", CONNECTED, None, t0);
        assert_eq!(s.counts("b", at(100)).connected, 1);
    }

    #[test]
    fn memory_is_one_ring_per_bridge_however_many_reports() {
        let t0 = Instant::now();
        let mut s = IceStats::new(t0);
        for i in 0..100_000u64 {
            s.record(
                "b1",
                if i % 2 == 0 { CONNECTED } else { FAILED },
                None,
                t0 + Duration::from_millis(i * 30),
            );
        }
        assert_eq!(s.len(), 1);
        let end = t0 + Duration::from_millis(100_000 * 30);
        // The window ending at 50:00 holds minutes 41:00 to 50:00 (the current minute has
        // just begun): 9 minutes of reports 30 ms apart, half of them failures.
        let c = s.counts("b1", end);
        assert_eq!((c.connected, c.failed), (9_000, 9_000));
    }
}
