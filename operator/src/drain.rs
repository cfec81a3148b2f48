//! Drain before remove, as pure functions of the pool's bridges: which bridge to drain, when a
//! draining bridge may go, and how a new pod template rolls out one bridge at a time. No pod
//! carrying calls is removed: a bridge goes when it is empty, when it stopped answering twice
//! in a row, or once signaling had the bridge's own drain deadline plus a grace period to move
//! its calls.

use crate::autoscale::Nouns;
use convene_proto::load::Drain;
use std::time::Duration;

/// After the drain deadline signaling moves the remaining endpoints (the bridge told it the
/// deadline); this is how long that may take before the bridge is removed regardless.
pub const MIGRATION_GRACE: Duration = Duration::from_secs(30);

/// One bridge pod of the pool, as the drain logic sees it. The drain deadline is the bridge's
/// own (from its load report): the operator keeps no clock of its own for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub ordinal: i32,
    pub name: String,
    /// None: the bridge did not answer the scrape.
    pub endpoints: Option<u64>,
    /// The drain the bridge reports (elapsed and deadline, on its clock); None when it is not
    /// draining or did not answer.
    pub drain: Option<Drain>,
    /// The operator asked it to drain (its pod is annotated), so a silent bridge is waited for
    /// rather than asked again.
    pub drain_requested: bool,
    /// The pod runs (scheduled, with an address); one that never ran carries no calls.
    pub running: bool,
    /// It answered the previous scrape. Silence twice in a row means it is down (signaling
    /// moves the calls of a bridge that goes quiet); silence once may be a slow scrape.
    pub answered_before: bool,
    /// The pod is Ready.
    pub ready: bool,
    /// The pod runs the StatefulSet's current template.
    pub current: bool,
}

/// Where a draining bridge stands.
#[derive(Clone, Debug, PartialEq)]
enum Drained {
    /// It may be removed (why).
    Done(String),
    /// Keep it (why).
    Waiting(String),
    NotStarted,
}

fn drained(b: &Member, nouns: Nouns) -> Drained {
    let unit = nouns.load;
    if !b.running {
        return Drained::Done(format!("{} is not running", b.name));
    }
    let Some(endpoints) = b.endpoints else {
        if !b.answered_before {
            return Drained::Done(format!("{} does not answer", b.name));
        }
        return match b.drain_requested {
            true => Drained::Waiting(format!("draining {}: not answering for now", b.name)),
            false => Drained::NotStarted,
        };
    };
    let Some(drain) = b.drain else { return Drained::NotStarted };
    let overdue = Duration::from_millis(drain.overdue_ms());
    match endpoints {
        0 => Drained::Done(format!("{} drained", b.name)),
        e if overdue >= MIGRATION_GRACE => Drained::Done(format!(
            "{} still had {e} {unit}(s) {}s after its drain deadline",
            b.name,
            MIGRATION_GRACE.as_secs()
        )),
        e if drain.remaining_ms() == 0 => {
            Drained::Waiting(format!("{}: drain deadline passed, signaling is moving {e} {unit}(s)", b.name))
        }
        e => Drained::Waiting(format!(
            "draining {}: {e} {unit}(s) left, {}s to the deadline",
            b.name,
            drain.remaining_ms() / 1000
        )),
    }
}

/// The next step towards `desired` bridges from `running` (the StatefulSet's replicas).
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Run this many bridges (scale up, or shrink once the last bridges are done).
    Run(i32, String),
    /// Drain this bridge first (POST /drain): it takes no new conferences, signaling moves the
    /// remaining participants at the deadline.
    Drain(String),
    /// Delete this pod so the StatefulSet recreates it from the new template (it is drained).
    Replace(String, String),
    /// Keep things as they are while a bridge drains or starts.
    Wait(String),
}

/// Scale-down removes the highest ordinals only after they drained. Bridges that are already
/// done go together; live ones drain one at a time.
pub fn step(running: i32, desired: i32, bridges: &[Member], nouns: Nouns) -> Step {
    let member = nouns.member;
    if desired >= running {
        return Step::Run(desired, format!("run {desired} {member}(s)"));
    }
    let mut n = running;
    let mut why = vec![];
    while n > desired {
        let last = n - 1;
        let done = match bridges.iter().find(|b| b.ordinal == last) {
            None => format!("{member} #{last} is gone"),
            Some(b) => match drained(b, nouns) {
                Drained::Done(reason) => reason,
                Drained::Waiting(reason) if n == running => return Step::Wait(reason),
                Drained::NotStarted if n == running => return Step::Drain(b.name.clone()),
                // A live bridge below others that are done: remove those first.
                _ => break,
            },
        };
        why.push(done);
        n -= 1;
    }
    Step::Run(n, why.join("; "))
}

/// A changed pod template reaches the bridges one at a time (the StatefulSet uses `OnDelete`):
/// the highest outdated bridge is drained, replaced once drained, and the next waits until
/// the new pod is Ready. `None` when every bridge runs the current template.
pub fn rollout(running: i32, bridges: &[Member], nouns: Nouns) -> Option<Step> {
    let member = nouns.member;
    let members: Vec<&Member> = bridges.iter().filter(|b| b.ordinal < running).collect();
    let mut outdated: Vec<&&Member> = members.iter().filter(|b| !b.current).collect();
    if outdated.is_empty() {
        return None;
    }
    outdated.sort_by_key(|b| std::cmp::Reverse(b.ordinal));
    // A bridge that drains (or has been told to) is finished first.
    if let Some(b) = outdated.iter().find(|b| b.drain.is_some() || b.drain_requested || !b.running) {
        return Some(match drained(b, nouns) {
            Drained::Done(reason) => Step::Replace(b.name.clone(), reason),
            Drained::Waiting(reason) => Step::Wait(reason),
            Drained::NotStarted => Step::Drain(b.name.clone()),
        });
    }
    let missing = (0..running).find(|o| !members.iter().any(|b| b.ordinal == *o));
    let starting = members.iter().find(|b| b.current && !b.ready);
    if let Some(o) = missing {
        return Some(Step::Wait(format!("updating {member}s: waiting for {member} #{o} to be created")));
    }
    if let Some(b) = starting {
        return Some(Step::Wait(format!("updating {member}s: waiting for {} to be ready", b.name)));
    }
    Some(Step::Drain(outdated[0].name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bridges' wording (the recorders' is tested in `recorders`).
    fn step(running: i32, desired: i32, bridges: &[Member]) -> Step {
        super::step(running, desired, bridges, Nouns::BRIDGES)
    }

    const T: u64 = 600_000;

    /// A bridge with `endpoints`; `drain_elapsed_s`: draining for that long (600 s deadline).
    fn bridge(ordinal: i32, endpoints: Option<u64>, drain_elapsed_s: Option<u64>) -> Member {
        Member {
            ordinal,
            name: format!("p-bridge-{ordinal}"),
            endpoints,
            drain: drain_elapsed_s.map(|e| Drain { elapsed_ms: e * 1000, deadline_ms: T }),
            drain_requested: drain_elapsed_s.is_some(),
            running: true,
            answered_before: true,
            ready: true,
            current: true,
        }
    }

    fn not_running(ordinal: i32) -> Member {
        Member { running: false, ready: false, ..bridge(ordinal, None, None) }
    }

    fn outdated(b: Member) -> Member {
        Member { current: false, ..b }
    }

    #[test]
    fn scale_down_drains_the_highest_ordinal_before_removing_it() {
        let two = |last: Member| vec![bridge(0, Some(40), None), last];
        assert_eq!(step(2, 1, &two(bridge(1, Some(12), None))), Step::Drain("p-bridge-1".into()));
        let Step::Wait(why) = step(2, 1, &two(bridge(1, Some(12), Some(100)))) else { panic!() };
        assert!(why.contains("12 endpoint(s) left, 500s to the deadline"), "{why}");
        assert!(matches!(step(2, 1, &two(bridge(1, Some(0), Some(100)))), Step::Run(1, _)));
        assert!(matches!(step(2, 1, &[bridge(0, Some(1), None)]), Step::Run(1, _)), "already gone");
    }

    #[test]
    fn at_the_bridges_deadline_signaling_gets_a_grace_period_to_move_the_calls() {
        let two = |last: Member| vec![bridge(0, Some(40), None), last];
        let Step::Wait(why) = step(2, 1, &two(bridge(1, Some(3), Some(600)))) else { panic!() };
        assert!(why.contains("signaling is moving 3 endpoint(s)"), "{why}");
        assert!(matches!(step(2, 1, &two(bridge(1, Some(0), Some(605)))), Step::Run(1, _)));
        // Calls that could not be moved do not hold the pool forever.
        let end = 600 + MIGRATION_GRACE.as_secs();
        assert!(matches!(step(2, 1, &two(bridge(1, Some(3), Some(end)))), Step::Run(1, _)));
        assert!(matches!(step(2, 1, &two(bridge(1, Some(3), Some(end - 1)))), Step::Wait(_)));
    }

    #[test]
    fn a_bridge_that_forgot_its_drain_is_asked_again() {
        // Asked before (annotated) but it restarted and reports no drain: drain it again.
        let restarted = Member { drain: None, ..bridge(1, Some(5), Some(10)) };
        assert_eq!(step(2, 1, &[bridge(0, Some(1), None), restarted]), Step::Drain("p-bridge-1".into()));
    }

    #[test]
    fn one_missed_scrape_does_not_remove_a_bridge_that_may_carry_calls() {
        let two = |last: Member| vec![bridge(0, Some(4), None), last];
        assert_eq!(step(2, 1, &two(bridge(1, None, None))), Step::Drain("p-bridge-1".into()));
        let silent = Member { endpoints: None, drain: None, ..bridge(1, None, Some(10)) };
        assert!(matches!(step(2, 1, &two(silent)), Step::Wait(_)));
        // Silent twice in a row: down, its calls already moved by signaling.
        let down = Member { answered_before: false, ..bridge(1, None, None) };
        assert!(matches!(step(2, 1, &two(down)), Step::Run(1, _)));
    }

    #[test]
    fn finished_bridges_go_together_and_live_ones_one_at_a_time() {
        // #3 never ran and #2 drained; #1 is live: shrink to 2 now, drain #1 next time.
        let b = vec![
            bridge(0, Some(5), None),
            bridge(1, Some(7), None),
            bridge(2, Some(0), Some(5)),
            not_running(3),
        ];
        assert!(matches!(step(4, 1, &b), Step::Run(2, _)));
        assert_eq!(step(2, 1, &b[..2]), Step::Drain("p-bridge-1".into()));
        // Pods that never ran (e.g. unschedulable): straight to the target.
        let pending: Vec<Member> = (0..14).map(not_running).collect();
        assert!(matches!(step(14, 1, &pending), Step::Run(1, _)));
    }

    #[test]
    fn scale_up_never_waits_for_a_drain() {
        assert_eq!(step(2, 4, &[bridge(1, Some(9), Some(0))]), Step::Run(4, "run 4 bridge(s)".into()));
    }

    #[test]
    fn rollout_replaces_one_drained_bridge_at_a_time_highest_first() {
        let mut pool: Vec<Member> = (0..3).map(|o| outdated(bridge(o, Some(10), None))).collect();
        assert_eq!(rollout(3, &pool, Nouns::BRIDGES), Some(Step::Drain("p-bridge-2".into())));
        pool[2].drain = Some(Drain { elapsed_ms: 10_000, deadline_ms: T });
        pool[2].drain_requested = true;
        assert!(matches!(rollout(3, &pool, Nouns::BRIDGES), Some(Step::Wait(_))), "calls still on it");
        pool[2].endpoints = Some(0);
        assert!(matches!(rollout(3, &pool, Nouns::BRIDGES), Some(Step::Replace(n, _)) if n == "p-bridge-2"));
        // The StatefulSet recreates #2 from the new template; #1 waits until it is Ready.
        pool[2] = Member { ready: false, ..bridge(2, Some(0), None) };
        let Some(Step::Wait(why)) = rollout(3, &pool, Nouns::BRIDGES) else { panic!() };
        assert!(why.contains("p-bridge-2 to be ready"), "{why}");
        pool.truncate(2);
        assert!(matches!(rollout(3, &pool, Nouns::BRIDGES), Some(Step::Wait(_))), "#2 not even created yet");
        pool.push(bridge(2, Some(0), None));
        assert_eq!(rollout(3, &pool, Nouns::BRIDGES), Some(Step::Drain("p-bridge-1".into())));
    }

    #[test]
    fn rollout_is_done_when_every_bridge_is_current_and_ignores_bridges_being_removed() {
        let pool =
            vec![bridge(0, Some(1), None), bridge(1, Some(2), None), outdated(bridge(2, Some(0), None))];
        assert_eq!(rollout(2, &pool, Nouns::BRIDGES), None);
        assert!(rollout(3, &pool, Nouns::BRIDGES).is_some());
    }

    #[test]
    fn rollout_replaces_a_bridge_that_never_ran_at_once() {
        let pool = vec![bridge(0, Some(1), None), outdated(not_running(1))];
        assert!(matches!(rollout(2, &pool, Nouns::BRIDGES), Some(Step::Replace(n, _)) if n == "p-bridge-1"));
    }

    #[test]
    fn rollout_waits_for_the_deadline_and_grace_on_a_busy_bridge() {
        let busy = |elapsed_s: u64| {
            let b = Member {
                drain: Some(Drain { elapsed_ms: elapsed_s * 1000, deadline_ms: 60_000 }),
                ..bridge(1, Some(4), Some(0))
            };
            vec![bridge(0, Some(1), None), outdated(b)]
        };
        assert!(matches!(rollout(2, &busy(61), Nouns::BRIDGES), Some(Step::Wait(_))));
        assert!(matches!(rollout(2, &busy(60 + 30), Nouns::BRIDGES), Some(Step::Replace(..))));
    }
}
