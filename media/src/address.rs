//! Which address the bridge advertises in its ICE candidates, and how it was found.
//!
//! A wrong advertised address is the classic self-hosted SFU failure on Kubernetes ("two
//! people can talk, three cannot"): `status.hostIP` is not public and STUN behind a load
//! balancer returns the egress IP. So the source is explicit, logged and exported.
//!
//! Node addresses come from one HTTPS GET of the Node object with the pod's service-account
//! token. We do that by hand (rustls + a 10-line HTTP/1.0 request) instead of pulling in
//! `kube` + `k8s-openapi` (minutes of compile and megabytes of binary) for a single call.
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;
use tracing::{info, warn};

use crate::config::{AddressSource, Config};
use crate::control::AdvertisedAddress;

const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Find the addresses to advertise. `media` is the bound UDP media socket (STUN is sent from
/// it, so a NAT maps the very port clients will use).
pub async fn discover(cfg: &Config, media: &UdpSocket) -> anyhow::Result<Vec<(IpAddr, String)>> {
    let found = match cfg.address_source {
        AddressSource::Static => {
            let ips = cfg.static_ips()?;
            if ips.is_empty() {
                let ip = fallback_ip(cfg.bind);
                warn!(%ip, "no --static-addresses: advertising the bind/interface address");
                vec![(ip, "bind".to_string())]
            } else {
                ips.into_iter().map(|ip| (ip, "static".to_string())).collect()
            }
        }
        AddressSource::NodeExternalIp | AddressSource::NodeInternalIp => {
            let node = cfg
                .node_name
                .clone()
                .ok_or_else(|| anyhow!("NODE_NAME is required for {}", cfg.address_source.label()))?;
            let json = fetch_node(&node).await?;
            let want =
                if cfg.address_source == AddressSource::NodeExternalIp { "ExternalIP" } else { "InternalIP" };
            let ips = node_addresses(&json, want)?;
            if ips.is_empty() {
                bail!("node {node} has no {want} in status.addresses");
            }
            ips.into_iter().map(|ip| (ip, cfg.address_source.label().to_string())).collect()
        }
        AddressSource::Stun => {
            let server = cfg
                .stun_server
                .clone()
                .ok_or_else(|| anyhow!("--stun-server is required for address source stun"))?;
            let sock = media.try_clone()?;
            let mapped = tokio::task::spawn_blocking(move || stun_mapped_address(&sock, &server))
                .await
                .map_err(|e| anyhow!("stun task: {e}"))??;
            vec![(mapped.ip(), "stun".to_string())]
        }
    };
    for (ip, source) in &found {
        info!(address = %ip, %source, "advertised address");
    }
    Ok(found)
}

pub fn as_advertised(found: &[(IpAddr, String)]) -> Vec<AdvertisedAddress> {
    found.iter().map(|(ip, s)| AdvertisedAddress { address: ip.to_string(), source: s.clone() }).collect()
}

/// The bind address, or for a wildcard bind the address of the default-route interface
/// (loopback when there is none, e.g. in a test network namespace).
fn fallback_ip(bind: IpAddr) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    // connect() on UDP sends nothing; it only asks the kernel for a route.
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// `status.addresses[]` entries of `kind` from a Node object.
pub fn node_addresses(node_json: &str, kind: &str) -> anyhow::Result<Vec<IpAddr>> {
    let v: serde_json::Value = serde_json::from_str(node_json).context("node JSON")?;
    let list = v
        .pointer("/status/addresses")
        .and_then(|a| a.as_array())
        .ok_or_else(|| anyhow!("node has no status.addresses"))?;
    Ok(list
        .iter()
        .filter(|a| a.get("type").and_then(|t| t.as_str()) == Some(kind))
        .filter_map(|a| a.get("address")?.as_str()?.parse().ok())
        .collect())
}

/// GET /api/v1/nodes/{name} with in-cluster credentials.
async fn fetch_node(name: &str) -> anyhow::Result<String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").context("KUBERNETES_SERVICE_HOST")?;
    let port: u16 = std::env::var("KUBERNETES_SERVICE_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(443);
    let token = std::fs::read_to_string(format!("{SA_DIR}/token")).context("service account token")?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(format!("{SA_DIR}/ca.crt")).context("ca.crt")? {
        roots.add(cert.context("ca.crt entry")?)?;
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server_name = ServerName::try_from(host.clone()).context("API server name")?;
    let tcp =
        tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect((host.as_str(), port)))
            .await
            .context("API server connect timeout")??;
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(server_name, tcp)
        .await
        .context("TLS to API server")?;
    // HTTP/1.0: no chunked encoding in the answer, connection closes after the body.
    let req = format!(
        "GET /api/v1/nodes/{name} HTTP/1.0\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nAccept: application/json\r\n\r\n",
        token.trim()
    );
    stream.write_all(req.as_bytes()).await?;
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut resp))
        .await
        .context("API server read timeout")??;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| anyhow!("bad HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("GET node {name}: {status} {}", body.chars().take(300).collect::<String>());
    }
    Ok(body.to_string())
}

const STUN_MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// One STUN binding request (RFC 5389) from `sock`; the XOR-MAPPED-ADDRESS answer.
pub fn stun_mapped_address(sock: &UdpSocket, server: &str) -> anyhow::Result<SocketAddr> {
    let target = server.to_socket_addrs()?.next().ok_or_else(|| anyhow!("cannot resolve {server}"))?;
    let mut req = vec![0x00, 0x01, 0x00, 0x00];
    req.extend_from_slice(&STUN_MAGIC);
    let txid: [u8; 12] = std::array::from_fn(|_| fastrand::u8(..));
    req.extend_from_slice(&txid);
    let old = sock.read_timeout().ok().flatten();
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut buf = [0u8; 1500];
    let mut result = Err(anyhow!("no STUN answer from {server}"));
    'tries: for _ in 0..6 {
        sock.send_to(&req, target)?;
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        while std::time::Instant::now() < deadline {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            if from != target {
                continue;
            }
            if let Some(a) = parse_binding_response(&buf[..n], &txid) {
                result = Ok(a);
                break 'tries;
            }
        }
    }
    sock.set_read_timeout(old)?;
    result
}

/// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS) of a binding success response.
pub fn parse_binding_response(buf: &[u8], txid: &[u8; 12]) -> Option<SocketAddr> {
    if buf.len() < 20 || buf[0..2] != [0x01, 0x01] || buf[4..8] != STUN_MAGIC || buf[8..20] != txid[..] {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(20..20 + len)?;
    let mut at = 0;
    let mut plain = None;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let v = body.get(at + 4..at + 4 + alen)?;
        if (typ == 0x0020 || typ == 0x0001) && v.len() >= 8 && v[1] == 0x01 {
            let xor = typ == 0x0020;
            let mut port = u16::from_be_bytes([v[2], v[3]]);
            let mut ip = [v[4], v[5], v[6], v[7]];
            if xor {
                port ^= 0x2112;
                for (b, m) in ip.iter_mut().zip(STUN_MAGIC) {
                    *b ^= m;
                }
            }
            let a = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port);
            if xor {
                return Some(a);
            }
            plain = Some(a);
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    plain
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_address_parsing() {
        let j = r#"{"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.5"},
            {"type":"ExternalIP","address":"203.0.113.7"},{"type":"Hostname","address":"n1"}]}}"#;
        assert_eq!(node_addresses(j, "ExternalIP").unwrap(), vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(node_addresses(j, "InternalIP").unwrap(), vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(node_addresses(r#"{"status":{}}"#, "InternalIP").is_err());
        assert!(node_addresses("garbage", "InternalIP").is_err());
    }

    #[test]
    fn stun_against_a_fake_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let saddr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            assert!(n >= 20);
            let mut resp = vec![0x01, 0x01, 0x00, 12];
            resp.extend_from_slice(&buf[4..20]);
            let port = 4242u16 ^ 0x2112;
            resp.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
            resp.extend_from_slice(&port.to_be_bytes());
            for (b, m) in [198u8, 51, 100, 9].iter().zip(STUN_MAGIC) {
                resp.push(b ^ m);
            }
            server.send_to(&resp, from).unwrap();
        });
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let got = stun_mapped_address(&client, &saddr.to_string()).unwrap();
        assert_eq!(got, "198.51.100.9:4242".parse().unwrap());
    }
}
