//! ICE-TCP fallback: a client that can only use TCP publishes to a UDP subscriber and back,
//! and connections that never do ICE cannot hold the port.
mod common;

use std::time::{Duration, Instant};

use common::{Client, Harness};
use convene_media::config::Config;

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

/// An idle TCP connection from `ip` to the bridge's ICE-TCP port.
async fn idle_from(ip: [u8; 4], to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind((std::net::Ipv4Addr::from(ip), 0).into()).unwrap();
    s.connect(to).await.expect("the bridge accepts the TCP connection")
}

/// Whether the bridge closed the connection within `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 16];
    matches!(tokio::time::timeout(within, s.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
}

fn dropped(h: &Harness, reason: &str) -> u64 {
    h.bridge.metrics.dropped.with_label_values(&[reason]).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_are_closed_and_capped_per_source() {
    let mut cfg = Config::for_test(common::LOOP);
    cfg.ice_tcp_handshake_timeout_ms = 500;
    cfg.ice_tcp_max_per_source = 3;
    let h = Harness::with_config("tcp-limits", cfg).await;
    let tcp = h.bridge.tcp_addr.unwrap();
    // A connection that never sends a STUN binding is closed after the handshake timeout.
    let mut silent = idle_from([127, 0, 0, 1], tcp).await;
    let started = Instant::now();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await, "a silent connection is closed");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(400) && took < Duration::from_secs(3), "closed after {took:?}");
    assert!(dropped(&h, "tcp_unanswered") >= 1);
    // One source address holds at most three; the fourth is closed at once.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(idle_from([127, 0, 0, 5], tcp).await);
    }
    let mut fourth = idle_from([127, 0, 0, 5], tcp).await;
    assert!(closed_within(&mut fourth, Duration::from_millis(300)).await, "over the per-source cap");
    assert!(dropped(&h, "tcp_refused") >= 1);
    h.bridge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_connections_cannot_lock_out_a_tcp_client() {
    let mut cfg = Config::for_test(common::LOOP);
    cfg.ice_tcp_max_connections = 8;
    cfg.ice_tcp_max_per_source = 2;
    cfg.ice_tcp_handshake_timeout_ms = 60_000; // the flood outlives the test
    let mut h = Harness::with_config("tcp-flood", cfg).await;
    let tcp = h.bridge.tcp_addr.unwrap();
    // Fill every slot with connections that never do ICE, from eight addresses.
    let mut flood = Vec::new();
    for i in 0..8u8 {
        flood.push(idle_from([127, 0, 1, 10 + i], tcp).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A real TCP-only client still gets in (the oldest unanswered connection makes room) and
    // exchanges media.
    h.join(Client::new_tcp("tcp-pub", true, tcp));
    h.join(Client::new("udp-pub", true, false));
    h.pump_until(Duration::from_secs(20), "media both ways despite the held connections", |h| {
        h.client("udp-pub").received_from("tcp-pub-v0").frames >= 10
            && h.client("tcp-pub").received_from("udp-pub-v0").frames >= 10
    });
    assert!(dropped(&h, "tcp_unanswered") >= 1, "an idle connection was evicted");
    assert!(closed_within(&mut flood[0], Duration::from_secs(1)).await, "the oldest one");
    h.bridge.shutdown();
}
