//! The recorder pool's size, as pure functions over what its recorders report: the bridge
//! autoscaler's decision ([`crate::autoscale`]) with recordings for endpoints and a pod's
//! `recordingsPerPod` for its target, and the bridges' drain-before-remove ([`crate::drain`])
//! with a recording's capture and its composition or upload as the work a pod still carries.
//!
//! A recorder's drain deadline is kept on the operator's own clock (the time it annotated the
//! pod): the recorder only says whether it drains.

use std::time::Duration;

use convene_proto::load::Drain;
use convene_proto::recorder::RecorderLoad;

use crate::autoscale::{self, BridgeLoad, Targets};
use crate::crd::recorderpool::{RecorderAutoscalingSpec, RecorderState};
use crate::drain;

/// One recorder pod as the pool sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recorder {
    pub name: String,
    pub ordinal: i32,
    /// What it reported; `None`: it did not answer.
    pub load: Option<RecorderLoad>,
    /// Running (scheduled, with an address).
    pub running: bool,
    pub ready: bool,
    /// Runs the StatefulSet's current template.
    pub current: bool,
    /// It answered the previous scrape.
    pub answered_before: bool,
    /// How long ago the operator asked it to drain, if it did.
    pub drain_asked: Option<Duration>,
}

/// The autoscaler's view: recordings as endpoints, no bitrate (a recorder's limit is its
/// recordings).
pub fn as_load(r: &Recorder) -> BridgeLoad {
    match &r.load {
        None => BridgeLoad::default(),
        Some(l) => BridgeLoad {
            endpoints: Some(u64::from(l.active)),
            conferences: Some(u64::from(l.active)),
            mbps: Some(0.0),
            stress: Some(if l.capacity == 0 { 1.0 } else { f64::from(l.active) / f64::from(l.capacity) }),
            drain: None,
            ice: None,
        },
    }
}

pub fn targets(a: &RecorderAutoscalingSpec, per_pod: i32) -> Targets {
    Targets {
        nouns: autoscale::Nouns::RECORDERS,
        min: a.min_replicas,
        max: a.max_replicas,
        endpoints_per_bridge: per_pod.max(1),
        mbps_per_bridge: i32::MAX,
        headroom_percent: a.headroom_percent,
        // A recording waiting for a place is a recording lost: add recorders at once.
        scale_up_window: Duration::ZERO,
        scale_down_window: Duration::from_secs(a.scale_down_stabilization_seconds.max(0) as u64),
    }
}

/// The drain logic's view: a recorder carries work while it captures or still composes or
/// uploads; its drain's deadline is `drain_timeout` after the operator asked.
pub fn member(r: &Recorder, drain_timeout: Duration) -> drain::Member {
    drain::Member {
        ordinal: r.ordinal,
        name: r.name.clone(),
        endpoints: r.load.map(|l| u64::from(l.active + l.finishing)),
        drain: r.drain_asked.filter(|_| r.load.is_some_and(|l| l.draining)).map(|elapsed| Drain {
            elapsed_ms: elapsed.as_millis() as u64,
            // Removed at the timeout itself: past it the recorder finishes its files on SIGTERM
            // and signaling continues the recordings elsewhere, nothing is lost by waiting less.
            deadline_ms: drain_timeout.saturating_sub(drain::MIGRATION_GRACE).as_millis() as u64,
        }),
        drain_requested: r.drain_asked.is_some(),
        running: r.running,
        answered_before: r.answered_before,
        ready: r.ready,
        current: r.current,
    }
}

/// What the pool holds: (capturing, free places on recorders that take recordings), `None`
/// while no recorder answered.
pub fn totals(recorders: &[Recorder]) -> Option<(i32, i32)> {
    let answered: Vec<&RecorderLoad> = recorders.iter().filter_map(|r| r.load.as_ref()).collect();
    if answered.is_empty() {
        return None;
    }
    let active = answered.iter().map(|l| l.active as i32).sum();
    let free = answered
        .iter()
        .filter(|l| !l.draining && l.registered)
        .map(|l| l.capacity.saturating_sub(l.active) as i32)
        .sum();
    Some((active, free))
}

/// An Event to record: (warning, reason, message).
pub type Note = (bool, &'static str, String);

/// What happened to recordings since the last status (`before`): starts and failures, from
/// each recorder's counters. A recorder the status does not know yet counts from zero (a new
/// pod, or a new pool); one whose counters went back restarted: nothing is said.
pub fn recording_events(before: &[RecorderState], now: &[Recorder]) -> Vec<Note> {
    let mut notes = vec![];
    for r in now {
        let Some(l) = r.load else { continue };
        let b = before.iter().find(|b| b.name == r.name);
        let more = |now: u64, was: Option<i64>| now.saturating_sub(was.unwrap_or(0) as u64);
        let started = more(l.started_total, b.and_then(|b| b.started));
        let failed = more(l.failed_total, b.and_then(|b| b.failed));
        if started > 0 {
            let message = format!("{} started {started} recording(s); {} capturing", r.name, l.active);
            notes.push((false, "RecordingStarted", message));
        }
        if failed > 0 {
            let message = format!(
                "{failed} recording(s) on {} ended with an error (the room's moderators were told why; the recorder's log has it)",
                r.name
            );
            notes.push((true, "RecordingFailed", message));
        }
    }
    notes
}

/// The pool's size now, from `current` recorders.
pub fn decide(
    current: i32,
    recorders: &[Recorder],
    t: &Targets,
    w: &mut autoscale::Windows,
    now: Duration,
) -> autoscale::Decision {
    let loads: Vec<BridgeLoad> = recorders.iter().map(as_load).collect();
    autoscale::decide(current, &loads, t, w, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::Step;

    fn rec(ordinal: i32, active: u32, finishing: u32, draining: bool) -> Recorder {
        Recorder {
            name: format!("rec-{ordinal}"),
            ordinal,
            load: Some(RecorderLoad {
                capacity: 4,
                active,
                finishing,
                draining,
                registered: true,
                ..Default::default()
            }),
            running: true,
            ready: true,
            current: true,
            answered_before: true,
            drain_asked: None,
        }
    }

    fn spec() -> RecorderAutoscalingSpec {
        RecorderAutoscalingSpec {
            enabled: true,
            min_replicas: 1,
            max_replicas: 5,
            headroom_percent: 25,
            scale_down_stabilization_seconds: 60,
            drain_timeout_seconds: 600,
        }
    }

    /// Replays a day's recordings: up at once when recordings exceed the capacity with
    /// headroom; down only after the window, draining the last recorder, which goes only once
    /// its recordings (capture and upload) ended.
    #[test]
    fn scales_up_at_once_and_drains_before_removing() {
        let t = targets(&spec(), 4);
        let mut w = autoscale::Windows::default();
        let s = Duration::from_secs;
        // 4 recordings on one recorder of 4: 3 usable places each → 2 recorders now.
        let d = decide(1, &[rec(0, 4, 0, false)], &t, &mut w, s(0));
        assert_eq!(d.desired, 2, "{}", d.reason);
        // Said of recorders and recordings, without a bitrate they do not have.
        assert_eq!(d.reason, "4 recording(s) on 1 recorder(s) needs 2 recorder(s) with 25% headroom");
        // Unknown load never scales down.
        let silent = Recorder { load: None, ..rec(1, 0, 0, false) };
        let d = decide(2, &[rec(0, 0, 0, false), silent], &t, &mut w, s(10));
        assert_eq!(d.desired, 2);
        // Quiet for the window: one recorder again.
        let quiet = [rec(0, 1, 0, false), rec(1, 1, 0, false)];
        assert_eq!(decide(2, &quiet, &t, &mut w, s(20)).desired, 2, "not before the window");
        assert_eq!(decide(2, &quiet, &t, &mut w, s(90)).desired, 1);

        // The scale-down drains rec-1 first, and keeps it while it records or uploads.
        let timeout = s(600);
        let step = |rs: &[Recorder]| {
            let members: Vec<_> = rs.iter().map(|r| member(r, timeout)).collect();
            drain::step(2, 1, &members, autoscale::Nouns::RECORDERS)
        };
        assert_eq!(step(&quiet), Step::Drain("rec-1".into()));
        let asked = Recorder { drain_asked: Some(s(5)), ..rec(1, 1, 0, true) };
        let Step::Wait(why) = step(&[rec(0, 1, 0, false), asked]) else { panic!() };
        assert!(why.contains("rec-1: 1 recording(s) left"), "{why}");
        let uploading = Recorder { drain_asked: Some(s(30)), ..rec(1, 0, 1, true) };
        assert!(matches!(step(&[rec(0, 1, 0, false), uploading]), Step::Wait(_)));
        let done = Recorder { drain_asked: Some(s(40)), ..rec(1, 0, 0, true) };
        assert!(matches!(step(&[rec(0, 1, 0, false), done]), Step::Run(1, _)));
        // At the timeout it goes, recordings or not (they continue on another recorder).
        let overdue = Recorder { drain_asked: Some(s(601)), ..rec(1, 2, 0, true) };
        let Step::Run(1, why) = step(&[rec(0, 1, 0, false), overdue]) else { panic!() };
        assert!(why.contains("still had 2 recording(s)"), "{why}");
    }

    #[test]
    fn starts_and_failures_become_events_once() {
        let mut r = rec(0, 2, 0, false);
        let state = |started, failed| RecorderState {
            name: "rec-0".into(),
            started: Some(started),
            failed: Some(failed),
            ..Default::default()
        };
        r.load.as_mut().unwrap().started_total = 5;
        r.load.as_mut().unwrap().failed_total = 1;
        let notes = recording_events(&[state(3, 0)], std::slice::from_ref(&r));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!((notes[0].0, notes[0].1), (false, "RecordingStarted"));
        assert!(notes[0].2.contains("started 2 recording(s)"), "{}", notes[0].2);
        assert_eq!((notes[1].0, notes[1].1), (true, "RecordingFailed"));
        assert!(recording_events(&[state(5, 1)], std::slice::from_ref(&r)).is_empty(), "nothing new");
        assert!(recording_events(&[state(9, 4)], std::slice::from_ref(&r)).is_empty(), "restarted");
        let first = recording_events(&[], std::slice::from_ref(&r));
        assert_eq!(first.len(), 2, "first seen: counted from zero: {first:?}");
        assert!(first[0].2.contains("started 5"), "{}", first[0].2);
        let silent = RecorderState { started: None, failed: None, ..state(0, 0) };
        assert_eq!(recording_events(&[silent], &[r]).len(), 2, "never answered: counted from zero");
    }

    #[test]
    fn totals_count_only_places_that_can_take_a_recording() {
        assert_eq!(totals(&[]), None);
        assert_eq!(totals(&[Recorder { load: None, ..rec(0, 0, 0, false) }]), None);
        let mut unregistered = rec(2, 0, 0, false);
        unregistered.load.as_mut().unwrap().registered = false;
        let pool = [rec(0, 3, 1, false), rec(1, 1, 0, true), unregistered];
        assert_eq!(totals(&pool), Some((4, 1)), "draining and unregistered recorders take none");
    }
}
