//! Expiring an endpoint renegotiates the others: its sources leave their peer connections.
mod common;

use std::time::Duration;

use common::{Client, Harness};
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
    // Expiring the publisher removes its sources from the subscriber (bridge offer).
    let id = h.next_id();
    let reply = h.request(ToBridge::ExpireEndpoint { id, conference: "exp".into(), endpoint: "pub".into() });
    assert_eq!(reply, FromBridge::Ok { id });
    h.wait_for(
        |m| matches!(m, FromBridge::EndpointState { endpoint, state: EndpointState::Expired, .. } if endpoint == "pub"),
        Duration::from_secs(5),
    );
    let offer = h.wait_for(
        |m| matches!(m, FromBridge::Offer { endpoint, .. } if endpoint == "sub"),
        Duration::from_secs(5),
    );
    let FromBridge::Offer { sources, .. } = offer else { unreachable!() };
    assert!(sources.is_empty(), "no sources left: {sources:?}");
    h.bridge.shutdown();
}
