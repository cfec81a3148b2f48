//! When the bridge may ask a sender for a keyframe on one layer. A keyframe is costly for the
//! sender and every receiver of the layer, so requests are spaced by a minimum gap — unless the
//! last one has been answered already: a receiver that connects just after a keyframe went out
//! would otherwise wait out the whole gap for its first picture (three people joining together
//! connect within a few hundred ms of each other). An answered request still holds the next
//! one back `ANSWERED_GAP`, so a crowd joining at once makes at most that many keyframes a
//! second, and an unanswered one (lost PLI, lost keyframe) is repeated after the full gap.
use std::time::{Duration, Instant};

use str0m::media::Rid;

/// Least time between a request a keyframe has answered and the next request.
pub const ANSWERED_GAP: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
pub struct KeyframeAsks {
    /// Per layer: when it was last asked, and whether a keyframe came since.
    last: Vec<(Option<Rid>, Instant, bool)>,
}

impl KeyframeAsks {
    /// True (and recorded) if a keyframe request for `rid` is allowed now.
    pub fn may_ask(&mut self, rid: Option<Rid>, now: Instant, min_gap: Duration) -> bool {
        let Some((_, at, answered)) = self.last.iter_mut().find(|(r, _, _)| *r == rid) else {
            self.last.push((rid, now, false));
            return true;
        };
        let since = now.saturating_duration_since(*at);
        let gap = if *answered { ANSWERED_GAP.min(min_gap) } else { min_gap };
        if since < gap {
            return false;
        }
        *at = now;
        *answered = false;
        true
    }

    /// A keyframe arrived on `rid`: whatever was asked for it is answered.
    pub fn keyframe(&mut self, rid: Option<Rid>) {
        if let Some((_, _, answered)) = self.last.iter_mut().find(|(r, _, _)| *r == rid) {
            *answered = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: Duration = Duration::from_millis(300);

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn unanswered_requests_wait_the_full_gap() {
        let t0 = Instant::now();
        let mut k = KeyframeAsks::default();
        assert!(k.may_ask(None, t0, GAP));
        assert!(!k.may_ask(None, ms(t0, 150), GAP), "no keyframe yet: the first request stands");
        assert!(!k.may_ask(None, ms(t0, 299), GAP));
        assert!(k.may_ask(None, ms(t0, 300), GAP), "lost request or keyframe: asked again");
    }

    #[test]
    fn an_answered_request_frees_the_next_after_the_short_gap() {
        let t0 = Instant::now();
        let mut k = KeyframeAsks::default();
        assert!(k.may_ask(None, t0, GAP));
        k.keyframe(None);
        assert!(!k.may_ask(None, ms(t0, 99), GAP), "a crowd still gets few keyframes");
        assert!(k.may_ask(None, ms(t0, 100), GAP), "answered: a new receiver need not wait 300 ms");
        assert!(!k.may_ask(None, ms(t0, 250), GAP), "and that one is unanswered again");
    }

    #[test]
    fn layers_are_apart_and_a_keyframe_before_any_request_changes_nothing() {
        let t0 = Instant::now();
        let mut k = KeyframeAsks::default();
        let (f, h) = (Some(Rid::from("f")), Some(Rid::from("h")));
        k.keyframe(f);
        assert!(k.may_ask(f, t0, GAP));
        assert!(k.may_ask(h, t0, GAP), "another layer has its own limit");
        k.keyframe(h);
        assert!(!k.may_ask(f, ms(t0, 150), GAP), "h's keyframe does not answer f");
        assert!(k.may_ask(h, ms(t0, 150), GAP));
    }

    #[test]
    fn a_short_configured_gap_is_not_lengthened() {
        let t0 = Instant::now();
        let mut k = KeyframeAsks::default();
        let gap = Duration::from_millis(50);
        assert!(k.may_ask(None, t0, gap));
        k.keyframe(None);
        assert!(k.may_ask(None, ms(t0, 50), gap));
    }
}
