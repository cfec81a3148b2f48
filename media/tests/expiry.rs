//! Expiring an endpoint frees the slots that carried its sources: the others are told with a
//! small `slots` message, not renegotiated.
mod common;

use std::time::Duration;

use common::{Client, Harness, summary};
use convene_media::control::{EndpointState, FromBridge, ToBridge};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiring_a_publisher_removes_its_sources() {
    let mut h = Harness::new("exp").await;
    h.join(Client::new("pub", true, false));
    h.join(Client::new("sub", false, false));
    h.pump_until(Duration::from_secs(20), "media flows", |h| {
        h.client("sub").received_from("pub-v0").frames >= 10
    });
    h.log.clear();
    let id = h.next_id();
    let reply = h.request(ToBridge::ExpireEndpoint { id, conference: "exp".into(), endpoint: "pub".into() });
    assert_eq!(reply, FromBridge::Ok { id });
    h.wait_for(
        |m| matches!(m, FromBridge::EndpointState { endpoint, state: EndpointState::Expired, .. } if endpoint == "sub" || endpoint == "pub"),
        Duration::from_secs(5),
    );
    let freed = h.wait_for(
        |m| matches!(m, FromBridge::Slots { endpoint, .. } if endpoint == "sub"),
        Duration::from_secs(5),
    );
    let FromBridge::Slots { slots, .. } = freed else { unreachable!() };
    assert!(slots.len() >= 2 && slots.iter().all(|s| s.source.is_none()), "pub's slots freed: {slots:?}");
    assert!(h.client("sub").slot_src.is_empty(), "nothing left on sub's slots");
    h.pump(Duration::from_millis(300));
    let offers: Vec<String> =
        h.log.iter().filter(|m| matches!(m, FromBridge::Offer { .. })).map(summary).collect();
    assert!(offers.is_empty(), "no renegotiation: {offers:?}");
    h.bridge.shutdown();
}
