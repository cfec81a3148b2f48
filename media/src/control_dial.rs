//! Dialling signaling's control WebSocket: TCP (TCP_NODELAY), TLS for `wss://` (rustls,
//! signaling's certificate verified against `--control-ca-file` or the system roots), then
//! the WebSocket handshake with the bearer secret.
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// A plain or TLS stream under the WebSocket.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub type ControlWs = WebSocketStream<Box<dyn Io>>;

/// The TLS connector for `url` if it is `wss://` (None for `ws://`). Built once, at start,
/// so an unreadable CA bundle stops the bridge instead of failing every dial.
pub fn tls_for(url: &str, ca_file: Option<&Path>) -> anyhow::Result<Option<TlsConnector>> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("ws") => Ok(None),
        Some("wss") => Ok(Some(connector(ca_file)?)),
        _ => bail!("signaling URL {url:?} is neither ws:// nor wss://"),
    }
}

fn connector(ca_file: Option<&Path>) -> anyhow::Result<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading CA bundle {}", path.display()))?
                .collect::<Result<_, _>>()
                .with_context(|| format!("parsing CA bundle {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                bail!("no usable CA certificate in {}", path.display());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                bail!("wss:// needs CA certificates: none in the system store, and no --control-ca-file");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Connect and upgrade; `tls` must be `tls_for(url)`.
pub async fn dial(
    url: &str,
    secret: Option<&str>,
    ws_cfg: WebSocketConfig,
    tls: Option<&TlsConnector>,
) -> anyhow::Result<ControlWs> {
    let mut req = url.into_client_request()?;
    if let Some(secret) = secret {
        req.headers_mut().insert("Authorization", format!("Bearer {secret}").parse()?);
    }
    let uri = req.uri();
    let host = uri.host().context("signaling URL without a host")?;
    let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(if tls.is_some() { 443 } else { 80 });
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    // Replies and offers must not wait ~40 ms behind each other (Nagle + delayed ACK).
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let name =
                ServerName::try_from(host.clone()).with_context(|| format!("TLS server name {host:?}"))?;
            let stream = tls.connect(name, tcp).await.with_context(|| {
                format!(
                    "TLS handshake with {host}:{port} (certificate verification against the configured CA)"
                )
            })?;
            Box::new(stream)
        }
    };
    let (ws, _) = tokio_tungstenite::client_async_with_config(req, io, Some(ws_cfg)).await?;
    Ok(ws)
}
