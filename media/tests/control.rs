//! Bridge control: draining, HTTP endpoints, and the real WebSocket control channel.
#![allow(clippy::result_large_err)] // tungstenite's handshake callback signature
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{Client, Harness, LOOP};
use convene_media::bridge::Bridge;
use convene_media::config::Config;
use convene_media::control::{self, ErrorCode, FromBridge, LoadReport, MAX_MESSAGE_BYTES, ToBridge};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Minimal HTTP/1.0 request; returns (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, auth: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let auth = auth.map(|a| format!("Authorization: Bearer {a}\r\n")).unwrap_or_default();
    write!(s, "{method} {path} HTTP/1.0\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_refuses_new_conferences() {
    let mut h = Harness::new("room1").await;
    h.join(Client::new("alice", true, false));
    let addr = h.bridge.http_addr;
    let (st, _) = tokio::task::spawn_blocking(move || http(addr, "GET", "/ready", None)).await.unwrap();
    assert_eq!(st, 200);
    let (st, _) = tokio::task::spawn_blocking(move || http(addr, "POST", "/drain", None)).await.unwrap();
    assert_eq!(st, 401, "drain needs the secret");
    let (st, _) =
        tokio::task::spawn_blocking(move || http(addr, "POST", "/drain", Some("wrong"))).await.unwrap();
    assert_eq!(st, 401);
    let (st, _) =
        tokio::task::spawn_blocking(move || http(addr, "POST", "/drain", Some("test-secret"))).await.unwrap();
    assert_eq!(st, 200);
    // Without a deadline in the request, the bridge's configured default (60 s) applies.
    h.wait_for(
        |m| matches!(m, FromBridge::Draining { drain: Some(d) } if d.deadline_ms == 60_000),
        Duration::from_secs(5),
    );
    let (st, body) = tokio::task::spawn_blocking(move || http(addr, "GET", "/load", None)).await.unwrap();
    assert_eq!(st, 200);
    let load: LoadReport = serde_json::from_str(&body).expect("the load report is JSON");
    assert_eq!(load.drain.map(|d| d.deadline_ms), Some(60_000), "{body}");
    let (st, body) = tokio::task::spawn_blocking(move || http(addr, "GET", "/ready", None)).await.unwrap();
    assert_eq!((st, body.as_str()), (503, "draining"));
    let (st, _) = tokio::task::spawn_blocking(move || http(addr, "GET", "/health", None)).await.unwrap();
    assert_eq!(st, 200, "draining is not unhealthy");

    let id = h.next_id();
    let reply =
        h.request(ToBridge::AllocateEndpoint { id, conference: "room2".into(), endpoint: "bob".into() });
    assert!(
        matches!(reply, FromBridge::Error { code: ErrorCode::Draining, id: Some(i), .. } if i == id),
        "{reply:?}"
    );
    // The conference in progress may still grow.
    let id = h.next_id();
    let reply =
        h.request(ToBridge::AllocateEndpoint { id, conference: "room1".into(), endpoint: "carol".into() });
    assert!(matches!(reply, FromBridge::Allocated { .. }), "{reply:?}");
    let (_, metrics) =
        tokio::task::spawn_blocking(move || http(addr, "GET", "/metrics", None)).await.unwrap();
    assert!(metrics.contains("convene_bridge_draining 1"), "{metrics}");
    assert!(
        metrics.contains("convene_bridge_advertised_address_info{address=\"127.0.0.1\",source=\"bind\"} 1")
    );
    // Expiry.
    let id = h.next_id();
    assert_eq!(
        h.request(ToBridge::ExpireConference { id, conference: "room1".into() }),
        FromBridge::Ok { id }
    );
    assert_eq!(h.bridge.metrics.endpoints.get(), 0);
    h.bridge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_over_websocket() {
    common::init_logs();
    let listener = tokio::net::TcpListener::bind((LOOP, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut cfg = Config::for_test(LOOP);
    cfg.signaling_url = Some(format!("ws://127.0.0.1:{port}/bridge"));
    cfg.secret = Some("sekrit".into());
    let bridge = Bridge::start(cfg).await.unwrap();

    let (stream, _) =
        tokio::time::timeout(Duration::from_secs(10), listener.accept()).await.unwrap().unwrap();
    let auth = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = auth.clone();
    let mut ws = tokio_tungstenite::accept_hdr_async(
        stream,
        move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
            *seen.lock().unwrap() =
                req.headers().get("authorization").map(|v| v.to_str().unwrap().to_string());
            assert_eq!(req.uri().path(), "/bridge");
            Ok(resp)
        },
    )
    .await
    .unwrap();
    assert_eq!(auth.lock().unwrap().as_deref(), Some("Bearer sekrit"));

    async fn next(ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>) -> FromBridge {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.unwrap().unwrap().unwrap();
            if let WsMessage::Text(t) = m {
                let msg = control::parse::<FromBridge>(t.as_str()).unwrap();
                if !matches!(msg, FromBridge::Load(_)) {
                    return msg;
                }
            }
        }
    }
    let reg = next(&mut ws).await;
    let FromBridge::Register { bridge_id, protocol_version, addresses, .. } = reg else { panic!("{reg:?}") };
    assert_eq!(bridge_id, "test-bridge");
    assert_eq!(protocol_version, convene_media::control::PROTOCOL_VERSION);
    assert_eq!(addresses[0].address, "127.0.0.1");

    let alloc = ToBridge::AllocateEndpoint { id: 1, conference: "c".into(), endpoint: "e".into() };
    ws.send(WsMessage::text(control::to_json(&alloc))).await.unwrap();
    let m = next(&mut ws).await;
    assert!(
        matches!(m, FromBridge::Allocated { id: 1, ref candidates, .. } if !candidates.is_empty()),
        "{m:?}"
    );
    assert_eq!(bridge.metrics.signaling_connected.get(), 1, "registered: reported as connected");

    ws.send(WsMessage::text("{nope")).await.unwrap();
    assert!(matches!(next(&mut ws).await, FromBridge::Error { id: None, code: ErrorCode::BadRequest, .. }));
    ws.send(WsMessage::text(format!(
        "{{\"type\":\"expire_conference\",\"id\":2,\"conference\":\"{}\"}}",
        "x".repeat(MAX_MESSAGE_BYTES)
    )))
    .await
    .unwrap();
    assert!(matches!(next(&mut ws).await, FromBridge::Error { id: None, .. }));
    let expire = ToBridge::ExpireConference { id: 3, conference: "c".into() };
    ws.send(WsMessage::text(control::to_json(&expire))).await.unwrap();
    let reply = loop {
        // The expiry also reports the endpoint expired; the reply follows.
        match next(&mut ws).await {
            FromBridge::EndpointState { .. } => continue,
            other => break other,
        }
    };
    assert_eq!(reply, FromBridge::Ok { id: 3 });
    assert!(bridge.metrics.dropped.with_label_values(&["control"]).get() >= 2);

    // Draining is reported to signaling, with the deadline the drain asked for.
    bridge.set_draining(true, Some(Duration::from_secs(30)));
    let m = next(&mut ws).await;
    assert!(matches!(m, FromBridge::Draining { drain: Some(d) } if d.deadline_ms == 30_000), "{m:?}");
    bridge.shutdown();
}
