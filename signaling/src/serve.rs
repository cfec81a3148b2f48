//! Our own accept loop (instead of `axum::serve`), for what the open internet needs:
//! TCP_NODELAY on every accepted socket (no ~40 ms Nagle + delayed-ACK stall between two
//! back-to-back frames), a deadline on connections that send no request (hyper's
//! header-read timeout, which also covers idle keep-alive), a per-address limit on
//! connections that have not joined a room, and optional TLS (rustls).
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::net::trusted;
use crate::state::App;

/// TCP connections an address may hold per unauthenticated WebSocket it may hold: a page
/// fetches its modules over several connections at once.
pub const TCP_PER_UNAUTHENTICATED: u32 = 8;

/// rustls server config from PEM files (certificate chain, private key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key")?;
    // WebSockets need HTTP/1.1 upgrades; we serve HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let router = crate::router(app.clone());
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("TCP_NODELAY: {e}");
        }
        let limits = &app.settings.limits;
        // Raw TCP connections (page assets over HTTP/1.1, up to six per page, and sockets that
        // never send a request) are counted per peer against a budget of several per
        // unauthenticated WebSocket; a trusted proxy carries everyone's and is not counted.
        // `/ws` counts the client itself (forwarded address behind a trusted proxy).
        let mut permit = None;
        if !trusted(&limits.trusted_proxies, peer.ip()) {
            let ip = crate::net::client_ip(peer.ip(), &Default::default(), &[]);
            let max = limits.max_unauthenticated_per_address.saturating_mul(TCP_PER_UNAUTHENTICATED);
            match app.tcp_conns.acquire(ip, max) {
                Some(p) => permit = Some(p),
                None => {
                    app.metrics
                        .disconnects
                        .with_label_values(&[crate::metrics::reason::UNAUTHENTICATED_LIMIT])
                        .inc();
                    continue;
                }
            }
        }
        let app = app.clone();
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let timeout = app.settings.limits.join_timeout;
            match tls {
                Some(acceptor) => match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => connection(s, peer, router, timeout).await,
                    Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                    Err(_) => {
                        app.metrics
                            .disconnects
                            .with_label_values(&[crate::outbox::CloseReason::JoinTimeout.as_str()])
                            .inc();
                    }
                },
                None => connection(tcp, peer, router, timeout).await,
            }
            // The connection's place in its address's TCP budget is freed when it ends.
            drop(permit);
        });
    }
}

async fn connection<S>(io: S, peer: SocketAddr, router: axum::Router, timeout: std::time::Duration)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        tower::Service::call(&mut router.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // A connection that sends no (further) request within the join timeout is closed: it
        // starts with the connection and again after each response (idle keep-alive).
        .header_read_timeout(timeout)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, "connection: {e}");
    }
}
