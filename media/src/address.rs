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
use stun_types::attribute::XorMappedAddress;
use stun_types::message::{BINDING, Message, MessageClass, MessageWrite, MessageWriteVec, TransactionId};
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

/// One STUN Binding request (RFC 8489) from `sock`, retried; the XOR-MAPPED-ADDRESS of the
/// success answer that carries its transaction id (anything else on the socket is ignored).
pub fn stun_mapped_address(sock: &UdpSocket, server: &str) -> anyhow::Result<SocketAddr> {
    let target = server.to_socket_addrs()?.next().ok_or_else(|| anyhow!("cannot resolve {server}"))?;
    let req = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
    let txid = Message::from_bytes(&req).map_err(|e| anyhow!("STUN request: {e}"))?.transaction_id();
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
            if let Some(a) = mapped_address(&buf[..n], txid) {
                result = Ok(a);
                break 'tries;
            }
        }
    }
    sock.set_read_timeout(old)?;
    result
}

/// The XOR-MAPPED-ADDRESS of a Binding success answer to transaction `txid`.
fn mapped_address(buf: &[u8], txid: TransactionId) -> Option<SocketAddr> {
    let msg = Message::from_bytes(buf).ok()?;
    if !msg.has_class(MessageClass::Success) || !msg.has_method(BINDING) || msg.transaction_id() != txid {
        return None;
    }
    Some(msg.attribute::<XorMappedAddress>().ok()?.addr(txid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_types::message::MessageWriteExt;

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

    /// A STUN server on loopback that answers each request once with a stray answer (another
    /// transaction, another address) and then the real one, mapping every client to `mapped`.
    fn fake_stun_server(mapped: SocketAddr) -> SocketAddr {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let Ok(req) = Message::from_bytes(&buf[..n]) else { continue };
                let stray = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
                let stray = Message::from_bytes(&stray).unwrap();
                let elsewhere: SocketAddr = "192.0.2.99:1".parse().unwrap();
                for (msg, addr) in [(&stray, elsewhere), (&req, mapped)] {
                    let mut out = Message::builder_success(msg, MessageWriteVec::new());
                    out.add_attribute(&XorMappedAddress::new(addr, msg.transaction_id())).unwrap();
                    server.send_to(&out.finish(), from).unwrap();
                }
            }
        });
        addr
    }

    #[test]
    fn stun_finds_the_mapped_address_of_its_own_transaction() {
        for mapped in ["198.51.100.9:4242", "[2001:db8::7]:50000"] {
            let mapped: SocketAddr = mapped.parse().unwrap();
            let server = fake_stun_server(mapped);
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            assert_eq!(stun_mapped_address(&client, &server.to_string()).unwrap(), mapped);
        }
    }

    #[test]
    fn stun_refuses_what_is_not_a_success_answer_to_its_request() {
        let txid = TransactionId::generate();
        let req = Message::builder(
            stun_types::message::MessageType::from_class_method(MessageClass::Request, BINDING),
            txid,
            MessageWriteVec::new(),
        )
        .finish();
        let req = Message::from_bytes(&req).unwrap();
        let mut ok = Message::builder_success(&req, MessageWriteVec::new());
        ok.add_attribute(&XorMappedAddress::new("203.0.113.1:9".parse().unwrap(), txid)).unwrap();
        let ok = ok.finish();
        assert_eq!(mapped_address(&ok, txid), Some("203.0.113.1:9".parse().unwrap()));
        assert_eq!(mapped_address(&ok, TransactionId::generate()), None, "another transaction");
        assert_eq!(mapped_address(&ok[..ok.len() - 1], txid), None, "truncated");
        let empty = Message::builder_success(&req, MessageWriteVec::new()).finish();
        assert_eq!(mapped_address(&empty, txid), None, "no address");
        let error = Message::builder_error(&req, MessageWriteVec::new()).finish();
        assert_eq!(mapped_address(&error, txid), None, "an error answer");
        assert_eq!(mapped_address(&[0u8; 20], txid), None);
    }

    #[test]
    fn stun_without_an_answer_is_an_error() {
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let started = std::time::Instant::now();
        let err = stun_mapped_address(&client, &silent.local_addr().unwrap().to_string()).unwrap_err();
        assert!(err.to_string().contains("no STUN answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
