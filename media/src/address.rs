//! Which address the bridge advertises in its ICE candidates, and how it was found.
//!
//! A wrong advertised address is the classic self-hosted SFU failure on Kubernetes ("two
//! people can talk, three cannot"): `status.hostIP` is not public and STUN behind a load
//! balancer returns the egress IP. So the source is explicit, logged and exported.
//!
//! Node addresses come from the Node object, read with the kube client: in a pod with the
//! pool's ServiceAccount (in-cluster credentials), elsewhere from `KUBECONFIG` (so the lookup is
//! tested against the cluster tier's real API server).
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::Node;
use tracing::{info, warn};

use crate::config::{AddressSource, Config};
use crate::control::AdvertisedAddress;

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
                .ok_or_else(|| anyhow!("NODE_NAME is required for {}", cfg.address_source.flag()))?;
            let node_obj = fetch_node(&node).await?;
            let want = cfg.address_source.node_address_type().unwrap_or("ExternalIP");
            let ips = node_addresses(&node_obj, want);
            if ips.is_empty() {
                bail!("node {node} has no {want} in status.addresses");
            }
            ips.into_iter().map(|ip| (ip, cfg.address_source.flag().to_string())).collect()
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

/// The bind address, or when that is unspecified the source address of the default route (a
/// pod's IP; loopback when there is none, e.g. in a test network namespace), as a bridge
/// without `--static-addresses` advertises (also the recorder's).
pub fn fallback_ip(bind: IpAddr) -> IpAddr {
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
pub fn node_addresses(node: &Node, kind: &str) -> Vec<IpAddr> {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .map(|list| list.iter().filter(|a| a.type_ == kind).filter_map(|a| a.address.parse().ok()).collect())
        .unwrap_or_default()
}

/// The Node `name`, with in-cluster credentials (or `KUBECONFIG`).
async fn fetch_node(name: &str) -> anyhow::Result<Node> {
    let client = kube::Client::try_default().await.context("Kubernetes API credentials")?;
    let api: kube::Api<Node> = kube::Api::all(client);
    tokio::time::timeout(Duration::from_secs(10), api.get(name))
        .await
        .context("API server timeout")?
        .with_context(|| format!("reading Node {name}"))
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
        let node = |j: &str| -> Node { serde_json::from_str(j).unwrap() };
        let n = node(
            r#"{"metadata":{"name":"n1"},"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.5"},
            {"type":"ExternalIP","address":"203.0.113.7"},{"type":"Hostname","address":"n1"}]}}"#,
        );
        assert_eq!(node_addresses(&n, "ExternalIP"), vec!["203.0.113.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(node_addresses(&n, "InternalIP"), vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert!(node_addresses(&node(r#"{"metadata":{"name":"n2"},"status":{}}"#), "InternalIP").is_empty());
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
