//! Media integration: two publishers and three subscribers exchange audio and video.
mod common;

use std::time::Duration;

use common::{Client, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_publishers_three_subscribers() {
    let mut h = Harness::new("room1").await;
    h.join(Client::new("pub1", true, true));
    h.join(Client::new("pub2", true, false));
    for s in ["sub1", "sub2", "sub3"] {
        h.join(Client::new(s, false, false));
    }
    let names = ["pub1", "pub2", "sub1", "sub2", "sub3"];
    h.pump_until(Duration::from_secs(20), "everyone receives both publishers", |h| {
        names.iter().all(|n| {
            let c = h.client(n);
            ["pub1", "pub2"].iter().filter(|p| *p != n).all(|p| {
                let a = c.received_from(&format!("{p}-a0"));
                let v = c.received_from(&format!("{p}-v0"));
                a.frames >= 10 && v.frames >= 10 && v.decodable_keyframes >= 1
            })
        })
    });
    for n in names {
        let c = h.client(n);
        for p in ["pub1", "pub2"].iter().filter(|p| **p != n) {
            let v = c.received_from(&format!("{p}-v0"));
            assert_eq!(v.keyframes, v.decodable_keyframes, "{n} from {p}: keyframes depacketize");
            // Simulcast publisher: the top layer (720p) is forwarded when unconstrained.
            assert_eq!(v.last_height, Some(720), "{n} from {p}");
        }
    }
    // The publishers offered no data channel (the subscribers here do: their offer needs an
    // m-line). The bridge adds none of its own, so every answer and renegotiation offer it
    // sent them is without m=application, and str0m starts no SCTP association for them
    // (issue 14: no SCTP work for endpoints that do not use it).
    let mut to_publishers = 0;
    for m in &h.log {
        let (endpoint, sdp) = match m {
            convene_media::control::FromBridge::Offer { endpoint, sdp, .. }
            | convene_media::control::FromBridge::Answer { endpoint, sdp, .. } => (endpoint, sdp),
            _ => continue,
        };
        if endpoint.starts_with("pub") {
            to_publishers += 1;
            assert!(!sdp.contains("m=application"), "the bridge offered {endpoint} a data channel:\n{sdp}");
        }
    }
    assert!(to_publishers >= 4, "an answer and a slot offer per publisher at least: {to_publishers}");
    let m = h.bridge.metrics.render();
    assert!(m.contains("convene_bridge_endpoints 5"), "{m}");
    assert!(m.contains("convene_bridge_conferences 1"));
    h.bridge.shutdown();
}
