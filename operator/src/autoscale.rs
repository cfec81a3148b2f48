//! The bridge autoscaler's decision, as a pure function of the pool's live load, its targets
//! and how long the load has been over or under them. Scale up promptly to what the load needs;
//! scale down one bridge at a time, only after the load stayed low for the stabilisation window;
//! never scale down while a bridge's load is unknown.

use std::time::Duration;

/// One bridge's load as scraped; `None` fields mean the bridge did not answer (unknown, not idle).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BridgeLoad {
    pub endpoints: Option<u64>,
    pub conferences: Option<u64>,
    pub mbps: Option<f64>,
    pub stress: Option<f64>,
    /// The bridge's drain, as it reports it (None: not draining).
    pub drain: Option<convene_proto::load::Drain>,
    /// Clients' ICE outcomes with the bridge, as signaling counted them (None: not reported).
    pub ice: Option<convene_proto::load::IceCounts>,
}

impl BridgeLoad {
    pub fn known(&self) -> bool {
        self.endpoints.is_some() && self.mbps.is_some()
    }
}

/// What a pool's members and their load are called in its decisions (and so in its Events):
/// the autoscaler and the drain logic serve bridge and recorder pools alike.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nouns {
    pub member: &'static str,
    pub load: &'static str,
    /// The load has a bitrate worth saying.
    pub bitrate: bool,
}

impl Nouns {
    pub const BRIDGES: Nouns = Nouns { member: "bridge", load: "endpoint", bitrate: true };
    pub const RECORDERS: Nouns = Nouns { member: "recorder", load: "recording", bitrate: false };
}

/// What the pool asks of its bridges.
#[derive(Clone, Debug, PartialEq)]
pub struct Targets {
    pub nouns: Nouns,
    pub min: i32,
    pub max: i32,
    pub endpoints_per_bridge: i32,
    pub mbps_per_bridge: i32,
    pub headroom_percent: i32,
    pub scale_up_window: Duration,
    pub scale_down_window: Duration,
}

/// Since when the load has wanted more (or fewer) bridges; kept between reconciles.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Windows {
    pub over_since: Option<Duration>,
    pub under_since: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Bridges the pool should have.
    pub desired: i32,
    /// Bridges the load needs right now, before stabilisation.
    pub needed: i32,
    /// Why, in words an admin reads in the status and Events.
    pub reason: String,
}

/// Bridges needed for `load` with `t`'s headroom spare.
pub fn needed(loads: &[BridgeLoad], t: &Targets) -> i32 {
    let endpoints: u64 = loads.iter().filter_map(|l| l.endpoints).sum();
    let mbps: f64 = loads.iter().filter_map(|l| l.mbps).sum();
    let usable = 1.0 - f64::from(t.headroom_percent.clamp(0, 90)) / 100.0;
    let per_endpoints = (f64::from(t.endpoints_per_bridge.max(1)) * usable).max(1.0);
    let per_mbps = (f64::from(t.mbps_per_bridge.max(1)) * usable).max(1.0);
    let by_endpoints = (endpoints as f64 / per_endpoints).ceil() as i32;
    let by_mbps = (mbps / per_mbps).ceil() as i32;
    by_endpoints.max(by_mbps).clamp(t.min, t.max.max(t.min))
}

/// Decide the pool's size at time `now` (monotonic, any origin) from `current` bridges.
pub fn decide(current: i32, loads: &[BridgeLoad], t: &Targets, w: &mut Windows, now: Duration) -> Decision {
    let endpoints: u64 = loads.iter().filter_map(|l| l.endpoints).sum();
    let mbps: f64 = loads.iter().filter_map(|l| l.mbps).sum();
    let unknown = loads.iter().filter(|l| !l.known()).count();
    let need = needed(loads, t);
    let Nouns { member, load: unit, bitrate } = t.nouns;
    let rate = if bitrate { format!(", {mbps:.0} Mbps") } else { String::new() };
    let load = format!("{endpoints} {unit}(s){rate} on {} {member}(s)", loads.len());
    let keep =
        |reason: String| Decision { desired: current.clamp(t.min, t.max.max(t.min)), needed: need, reason };

    if current < t.min || current > t.max.max(t.min) {
        w.over_since = None;
        w.under_since = None;
        let desired = current.clamp(t.min, t.max.max(t.min));
        return Decision {
            desired,
            needed: need,
            reason: format!("kept within min {} / max {}", t.min, t.max),
        };
    }
    if need > current {
        w.under_since = None;
        let since = *w.over_since.get_or_insert(now);
        if now.saturating_sub(since) >= t.scale_up_window {
            w.over_since = None;
            return Decision {
                desired: need,
                needed: need,
                reason: format!("{load} needs {need} {member}(s) with {}% headroom", t.headroom_percent),
            };
        }
        return keep(format!("{load} needs {need} {member}(s); waiting out the scale-up window"));
    }
    w.over_since = None;
    if need < current {
        if unknown > 0 {
            w.under_since = None;
            return keep(format!(
                "{unknown} {member}(s) did not report load; not scaling down on unknown load"
            ));
        }
        let since = *w.under_since.get_or_insert(now);
        if now.saturating_sub(since) >= t.scale_down_window {
            // One bridge at a time, and the window starts again after each step.
            w.under_since = Some(now);
            return Decision {
                desired: current - 1,
                needed: need,
                reason: format!(
                    "{load} fits in {need} {member}(s) for {}s; removing one",
                    t.scale_down_window.as_secs()
                ),
            };
        }
        return keep(format!("{load} fits in {need} {member}(s); waiting out the scale-down window"));
    }
    w.under_since = None;
    keep(format!("{load}: {current} {member}(s) is right"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        Targets {
            nouns: Nouns::BRIDGES,
            min: 1,
            max: 6,
            endpoints_per_bridge: 100,
            mbps_per_bridge: 1000,
            headroom_percent: 30,
            scale_up_window: Duration::from_secs(30),
            scale_down_window: Duration::from_secs(300),
        }
    }

    fn load(endpoints: u64, mbps: f64) -> BridgeLoad {
        BridgeLoad {
            endpoints: Some(endpoints),
            conferences: Some(1),
            mbps: Some(mbps),
            stress: Some(0.1),
            drain: None,
            ice: None,
        }
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// Replays a trace of (seconds, per-bridge loads) and returns the size after each step.
    fn replay(start: i32, trace: &[(u64, Vec<BridgeLoad>)]) -> Vec<i32> {
        let mut w = Windows::default();
        let mut current = start;
        trace
            .iter()
            .map(|(t, loads)| {
                current = decide(current, loads, &targets(), &mut w, s(*t)).desired;
                current
            })
            .collect()
    }

    #[test]
    fn headroom_is_kept_spare() {
        // 70 usable endpoints per bridge (100 with 30% spare): 140 fit two, 141 need three.
        assert_eq!(needed(&[load(140, 10.0)], &targets()), 2);
        assert_eq!(needed(&[load(141, 10.0)], &targets()), 3);
        // Bitrate can be what binds: 1500 Mbps needs 3 bridges of 700 usable.
        assert_eq!(needed(&[load(10, 1500.0)], &targets()), 3);
        assert_eq!(needed(&[load(0, 0.0)], &targets()), 1, "never below min");
        assert_eq!(needed(&[load(10_000, 0.0)], &targets()), 6, "never above max");
    }

    #[test]
    fn sustained_load_scales_up_straight_to_what_it_needs_after_the_window() {
        let busy = vec![load(150, 100.0), load(150, 100.0)]; // 300 endpoints -> 5 bridges
        let sizes = replay(2, &[(0, busy.clone()), (15, busy.clone()), (30, busy.clone()), (45, busy)]);
        assert_eq!(sizes, vec![2, 2, 5, 5]);
    }

    #[test]
    fn a_spike_shorter_than_the_window_does_not_scale() {
        let calm = vec![load(50, 50.0)];
        let spike = vec![load(500, 50.0)];
        let sizes =
            replay(1, &[(0, calm.clone()), (10, spike.clone()), (20, spike), (35, calm.clone()), (80, calm)]);
        assert_eq!(sizes, vec![1, 1, 1, 1, 1]);
    }

    #[test]
    fn scale_down_waits_the_window_and_goes_one_bridge_at_a_time() {
        let idle = vec![load(5, 1.0), load(0, 0.0), load(0, 0.0), load(0, 0.0)];
        let trace: Vec<(u64, Vec<BridgeLoad>)> =
            [0, 100, 299, 300, 400, 600, 900, 1200].iter().map(|t| (*t, idle.clone())).collect();
        assert_eq!(replay(4, &trace), vec![4, 4, 4, 3, 3, 2, 1, 1]);
    }

    #[test]
    fn flapping_load_never_scales_down() {
        // Low for 200 s, high for 20 s, low again: the down window restarts each time.
        let low = vec![load(10, 5.0), load(10, 5.0), load(10, 5.0)];
        let high = vec![load(100, 5.0), load(100, 5.0), load(100, 5.0)];
        let mut trace = vec![];
        for cycle in 0..5u64 {
            let base = cycle * 220;
            trace.push((base, low.clone()));
            trace.push((base + 200, low.clone()));
            trace.push((base + 210, high.clone()));
        }
        assert!(replay(3, &trace).iter().all(|n| *n >= 3), "{:?}", replay(3, &trace));
    }

    #[test]
    fn unknown_load_blocks_scale_down_but_not_scale_up() {
        let mut w = Windows::default();
        let with_unknown = vec![load(0, 0.0), BridgeLoad::default(), load(0, 0.0)];
        for t in [0, 400, 800] {
            let d = decide(3, &with_unknown, &targets(), &mut w, s(t));
            assert_eq!(d.desired, 3);
            assert!(d.reason.contains("did not report"), "{}", d.reason);
        }
        let busy_and_unknown = vec![load(300, 0.0), BridgeLoad::default()];
        let mut w = Windows::default();
        decide(2, &busy_and_unknown, &targets(), &mut w, s(0));
        assert_eq!(decide(2, &busy_and_unknown, &targets(), &mut w, s(30)).desired, 5);
    }

    #[test]
    fn limits_changed_under_the_pool_are_applied_at_once() {
        let mut w = Windows::default();
        let d = decide(9, &[load(0, 0.0)], &targets(), &mut w, s(0));
        assert_eq!(d.desired, 6);
        let d = decide(0, &[], &targets(), &mut w, s(0));
        assert_eq!(d.desired, 1);
    }
}
