//! The bridge's HTTP port on the open internet: slowloris and idle connections are closed in
//! time, one source address cannot hold more than its share while another is still served,
//! a full table makes room by evicting the oldest connection that never sent a request, and
//! oversized bodies get 413.
mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::LOOP;
use convene_media::bridge::Bridge;
use convene_media::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

async fn bridge(f: impl FnOnce(&mut Config)) -> std::sync::Arc<Bridge> {
    common::init_logs();
    let mut cfg = Config::for_test(LOOP);
    f(&mut cfg);
    Bridge::start(cfg).await.unwrap()
}

async fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from, 0)).unwrap();
    s.connect(to).await.unwrap()
}

/// Read until EOF or error; how long it took (None: still open after `within`).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((t0 + within).into(), s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t0.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One request on a fresh connection from `from`: the status code (0: closed without one).
async fn get(from: IpAddr, to: SocketAddr, path: &str) -> u16 {
    let mut s = connect_from(from, to).await;
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_and_idle_keepalive_are_closed_in_time() {
    let b = bridge(|c| c.http_request_timeout_ms = 600).await;
    let addr = b.http_addr;
    // Headers trickled a byte every 100 ms never complete: closed at the request timeout,
    // although bytes keep arriving.
    let mut slow = connect_from(LOOP, addr).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = async {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"X").await.is_err() {
                return t0.elapsed();
            }
        }
        t0.elapsed()
    };
    let took = trickle.await;
    assert!(took < Duration::from_millis(2000), "slowloris held its connection for {took:?}");

    // A keep-alive connection that sends nothing after its response is closed too.
    let mut ka = connect_from(LOOP, addr).await;
    ka.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = ka.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "served first");
    let idle = closed_within(&mut ka, Duration::from_secs(5)).await;
    assert!(idle.is_some_and(|d| d < Duration::from_millis(1500)), "idle keep-alive lasted {idle:?}");
    assert!(b.metrics.dropped.with_label_values(&["http_idle"]).get() >= 2);
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_hold_more_than_its_share() {
    let b = bridge(|c| c.http_max_per_source = 3).await;
    let addr = b.http_addr;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(LOOP, addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The fourth from the same address is closed without an answer ...
    assert_eq!(get(LOOP, addr, "/health").await, 0, "over the per-source limit");
    // ... while another address is served, and the held ones are still open.
    assert_eq!(get(OTHER, addr, "/health").await, 200);
    for s in &mut held {
        assert_eq!(closed_within(s, Duration::from_millis(50)).await, None);
    }
    assert!(b.metrics.dropped.with_label_values(&["http_refused"]).get() >= 1);
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(LOOP, addr, "/health").await, 200, "slots come back when connections close");
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_table_evicts_the_oldest_connection_without_a_request() {
    let b = bridge(|c| c.http_max_connections = 3).await;
    let addr = b.http_addr;
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect_from(LOOP, addr).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(OTHER, addr, "/health").await, 200, "a real client still gets in");
    let first = closed_within(&mut idle[0], Duration::from_millis(500)).await;
    assert!(first.is_some(), "the oldest idle connection made room");
    assert_eq!(closed_within(&mut idle[2], Duration::from_millis(50)).await, None, "the newest stays");
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let b = bridge(|c| c.http_max_body_bytes = 1024).await;
    let mut s = connect_from(LOOP, b.http_addr).await;
    let req = "POST /drain HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-secret\r\nContent-Length: 100000\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(!b.is_draining(), "the refused request did nothing");
    b.shutdown();
}
