//! ICE restart on the same bridge (`restart_ice`; signaling migrates with a fresh peer
//! connection instead, see CONTROL.md) and endpoint expiry renegotiation.
mod common;

use std::time::Duration;

use common::{Client, Harness};
use convene_media::control::{EndpointState, Message};

fn ufrag(sdp: &str) -> Option<String> {
    sdp.lines().find_map(|l| l.strip_prefix("a=ice-ufrag:")).map(|s| s.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_restart_keeps_media_flowing() {
    let mut h = Harness::new("mig").await;
    h.join(Client::new("pub", true, false));
    h.join(Client::new("sub", false, false));
    h.pump_until(Duration::from_secs(20), "media flows", |h| {
        h.client("sub").received_from("pub-v0").frames >= 10
    });
    let first = h.log.iter().find_map(|m| match m {
        Message::Answer { endpoint, sdp, .. } if endpoint == "sub" => ufrag(sdp),
        _ => None,
    });
    assert!(first.is_some());
    let id = h.next_id();
    h.bridge.send(Message::RestartIce { id, conference: "mig".into(), endpoint: "sub".into() });
    // The harness answers the bridge's offer like a client would.
    let offer = h.wait_for(|m| matches!(m, Message::Offer { id: i, .. } if *i == id), Duration::from_secs(5));
    let Message::Offer { sdp, .. } = offer else { unreachable!() };
    assert_ne!(ufrag(&sdp), first, "new ICE credentials offered");
    h.wait_for(|m| *m == Message::Ok { id }, Duration::from_secs(5));
    let before = h.client("sub").received_from("pub-v0").frames;
    h.pump_until(Duration::from_secs(10), "media after the restart", |h| {
        h.client("sub").received_from("pub-v0").frames >= before + 30
    });

    h.log.clear();
    // Expiring the publisher removes its sources from the subscriber (bridge offer).
    let id = h.next_id();
    let reply = h.request(Message::ExpireEndpoint { id, conference: "mig".into(), endpoint: "pub".into() });
    assert_eq!(reply, Message::Ok { id });
    h.wait_for(
        |m| matches!(m, Message::EndpointState { endpoint, state: EndpointState::Expired, .. } if endpoint == "pub"),
        Duration::from_secs(5),
    );
    let offer = h.wait_for(
        |m| matches!(m, Message::Offer { endpoint, .. } if endpoint == "sub"),
        Duration::from_secs(5),
    );
    let Message::Offer { sources, .. } = offer else { unreachable!() };
    assert!(sources.is_empty(), "no sources left: {sources:?}");
    h.bridge.shutdown();
}
