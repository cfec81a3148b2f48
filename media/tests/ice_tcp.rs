//! ICE-TCP fallback: a client that can only use TCP publishes to a UDP subscriber and back.
mod common;

use std::time::Duration;

use common::{Client, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_client_exchanges_media() {
    let mut h = Harness::new("tcp").await;
    let tcp = h.bridge.tcp_addr.expect("bridge listens for ICE-TCP");
    h.join(Client::new_tcp("tcp-pub", true, tcp));
    h.join(Client::new("udp-pub", true, false));
    h.pump_until(Duration::from_secs(20), "media both ways over TCP and UDP", |h| {
        h.client("udp-pub").received_from("tcp-pub-v0").decodable_keyframes >= 1
            && h.client("udp-pub").received_from("tcp-pub-a0").frames >= 10
            && h.client("tcp-pub").received_from("udp-pub-v0").frames >= 10
    });
    h.bridge.shutdown();
}
