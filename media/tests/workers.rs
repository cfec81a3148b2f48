//! Media workers (issue 14 item 3): conferences are spread over the workers behind the one UDP
//! port, each conference whole on one worker, and media flows on each; one worker (no steering
//! thread) forwards the same way.
mod common;

use std::time::Duration;

use common::{Client, Harness, LOOP};
use convene_media::config::Config;

fn worker_endpoints(h: &Harness, worker: usize) -> Option<i64> {
    let m = h.bridge.metrics.render();
    let prefix = format!("convene_bridge_worker_endpoints{{worker=\"{worker}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

/// Two rooms of a publisher and a subscriber each; every subscriber gets its own room's
/// publisher and nothing of the other room.
async fn two_rooms(workers: u16) -> Harness {
    let mut cfg = Config::for_test(LOOP);
    cfg.workers = workers;
    let mut h = Harness::with_config("a", cfg).await;
    assert_eq!(h.bridge.workers, usize::from(workers));
    h.join(Client::new("a-pub", true, true));
    h.join(Client::new("a-sub", false, false));
    h.conference = "b".into();
    h.join(Client::new("b-pub", true, true));
    h.join(Client::new("b-sub", false, false));
    h.pump_until(Duration::from_secs(20), "each subscriber receives its room's publisher", |h| {
        [("a-sub", "a-pub"), ("b-sub", "b-pub")].iter().all(|(s, p)| {
            let c = h.client(s);
            let v = c.received_from(&format!("{p}-v0"));
            c.received_from(&format!("{p}-a0")).frames >= 10 && v.frames >= 10 && v.decodable_keyframes >= 1
        })
    });
    for (s, other) in [("a-sub", "b-pub"), ("b-sub", "a-pub")] {
        let c = h.client(s);
        assert_eq!(c.received_from(&format!("{other}-v0")).frames, 0, "{s} got the other room's video");
        assert_eq!(c.received_from(&format!("{other}-a0")).frames, 0, "{s} got the other room's audio");
    }
    let m = h.bridge.metrics.render();
    assert!(m.contains("convene_bridge_endpoints 4"), "the bridge's census sums its workers:\n{m}");
    assert!(m.contains("convene_bridge_conferences 2"), "{m}");
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_take_a_conference_each() {
    let h = two_rooms(2).await;
    // Whole conferences per worker: two endpoints on each, none split.
    assert_eq!((worker_endpoints(&h, 0), worker_endpoints(&h, 1)), (Some(2), Some(2)));
    h.bridge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_reads_the_port_itself() {
    let h = two_rooms(1).await;
    assert_eq!(worker_endpoints(&h, 0), Some(4));
    assert_eq!(worker_endpoints(&h, 1), None, "one worker, one series");
    h.bridge.shutdown();
}
