//! The doctor's reachability probes (the only part of it that talks to something other than
//! the API server): the shard's domain through the system resolver, a STUN Binding to each
//! bridge's media port and a TCP connect to its ICE-TCP port, and for each TURN relay a STUN
//! Binding and an authenticated Allocate (released at once). Each is bounded by [`TIMEOUT`];
//! the caller runs them concurrently. STUN by `stun-types`, TURN by `turn-client-proto`.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use stun_types::attribute::{ErrorCode, XorMappedAddress};
use stun_types::message::{BINDING, Message, MessageClass, MessageWrite, MessageWriteVec};
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet};
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::types::message::ALLOCATE;
use turn_client_proto::types::{TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

/// How long one probe waits for its answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// STUN retransmits within the timeout (a lost datagram is not "unreachable").
const RESEND: Duration = Duration::from_millis(500);

/// The addresses `domain` resolves to through the system resolver (getaddrinfo).
pub async fn resolve(domain: &str) -> Result<Vec<IpAddr>, String> {
    match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((domain, 443))).await {
        Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(addrs)) => {
            let mut ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            ips.sort();
            ips.dedup();
            Ok(ips)
        }
    }
}

/// A TCP connection to `addr` is accepted.
pub async fn tcp_connect(addr: SocketAddr) -> Result<(), String> {
    match tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(_)) => Ok(()),
    }
}

/// A UDP socket connected to `server` (so its local address is the one the server sees).
fn socket_to(server: SocketAddr) -> std::io::Result<UdpSocket> {
    let any: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let sock = UdpSocket::bind(any)?;
    sock.connect(server)?;
    Ok(sock)
}

/// A plain STUN Binding request to `server` (blocking, up to [`TIMEOUT`]): the address the
/// server saw it from.
pub fn stun_binding(server: SocketAddr) -> Result<SocketAddr, String> {
    let sock = socket_to(server).map_err(|e| e.to_string())?;
    let request = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
    let id = Message::from_bytes(&request).map_err(|e| e.to_string())?.transaction_id();
    let until = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 1500];
    let mut refused = None;
    while Instant::now() < until {
        if let Err(e) = sock.send(&request) {
            refused = Some(e.to_string());
        }
        let wait = RESEND.min(until.saturating_duration_since(Instant::now())).max(Duration::from_millis(1));
        sock.set_read_timeout(Some(wait)).map_err(|e| e.to_string())?;
        let until_resend = Instant::now() + wait;
        while Instant::now() < until_resend {
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                // An ICMP "port unreachable" on loopback; keep asking until the timeout.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    refused = Some("port unreachable".into());
                    break;
                }
                Err(_) => break,
            };
            let Ok(msg) = Message::from_bytes(&buf[..n]) else { continue };
            if msg.transaction_id() != id || !msg.has_class(MessageClass::Success) {
                continue;
            }
            return msg
                .attribute::<XorMappedAddress>()
                .map(|a| a.addr(id))
                .map_err(|_| "an answer without XOR-MAPPED-ADDRESS".to_string());
        }
        if refused.is_some() {
            std::thread::sleep(until_resend.saturating_duration_since(Instant::now()));
        }
    }
    Err(match refused {
        Some(r) => format!("no answer within {}s ({r})", TIMEOUT.as_secs()),
        None => format!("no answer within {}s", TIMEOUT.as_secs()),
    })
}

/// What a TURN Allocate with our credentials got.
#[derive(Clone, Debug, PartialEq)]
pub enum Allocation {
    /// The relayed address (the allocation is deleted again).
    Created(SocketAddr),
    /// The relay answered and refused to allocate (with a relay that answers STUN: the
    /// credentials).
    Refused,
    NoAnswer,
    Error(String),
}

/// The client's clock (turn-client-proto measures from a base instant).
fn turn_now() -> turn_client_proto::types::Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    turn_client_proto::types::Instant::from_std(*BASE.get_or_init(Instant::now))
}

/// An authenticated TURN Allocate (UDP) at `server` as `username`/`password`, then its
/// release (blocking, each up to [`TIMEOUT`]).
pub fn turn_allocate(server: SocketAddr, username: &str, password: &str) -> Allocation {
    let sock = match socket_to(server) {
        Ok(s) => s,
        Err(e) => return Allocation::Error(e.to_string()),
    };
    let Ok(local) = sock.local_addr() else { return Allocation::Error("no local address".into()) };
    let config = TurnConfig::new(TurnCredentials::new(username, password));
    let mut client = TurnClientUdp::allocate(local, server, config);
    // The client drops error answers to the authenticated request (they carry no integrity
    // it can check), so the second 401 is read here: the credentials were refused.
    let mut unauthorized = 0;
    let mut refused = |data: &[u8]| {
        let msg = Message::from_bytes(data).ok()?;
        if !msg.has_method(ALLOCATE) || !msg.has_class(MessageClass::Error) {
            return None;
        }
        let code = msg.attribute::<ErrorCode>().map(|e| e.code()).unwrap_or_default();
        unauthorized += u32::from(code == 401);
        (unauthorized >= 2 || (code != 401 && code != 438)).then_some(Allocation::Refused)
    };
    let outcome = drive(&mut client, &sock, &mut refused, |e| match e {
        TurnEvent::AllocationCreated(_, relayed) => Some(Allocation::Created(*relayed)),
        TurnEvent::AllocationCreateFailed(_) => Some(Allocation::Refused),
        _ => None,
    });
    let outcome = outcome.unwrap_or(Allocation::NoAnswer);
    if matches!(outcome, Allocation::Created(_)) && client.delete(turn_now()).is_ok() {
        // Until the relay confirms (or the timeout): the client then reports itself closed.
        drive(&mut client, &sock, |_: &[u8]| None::<()>, |_| None);
    }
    outcome
}

/// Run the client over `sock` until `seen` maps a datagram from the relay or `done` an
/// event, the client closes, or the timeout.
fn drive<T>(
    client: &mut TurnClientUdp,
    sock: &UdpSocket,
    mut seen: impl FnMut(&[u8]) -> Option<T>,
    mut done: impl FnMut(&TurnEvent) -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + TIMEOUT;
    let Ok(local) = sock.local_addr() else { return None };
    let mut buf = vec![0u8; 2048];
    while Instant::now() < until {
        let t = turn_now();
        let polled = client.poll(t);
        while let Some(tx) = client.poll_transmit(t) {
            let _ = sock.send(tx.data.as_ref());
        }
        // Events before Closed: a refused allocation closes the client and says why.
        while let Some(ev) = client.poll_event() {
            if let Some(out) = done(&ev) {
                return Some(out);
            }
        }
        let wait = match polled {
            TurnPollRet::WaitUntil(at) => at.saturating_duration_since(t),
            TurnPollRet::Closed => return None,
            _ => Duration::from_millis(10),
        };
        let left = until.saturating_duration_since(Instant::now());
        let wait = wait.clamp(Duration::from_millis(1), Duration::from_millis(100)).min(left);
        if wait.is_zero() || sock.set_read_timeout(Some(wait)).is_err() {
            break;
        }
        match sock.recv(&mut buf) {
            Ok(n) => {
                if let Some(out) = seen(&buf[..n]) {
                    return Some(out);
                }
                let from = client.remote_addr();
                let transmit = Transmit { data: &buf[..n], transport: TransportType::Udp, from, to: local };
                let _ = client.recv(transmit, turn_now());
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::thread::sleep(wait);
            }
            Err(_) => {}
        }
    }
    None
}
