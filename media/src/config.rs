//! Command line / environment configuration. The operator sets the environment; the names
//! come from the contract crate (`convene_proto::bridge::env`).
use std::net::IpAddr;

use clap::{Parser, ValueEnum};
pub use convene_proto::bridge::AddressSource;
use convene_proto::bridge::{common_env, env};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Logging for the media binaries (bridge, recorder): `RUST_LOG` or a default that keeps
/// str0m's per-packet chatter out, and stun-types' warning per malformed STUN message (a
/// stranger's packets must not become log lines).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,str0m=warn,dimpl=warn,is=warn,stun_types=error")
    });
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[derive(Debug, Clone, Parser)]
#[command(name = "convene-bridge", version, about = "Convene SFU media bridge")]
pub struct Config {
    /// UDP port shared by every endpoint (ICE-lite demultiplexing).
    #[arg(long, env = env::UDP_PORT, default_value_t = 10000)]
    pub udp_port: u16,
    /// ICE-TCP (passive) port for clients whose UDP is blocked (0 = ephemeral).
    #[arg(long, env = env::TCP_PORT, default_value_t = 4443)]
    pub tcp_port: u16,
    /// HTTP port: /metrics, /health, /ready, POST /drain.
    #[arg(long, env = env::HTTP_PORT, default_value_t = 8080)]
    pub http_port: u16,
    /// Local address to bind every socket to.
    #[arg(long, env = env::BIND, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// How the advertised candidate address is found.
    #[arg(long, env = env::ADDRESS_SOURCE, default_value = "static")]
    pub address_source: AddressSource,
    /// Comma-separated addresses to advertise (address source `static`; empty = the bind
    /// address, or the first non-loopback interface address when bound to 0.0.0.0).
    /// (Kept as text so an empty env value, as a template may render it, means "none".)
    #[arg(long, env = env::STATIC_ADDRESSES, value_delimiter = ',')]
    pub static_addresses: Vec<String>,
    /// STUN server (`host:port`) for address source `stun`.
    #[arg(long, env = env::STUN_SERVER)]
    pub stun_server: Option<String>,
    /// Node name (downward API) for the node-* address sources.
    #[arg(long, env = env::NODE_NAME)]
    pub node_name: Option<String>,
    /// Signaling's bridge-control WebSocket (`ws://…/bridge`). Without it the bridge runs
    /// undriven (tests drive it in-process).
    #[arg(long, env = env::SIGNALING_URL)]
    pub signaling_url: Option<String>,
    /// Shared secret: bearer token towards signaling and for POST /drain.
    #[arg(long, env = env::SECRET, hide_env_values = true)]
    pub secret: Option<String>,
    /// Bridge identity (defaults to the host/pod name).
    #[arg(long, env = env::ID)]
    pub bridge_id: Option<String>,
    #[arg(long, env = env::REGION)]
    pub region: Option<String>,
    /// Capacity in endpoints (for stress).
    #[arg(long, env = env::MAX_ENDPOINTS, default_value_t = 500)]
    pub max_endpoints: u64,
    /// Capacity in Mbit/s sent (for stress).
    #[arg(long, env = env::MAX_BITRATE_MBPS, default_value_t = 1000.0)]
    pub max_bitrate_mbps: f64,
    #[arg(long, env = common_env::LOG_FORMAT, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Packets per second accepted from one source address; more is dropped as a flood.
    #[arg(long, env = env::MAX_PPS_PER_SOURCE, default_value_t = 20000.0)]
    pub max_pps_per_source: f64,
    /// Audio receive slots per endpoint (whose audio it hears at once: the loudest speakers).
    #[arg(long, env = env::AUDIO_SLOTS, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub audio_slots: u16,
    /// Video receive slots per endpoint (cameras and screens it gets at once, by last-N).
    #[arg(long, env = env::VIDEO_SLOTS, default_value_t = 20, value_parser = clap::value_parser!(u16).range(0..=100))]
    pub video_slots: u16,
    /// Audio receive slots of a hidden endpoint (a recorder, which hears everyone): the most
    /// participants whose audio one recording holds.
    #[arg(long, env = env::RECORDER_AUDIO_SLOTS, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub recorder_audio_slots: u16,
    /// Video receive slots of a hidden endpoint (a recorder): the most cameras and screens one
    /// recording holds.
    #[arg(long, env = env::RECORDER_VIDEO_SLOTS, default_value_t = 48, value_parser = clap::value_parser!(u16).range(0..=256))]
    pub recorder_video_slots: u16,
    /// Bandwidth estimation (TWCC) per receiver, used to pick simulcast layers. Turning it off
    /// also turns off str0m's pacer (cheaper; layers then follow receiver constraints only).
    #[arg(long, env = env::BWE, default_value_t = true, action = clap::ArgAction::Set)]
    pub bwe: bool,
    /// Microseconds: the media thread wakes for the core's timers alone (str0m's pacer, BWE,
    /// retransmits) at most once per this, instead of for each paced packet; 0 wakes at every
    /// deadline (the default: with batched reads a 1 ms quantum measured more wake-ups, not
    /// fewer — media/BENCHMARKS.md, 2026-12-06). Not in the operator's contract: a tuning knob.
    #[arg(long, env = env::PACING_QUANTUM_US, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=20_000))]
    pub pacing_quantum_us: u64,
    /// Media workers (threads forwarding media; a conference lives on one). 0: as many as the
    /// cores this process may use (its cgroup's CPU quota and affinity).
    #[arg(long, env = env::WORKERS, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub workers: u16,
    /// Seconds between load reports to signaling.
    #[arg(long, env = env::LOAD_INTERVAL, default_value_t = 5)]
    pub load_interval_s: u64,
    /// Seconds a drain lasts before signaling moves the endpoints still here, when
    /// `POST /drain` names no deadline.
    #[arg(long, env = env::DRAIN_DEADLINE_SECONDS, default_value_t = 60)]
    pub drain_deadline_seconds: u64,
    /// ICE-TCP connections held at most; past it the oldest one without ICE makes room.
    #[arg(long, env = env::ICE_TCP_MAX_CONNECTIONS, default_value_t = 4096)]
    pub ice_tcp_max_connections: usize,
    /// ICE-TCP connections one source address may hold.
    #[arg(long, env = env::ICE_TCP_MAX_PER_SOURCE, default_value_t = 16)]
    pub ice_tcp_max_per_source: usize,
    /// Milliseconds an ICE-TCP connection has to complete ICE (a valid STUN binding).
    #[arg(long, env = env::ICE_TCP_HANDSHAKE_TIMEOUT_MS, default_value_t = 5000)]
    pub ice_tcp_handshake_timeout_ms: u64,
    /// HTTP connections held at most; past it the oldest one that sent no request makes room.
    #[arg(long, env = env::HTTP_MAX_CONNECTIONS, default_value_t = 256)]
    pub http_max_connections: usize,
    /// HTTP connections one source address may hold.
    #[arg(long, env = env::HTTP_MAX_PER_SOURCE, default_value_t = 16)]
    pub http_max_per_source: usize,
    /// Milliseconds an HTTP connection has to send a complete request head, counted from
    /// accept and again after each response (so also the idle keep-alive time); also the
    /// longest a transfer may stall.
    #[arg(long, env = env::HTTP_REQUEST_TIMEOUT_MS, default_value_t = 5000)]
    pub http_request_timeout_ms: u64,
    /// Largest HTTP request body accepted (no endpoint takes a body; 413 beyond).
    #[arg(long, env = env::HTTP_MAX_BODY_BYTES, default_value_t = 4096)]
    pub http_max_body_bytes: u64,
    /// Largest control message (and WebSocket frame) accepted from signaling; a larger one
    /// closes the connection.
    #[arg(long, env = env::CONTROL_MAX_MESSAGE_BYTES, default_value_t = 4 * crate::control::MAX_MESSAGE_BYTES)]
    pub control_max_message_bytes: usize,
    /// Messages for signaling queued at most; past it they are dropped and the control
    /// connection is reset (signaling resyncs on `register`).
    #[arg(long, env = env::CONTROL_QUEUE, default_value_t = 4096)]
    pub control_queue: usize,
    /// Milliseconds between pings to signaling; after three intervals with nothing read, or a
    /// send stuck that long, the connection is presumed dead and dialled again.
    #[arg(long, env = env::CONTROL_KEEPALIVE_MS, default_value_t = 10_000)]
    pub control_keepalive_ms: u64,
    /// PEM CA bundle signaling's certificate must chain to (`wss://`); default: system roots.
    #[arg(long, env = env::CONTROL_CA_FILE)]
    pub control_ca_file: Option<std::path::PathBuf>,
}

impl Config {
    /// The media workers to run (`--workers`, or the cores available).
    pub fn media_workers(&self) -> usize {
        match self.workers {
            0 => {
                std::thread::available_parallelism().map_or(1, |n| n.get()).min(crate::io::steer::MAX_WORKERS)
            }
            n => usize::from(n),
        }
    }

    pub fn tcp_limits(&self) -> crate::io::tcp::TcpLimits {
        crate::io::tcp::TcpLimits {
            max_connections: self.ice_tcp_max_connections.max(1),
            max_per_source: self.ice_tcp_max_per_source.max(1),
            handshake_timeout: std::time::Duration::from_millis(self.ice_tcp_handshake_timeout_ms),
        }
    }
}

impl Config {
    pub fn http_limits(&self) -> crate::http::server::HttpLimits {
        crate::http::server::HttpLimits {
            max_connections: self.http_max_connections.max(1),
            max_per_source: self.http_max_per_source.max(1),
            request_timeout: std::time::Duration::from_millis(self.http_request_timeout_ms.max(1)),
            max_body_bytes: self.http_max_body_bytes,
        }
    }

    /// `--static-addresses` parsed, ignoring empty items.
    pub fn static_ips(&self) -> anyhow::Result<Vec<IpAddr>> {
        self.static_addresses
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| anyhow::anyhow!("invalid static address {s:?}")))
            .collect()
    }

    /// The bridge id: flag/env, else `HOSTNAME` (the pod name), else /etc/hostname.
    pub fn bridge_id(&self) -> String {
        if let Some(id) = &self.bridge_id {
            return id.clone();
        }
        if let Ok(h) = std::env::var("HOSTNAME")
            && !h.is_empty()
        {
            return h;
        }
        std::fs::read_to_string("/etc/hostname")
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "convene-bridge".into())
    }

    /// A configuration for tests: everything on `bind`, ephemeral ports.
    pub fn for_test(bind: IpAddr) -> Config {
        Config {
            udp_port: 0,
            tcp_port: 0,
            http_port: 0,
            bind,
            address_source: AddressSource::Static,
            static_addresses: Vec::new(),
            stun_server: None,
            node_name: None,
            signaling_url: None,
            secret: Some("test-secret".into()),
            bridge_id: Some("test-bridge".into()),
            region: None,
            max_endpoints: 100,
            max_bitrate_mbps: 1000.0,
            log_format: LogFormat::Text,
            load_interval_s: 1,
            max_pps_per_source: 20000.0,
            audio_slots: 5,
            video_slots: 20,
            recorder_audio_slots: 32,
            recorder_video_slots: 48,
            bwe: true,
            pacing_quantum_us: 0,
            workers: 0,
            drain_deadline_seconds: 60,
            ice_tcp_max_connections: 4096,
            ice_tcp_max_per_source: 16,
            ice_tcp_handshake_timeout_ms: 5000,
            http_max_connections: 256,
            http_max_per_source: 16,
            http_request_timeout_ms: 5000,
            http_max_body_bytes: 4096,
            control_max_message_bytes: 4 * crate::control::MAX_MESSAGE_BYTES,
            control_queue: 4096,
            control_keepalive_ms: 10_000,
            control_ca_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_flags() {
        let c = Config::try_parse_from(["convene-bridge"]).unwrap();
        assert_eq!((c.udp_port, c.tcp_port, c.http_port), (10000, 4443, 8080));
        assert_eq!(c.address_source, AddressSource::Static);
        let c = Config::try_parse_from([
            "convene-bridge",
            "--address-source",
            "node-external-ip",
            "--static-addresses",
            "10.0.0.1,10.0.0.2",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(c.address_source, AddressSource::NodeExternalIp);
        assert_eq!(c.static_ips().unwrap().len(), 2);
        assert_eq!(c.log_format, LogFormat::Json);
        let c = Config::try_parse_from(["convene-bridge", "--static-addresses", ""]).unwrap();
        assert!(c.static_ips().unwrap().is_empty());
        let c = Config::try_parse_from(["convene-bridge", "--static-addresses", "nope"]).unwrap();
        assert!(c.static_ips().is_err());
        let c =
            Config::try_parse_from(["convene-bridge", "--audio-slots", "3", "--video-slots", "9"]).unwrap();
        assert_eq!((c.audio_slots, c.video_slots), (3, 9));
        assert_eq!((c.recorder_audio_slots, c.recorder_video_slots), (32, 48));
        assert!(Config::try_parse_from(["convene-bridge", "--audio-slots", "0"]).is_err());
        assert!(Config::try_parse_from(["convene-bridge", "--video-slots", "101"]).is_err());
    }
}
