//! Real coturn with the `turnserver.conf` the operator renders for a TurnPool with its own
//! peer ranges (given as CIDR): a TURN client asks for permissions to relay to peers, and
//! coturn grants exactly the bridges and the allowed range. The private ranges stay denied with
//! a custom list, and coturn reads every CIDR rule (it starts without a rule it cannot parse).
//! Needs `turnserver` (scripts/install-deps.sh installs coturn). Loopback only.

use base64::Engine;
use convene_operator::crd::TurnPool;
use convene_operator::render::turn;
use hmac::{Hmac, Mac};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use turn_client_proto::api::{TurnClientApi, TurnConfig, TurnEvent, TurnPollRet};
use turn_client_proto::stun::agent::Transmit;
use turn_client_proto::types::{Instant, TransportType, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

const SECRET: &str = "coturn-test-secret";
const BRIDGE: &str = "127.0.0.7";

struct Coturn {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free for both UDP and TCP (coturn listens on both), never one handed out before in
/// this process (the tests run in parallel, and the kernel gives a released port again).
fn free_udp_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("a free port");
        let port = udp.local_addr().expect("bound").port();
        // CI once found the TCP side of a free UDP port taken (a client's ephemeral port).
        let tcp_free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if tcp_free && GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// coturn with the rendered config. Loopback peers are governed by the rendered ranges alone
/// (`--allow-loopback-peers`); the rest adapts the pod's command line to loopback.
fn start(config: &str, port: u16) -> Coturn {
    let dir = std::env::temp_dir().join(format!("convene-coturn-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let conf = dir.join("turnserver.conf");
    // The file's own port wins over the command line's in coturn: use a free one.
    let config: String = config
        .lines()
        .map(|l| {
            if l.starts_with("listening-port=") {
                format!("listening-port={port}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&conf, config).expect("write config");
    let log = dir.join("coturn.log");
    let out = std::fs::File::create(&log).expect("log file");
    let child = Command::new("turnserver")
        .arg("-c")
        .arg(&conf)
        .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers"])
        .arg(format!("--static-auth-secret={SECRET}"))
        .arg(format!("--pidfile={}", dir.join("pid").display()))
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()
        .expect("turnserver (coturn) is installed: run scripts/install-deps.sh");
    Coturn { child, log }
}

/// TURN REST credentials, as signaling hands them out: `expiry:user` and its HMAC-SHA1.
fn credentials() -> TurnCredentials {
    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600;
    let user = format!("{expiry}:coturn-test");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(user.as_bytes());
    let pass = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    TurnCredentials::new(&user, &pass)
}

/// The client's clock: time since the first call (`from_std` measures from a base instant).
fn now() -> Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    Instant::from_std(*BASE.get_or_init(std::time::Instant::now))
}

/// Drive the client over `sock` until `done` accepts an event or time runs out.
fn drive(
    client: &mut TurnClientUdp,
    sock: &UdpSocket,
    timeout: Duration,
    mut done: impl FnMut(&TurnEvent) -> bool,
) -> Option<TurnEvent> {
    let until = std::time::Instant::now() + timeout;
    let local = sock.local_addr().unwrap();
    let mut buf = vec![0u8; 2048];
    while std::time::Instant::now() < until {
        let t = now();
        // poll() advances the client (retransmits, the authenticated retry); then send what
        // it queued and hand over its events.
        let wait = match client.poll(t) {
            TurnPollRet::WaitUntil(at) => at.saturating_duration_since(t),
            TurnPollRet::Closed => return None,
            // TCP allocations only; this client relays UDP.
            _ => Duration::from_millis(10),
        };
        while let Some(tx) = client.poll_transmit(t) {
            sock.send_to(tx.data.as_ref(), tx.to).expect("send to coturn");
        }
        while let Some(ev) = client.poll_event() {
            if done(&ev) {
                return Some(ev);
            }
        }
        sock.set_read_timeout(Some(wait.clamp(Duration::from_millis(1), Duration::from_millis(100))))
            .unwrap();
        if let Ok((n, from)) = sock.recv_from(&mut buf) {
            let transmit = Transmit { data: &buf[..n], transport: TransportType::Udp, from, to: local };
            let _ = client.recv(transmit, now());
        }
    }
    None
}

#[test]
fn coturn_relays_to_bridges_and_allowed_ranges_only() {
    let pool: TurnPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "convene.dev/v1alpha1",
        "kind": "TurnPool",
        "metadata": {"name": "relays", "namespace": "convene"},
        "spec": {
            "realm": "turn.localhost",
            "deniedPeerRanges": ["127.0.3.0/24"],
            "allowedPeerRanges": ["127.0.2.0/24"],
        }
    }))
    .expect("a TurnPool");
    let config = turn::config(&pool, &[BRIDGE.to_string()]);
    assert!(config.contains("denied-peer-ip=127.0.3.0-127.0.3.255"), "{config}");

    let port = free_udp_port();
    let coturn = start(&config, port);
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Ready when it holds its port (our own bind fails then).
    let started = std::time::Instant::now();
    while UdpSocket::bind(server).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "coturn did not listen on {server}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut client =
        TurnClientUdp::allocate(sock.local_addr().unwrap(), server, TurnConfig::new(credentials()));
    let allocated = drive(&mut client, &sock, Duration::from_secs(10), |e| {
        matches!(e, TurnEvent::AllocationCreated(..) | TurnEvent::AllocationCreateFailed(..))
    });
    let log = || std::fs::read_to_string(&coturn.log).unwrap_or_default();
    assert!(
        matches!(allocated, Some(TurnEvent::AllocationCreated(..))),
        "no allocation: {allocated:?}\n{}",
        log()
    );

    let mut granted = vec![];
    for peer in [BRIDGE, "127.0.2.5", "127.0.0.9", "127.0.3.5", "10.1.2.3", "192.168.1.1"] {
        let ip: IpAddr = peer.parse().unwrap();
        client.create_permission(TransportType::Udp, ip, now()).expect("permission request");
        let ev = drive(
            &mut client,
            &sock,
            Duration::from_secs(5),
            |e| matches!(e, TurnEvent::PermissionCreated(_, a) | TurnEvent::PermissionCreateFailed(_, a) if *a == ip),
        );
        match ev {
            Some(TurnEvent::PermissionCreated(..)) => granted.push(peer),
            Some(TurnEvent::PermissionCreateFailed(..)) => {}
            other => panic!("no answer for {peer}: {other:?}\n{}", log()),
        }
    }
    assert_eq!(
        granted,
        [BRIDGE, "127.0.2.5"],
        "only the bridge and the allowed range are reachable through the relay"
    );
    let log = log();
    assert!(!log.contains("Wrong address format"), "coturn could not parse a rendered range:\n{log}");
}

/// The doctor's TURN probe against a real coturn: STUN answers, an Allocate with a credential
/// minted from the right secret succeeds (and is released), one from another secret is
/// refused, and a port where nothing listens does not answer. Loopback only.
#[test]
fn the_doctor_probe_allocates_with_the_pools_secret_and_is_refused_with_another() {
    use convene_operator::doctor::probe::{self, Allocation};
    let pool: TurnPool = serde_json::from_value(serde_json::json!({
        "apiVersion": "convene.dev/v1alpha1",
        "kind": "TurnPool",
        "metadata": {"name": "relays", "namespace": "convene"},
        "spec": {"realm": "turn.localhost"}
    }))
    .expect("a TurnPool");
    let port = free_udp_port();
    let coturn = start(&turn::config(&pool, &[BRIDGE.to_string()]), port);
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let started = std::time::Instant::now();
    while UdpSocket::bind(server).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "coturn did not listen on {server}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = || std::fs::read_to_string(&coturn.log).unwrap_or_default();
    let seen = probe::stun_binding(server).unwrap_or_else(|e| panic!("no STUN answer: {e}\n{}", log()));
    assert_eq!(seen.ip(), server.ip());

    let expiry = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
    let user = convene_proto::turn::username(expiry as i64, "doctor");
    let started = std::time::Instant::now();
    let good = probe::turn_allocate(server, &user, &convene_proto::turn::credential(SECRET, &user));
    println!("allocate with the pool's secret: {good:?} in {:?}", started.elapsed());
    assert!(matches!(good, Allocation::Created(a) if a.ip() == server.ip()), "{good:?}\n{}", log());
    let bad = probe::turn_allocate(server, &user, &convene_proto::turn::credential("another", &user));
    assert_eq!(bad, Allocation::Refused, "{}", log());

    let silent: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let started = std::time::Instant::now();
    assert!(probe::stun_binding(silent).is_err());
    assert!(started.elapsed() <= probe::TIMEOUT + Duration::from_millis(500), "bounded by the timeout");
    assert_eq!(probe::turn_allocate(silent, &user, "x"), Allocation::NoAnswer);
}
