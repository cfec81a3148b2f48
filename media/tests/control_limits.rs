//! The control WebSocket's bounds, against a test signaling server on loopback: an oversized
//! message closes the connection (and the bridge dials again), a peer that stops answering is
//! noticed by the keep-alive, the queue towards a signaling that stops reading is bounded;
//! and `wss://` verifies signaling's certificate against the configured CA.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::LOOP;
use convene_media::bridge::Bridge;
use convene_media::config::Config;
use convene_media::control::{self, FromBridge};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn listener() -> (TcpListener, u16) {
    let l = TcpListener::bind((LOOP, 0)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

async fn accept_ws(l: &TcpListener, within: Duration) -> WebSocketStream<tokio::net::TcpStream> {
    let (s, _) = tokio::time::timeout(within, l.accept()).await.expect("the bridge dials").unwrap();
    tokio_tungstenite::accept_async(s).await.unwrap()
}

/// The next non-load message, or None when the connection closed.
async fn next<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Option<FromBridge> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("no message in 5 s") {
            Some(Ok(WsMessage::Text(t))) => {
                let m = control::parse::<FromBridge>(t.as_str()).unwrap();
                if !matches!(m, FromBridge::Load(_)) {
                    return Some(m);
                }
            }
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => {}
        }
    }
}

async fn start(port: u16, f: impl FnOnce(&mut Config)) -> Arc<Bridge> {
    common::init_logs();
    let mut cfg = Config::for_test(LOOP);
    cfg.signaling_url = Some(format!("ws://127.0.0.1:{port}/bridge"));
    f(&mut cfg);
    Bridge::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_the_channel() {
    let (l, port) = listener().await;
    let b = start(port, |c| c.control_max_message_bytes = 64 * 1024).await;
    let mut ws = accept_ws(&l, Duration::from_secs(10)).await;
    assert!(matches!(next(&mut ws).await, Some(FromBridge::Register { .. })));
    // Under the limit: a bad request, answered; the channel stays.
    ws.send(WsMessage::text("x".repeat(60 * 1024))).await.unwrap();
    assert!(matches!(next(&mut ws).await, Some(FromBridge::Error { .. })));
    // Over it: closed, then dialled again.
    let _ = ws.send(WsMessage::text("x".repeat(64 * 1024 + 1))).await;
    assert!(next(&mut ws).await.is_none(), "the bridge closed the connection");
    let mut again = accept_ws(&l, Duration::from_secs(5)).await;
    assert!(matches!(next(&mut again).await, Some(FromBridge::Register { .. })));
    assert!(b.metrics.dropped.with_label_values(&["control"]).get() >= 2);
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_presumed_dead() {
    let (l, port) = listener().await;
    let b = start(port, |c| c.control_keepalive_ms = 200).await;
    let mut ws = accept_ws(&l, Duration::from_secs(10)).await;
    assert!(matches!(next(&mut ws).await, Some(FromBridge::Register { .. })));
    // Stop reading (no pongs, no frames); keep the socket open.
    let t0 = Instant::now();
    let mut again = accept_ws(&l, Duration::from_secs(5)).await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "noticed after {took:?}");
    assert!(matches!(next(&mut again).await, Some(FromBridge::Register { .. })));
    // A peer that answers pings (tungstenite does while reading) is kept past the deadline.
    let quiet = Instant::now();
    while quiet.elapsed() < Duration::from_millis(1500) {
        match tokio::time::timeout(Duration::from_millis(100), again.next()).await {
            Ok(Some(Ok(_))) | Err(_) => {}
            Ok(other) => panic!("a live peer was dropped: {other:?}"),
        }
    }
    assert_eq!(b.metrics.signaling_connected.get(), 1);
    drop(ws);
    b.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_towards_a_stuck_signaling_is_bounded() {
    // A small receive buffer so that signaling's not reading backs up quickly.
    let s = TcpSocket::new_v4().unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.bind((LOOP, 0).into()).unwrap();
    let port = s.local_addr().unwrap().port();
    let l = s.listen(8).unwrap();
    let b = start(port, |c| c.control_queue = 16).await;
    let mut ws = accept_ws(&l, Duration::from_secs(10)).await;
    assert!(matches!(next(&mut ws).await, Some(FromBridge::Register { .. })));
    let t0 = Instant::now();
    while b.metrics.dropped.with_label_values(&["control_queue"]).get() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(15), "nothing dropped: the queue is unbounded");
        for _ in 0..1000 {
            b.set_draining(true, Some(Duration::from_secs(1)));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    b.shutdown();
}

mod tls {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    struct Pki {
        ca_pem: String,
        acceptor: tokio_rustls::TlsAcceptor,
    }

    fn pki(ca_name: &str) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(rcgen::DnType::CommonName, ca_name);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into()]).unwrap().signed_by(&key, &ca).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap();
        Pki { ca_pem: ca.pem(), acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) }
    }

    fn write_ca(name: &str, pem: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("convene-test-{}-{name}.pem", std::process::id()));
        std::fs::write(&p, pem).unwrap();
        p
    }

    async fn bridge_with_ca(port: u16, ca: std::path::PathBuf) -> Arc<Bridge> {
        common::init_logs();
        let mut cfg = Config::for_test(LOOP);
        cfg.signaling_url = Some(format!("wss://localhost:{port}/bridge"));
        cfg.control_ca_file = Some(ca);
        Bridge::start(cfg).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wss_with_the_right_ca_connects() {
        let server = pki("signaling CA");
        let (l, port) = listener().await;
        let b = bridge_with_ca(port, write_ca("right", &server.ca_pem)).await;
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), l.accept()).await.unwrap().unwrap();
        let tls = server.acceptor.accept(tcp).await.expect("the bridge trusts the CA");
        let mut ws = tokio_tungstenite::accept_async(tls).await.unwrap();
        assert!(matches!(next(&mut ws).await, Some(FromBridge::Register { .. })));
        b.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wss_with_the_wrong_ca_is_refused() {
        let server = pki("signaling CA");
        let other = pki("some other CA");
        let (l, port) = listener().await;
        let b = bridge_with_ca(port, write_ca("wrong", &other.ca_pem)).await;
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), l.accept()).await.unwrap().unwrap();
        let err = match server.acceptor.accept(tcp).await {
            Ok(_) => panic!("the bridge accepted a certificate from a CA it was not given"),
            Err(e) => e.to_string(),
        };
        // The bridge aborted the handshake because it could not verify the issuer.
        assert!(err.contains("UnknownCA"), "{err}");
        assert_eq!(b.metrics.signaling_connected.get(), 0);
        b.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreadable_ca_bundle_stops_the_bridge() {
        common::init_logs();
        let mut cfg = Config::for_test(LOOP);
        cfg.signaling_url = Some("wss://localhost:1/bridge".into());
        cfg.control_ca_file = Some("/nonexistent/ca.pem".into());
        let err = Bridge::start(cfg).await.err().expect("refused").to_string();
        assert!(err.contains("CA bundle"), "{err}");
    }
}
