//! Reactions (rate limited per participant, shown to everyone) and ending a meeting for all.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::protocol::ServerMsg;
use crate::room::{After, Room, remove};
use crate::state::App;
use convene_proto::client::ReactionKind;

/// A token bucket per participant: bursts of [`BURST`], then one reaction per [`REFILL_MS`].
pub const BURST: f64 = 5.0;
pub const REFILL_MS: f64 = 400.0;

#[derive(Default)]
pub struct Limits(HashMap<String, (f64, Instant)>);

impl Limits {
    /// Whether `pid` may react at `now` (takes a token when it may).
    pub fn allow(&mut self, pid: &str, now: Instant) -> bool {
        let (tokens, at) = self.0.entry(pid.to_string()).or_insert((BURST, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() * 1000.0 / REFILL_MS;
        *tokens = (*tokens + refill).min(BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Excess reactions are dropped silently (a flood of them is not worth an error each).
pub fn send(r: &mut Room, pid: &str, reaction: ReactionKind) {
    r.reactions.0.retain(|k, _| r.participants.contains_key(k));
    if r.reactions.allow(pid, Instant::now()) {
        r.broadcast(&ServerMsg::Reaction { from: pid.to_string(), reaction }, None);
    }
}

/// Everyone (the moderator last) is told, then removed; `kicked` closes each connection, and
/// the emptied room's conference is expired on its bridge.
pub fn end_meeting(app: &Arc<App>, r: &mut Room, by: String) -> After {
    for p in r.participants.values() {
        let _ = p.tx.send(ServerMsg::MeetingEnded { by: by.clone() });
        let _ = p.tx.send(ServerMsg::Kicked { by: by.clone() });
    }
    let mut last = None;
    for pid in r.participants.keys().cloned().collect::<Vec<_>>() {
        last = Some(remove(app, r, &pid));
    }
    last.map_or(After::Nothing, After::Left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_one_per_refill() {
        let mut l = Limits::default();
        let t0 = Instant::now();
        assert_eq!((0..8).filter(|_| l.allow("a", t0)).count(), 5, "a burst of 5");
        assert!(l.allow("b", t0), "per participant");
        assert!(!l.allow("a", t0 + Duration::from_millis(200)));
        assert!(l.allow("a", t0 + Duration::from_millis(450)));
        assert!(!l.allow("a", t0 + Duration::from_millis(500)));
    }
}
