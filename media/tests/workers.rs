//! Media workers (issue 14 item 3): conferences are spread over the workers behind the one UDP
//! port, each conference whole on one worker, and media flows on each; one worker (no steering
//! thread) forwards the same way.
mod common;

use std::time::{Duration, Instant};

use common::{Client, Harness, LOOP};
use convene_media::config::Config;
use convene_media::control::{ErrorCode, FromBridge, ToBridge};

fn worker_gauge(h: &Harness, name: &str, worker: usize) -> Option<i64> {
    let m = h.bridge.metrics.render();
    let prefix = format!("{name}{{worker=\"{worker}\"}} ");
    m.lines().find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

fn worker_endpoints(h: &Harness, worker: usize) -> Option<i64> {
    worker_gauge(h, "convene_bridge_worker_endpoints", worker)
}

/// The dispatcher's owner table: conferences it assigns to the worker.
fn worker_conferences(h: &Harness, worker: usize) -> Option<i64> {
    worker_gauge(h, "convene_bridge_worker_conferences", worker)
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

fn allocate(h: &mut Harness, conference: &str, endpoint: &str) -> FromBridge {
    let id = h.next_id();
    h.request(ToBridge::AllocateEndpoint { id, conference: conference.into(), endpoint: endpoint.into() })
}

/// An allocation a worker's core refuses (here: draining) gives its conference back to the
/// dispatcher: the owner table does not grow with refused names, and a refused name is not
/// pinned to that worker when it is allowed later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_allocations_give_the_conference_back() {
    let mut cfg = Config::for_test(LOOP);
    cfg.workers = 2;
    let mut h = Harness::with_config("a", cfg).await;
    let load = |h: &Harness| {
        let e = |w| worker_endpoints(h, w).unwrap_or(-1);
        let c = |w| worker_conferences(h, w).unwrap_or(-1);
        [(e(0), c(0)), (e(1), c(1))]
    };
    // Allocations only, no clients: the endpoints stay (unconnected) for the grace period.
    // "a" on one worker with one endpoint, "b" on the other with two.
    assert!(matches!(allocate(&mut h, "a", "a1"), FromBridge::Allocated { .. }));
    let wa = if worker_endpoints(&h, 0) == Some(1) { 0 } else { 1 };
    let wb = 1 - wa;
    for e in ["b1", "b2"] {
        assert!(matches!(allocate(&mut h, "b", e), FromBridge::Allocated { .. }));
    }
    let mut want = [(0, 0); 2];
    want[wa] = (1, 1);
    want[wb] = (2, 1);
    assert_eq!(load(&h), want, "(endpoints, conferences) per worker");

    // Draining: every new conference is refused, and each is routed to the least loaded
    // worker, a's.
    h.bridge.set_draining(true, None);
    for i in 0..40 {
        let reply = allocate(&mut h, &format!("refused-{i}"), "x");
        assert!(matches!(reply, FromBridge::Error { code: ErrorCode::Draining, .. }), "{reply:?}");
    }
    // Each refused name is given back (after its reply: wait a little).
    let end = Instant::now() + Duration::from_secs(5);
    while load(&h) != want && Instant::now() < end {
        h.pump(Duration::from_millis(10));
    }
    assert_eq!(load(&h), want, "the owner table holds a and b only");

    // Undrained, a's worker now the busier one: a refused name is a new conference again and
    // goes to the least loaded worker (b's), not to the worker that refused it.
    h.bridge.set_draining(false, None);
    for e in ["a2", "a3"] {
        assert!(matches!(allocate(&mut h, "a", e), FromBridge::Allocated { .. }));
    }
    assert!(matches!(allocate(&mut h, "refused-0", "y"), FromBridge::Allocated { .. }));
    want[wa] = (3, 1);
    want[wb] = (3, 2);
    assert_eq!(load(&h), want, "refused-0 on the least loaded worker");
    // Endpoints even: the worker with fewer conferences takes the next one.
    assert!(matches!(allocate(&mut h, "c", "c1"), FromBridge::Allocated { .. }));
    want[wa] = (4, 2);
    assert_eq!(load(&h), want, "c on the worker with fewer conferences");
    h.bridge.shutdown();
}
