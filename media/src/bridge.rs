//! Wiring: sockets, the media thread, HTTP, load reporting and the control client.
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use str0m::Candidate;
use str0m::net::TcpType;
use tracing::info;

use crate::config::Config;
use crate::control::{
    AdvertisedAddress, Drain, FromBridge, IceCounts, LoadReport, PROTOCOL_VERSION, ToBridge,
};
use crate::control_queue::ControlIn;
use crate::io::Command;
use crate::io::batch::BatchSocket;
use crate::io::dispatch::{Dispatch, Shared, Worker};
use crate::io::latency::LatencyHistogram;
use crate::io::steer::{WorkerTx, ufrag_prefix};
use crate::io::udp::{Input, MediaLoop, TcpWriters, Waker};
use crate::metrics::{Metrics, stress};
use crate::sfu::{Sfu, SfuConfig, SfuCounters};

/// A running bridge. Control messages go in with [`Bridge::send`]; what the bridge says to
/// signaling comes out of [`Bridge::take_events`] (taken by the signaling client when
/// `--signaling-url` is set, otherwise by whoever drives the bridge, e.g. a test).
pub struct Bridge {
    pub cfg: Config,
    pub bridge_id: String,
    pub udp_addr: SocketAddr,
    pub tcp_addr: Option<SocketAddr>,
    pub http_addr: SocketAddr,
    pub advertised: Vec<AdvertisedAddress>,
    pub metrics: Arc<Metrics>,
    pub latency: Arc<LatencyHistogram>,
    dispatch: Arc<Dispatch>,
    /// Media workers running (`--workers`).
    pub workers: usize,
    events: Mutex<Option<ControlIn>>,
    /// While draining: when it began and its deadline. The bridge owns the drain deadline;
    /// signaling and the operator read it from the load reports.
    drain: Mutex<Option<(Instant, Duration)>>,
    /// Media workers still running.
    media_alive: Arc<AtomicUsize>,
    load: Mutex<LoadReport>,
    /// The clients' ICE counts signaling last sent (`ice_stats`), and when.
    ice: Mutex<Option<(IceCounts, Instant)>>,
}

/// ICE counts older than this are not reported (signaling sends them every few seconds).
pub const ICE_STALE: Duration = Duration::from_secs(60);

impl Bridge {
    pub async fn start(cfg: Config) -> anyhow::Result<Arc<Bridge>> {
        crate::install_crypto();
        // A bad signaling URL or CA bundle stops the bridge here, before anything runs.
        let control_tls = match &cfg.signaling_url {
            Some(url) => crate::control_dial::tls_for(url, cfg.control_ca_file.as_deref())?,
            None => None,
        };
        let metrics = Arc::new(Metrics::new());
        let latency = Arc::new(LatencyHistogram::default());

        let workers = cfg.media_workers();
        // Several workers share the port as an SO_REUSEPORT group, one socket each (`io::steer`).
        let udp = bind_udp(SocketAddr::new(cfg.bind, cfg.udp_port), workers > 1)
            .with_context(|| format!("binding UDP {}:{}", cfg.bind, cfg.udp_port))?;
        let udp_addr = udp.local_addr()?;
        // ICE-TCP is always on (port 0 = an ephemeral port, as for UDP; used by tests).
        let tcp = Some(
            tokio::net::TcpListener::bind(SocketAddr::new(cfg.bind, cfg.tcp_port))
                .await
                .with_context(|| format!("binding TCP {}:{}", cfg.bind, cfg.tcp_port))?,
        );
        let tcp_addr = tcp.as_ref().and_then(|l| l.local_addr().ok());
        let http = tokio::net::TcpListener::bind(SocketAddr::new(cfg.bind, cfg.http_port))
            .await
            .with_context(|| format!("binding HTTP {}:{}", cfg.bind, cfg.http_port))?;
        let http_addr = http.local_addr()?;

        let found = crate::address::discover(&cfg, &udp).await?;
        let advertised = crate::address::as_advertised(&found);
        for a in &advertised {
            metrics.advertised.with_label_values(&[&a.address, &a.source]).set(1.0);
        }
        let mut candidates = Vec::new();
        let (mut v4, mut v6) = (None, None);
        let mut tcp_cand = None;
        for (ip, _) in &found {
            let ua = SocketAddr::new(*ip, udp_addr.port());
            candidates.push(Candidate::host(ua, "udp").context("udp candidate")?);
            match ip {
                IpAddr::V4(_) => v4 = v4.or(Some(ua)),
                IpAddr::V6(_) => v6 = v6.or(Some(ua)),
            }
            if let Some(t) = tcp_addr {
                let ta = SocketAddr::new(*ip, t.port());
                tcp_cand = tcp_cand.or(Some(ta));
                candidates.push(
                    Candidate::builder()
                        .tcp()
                        .host(ta)
                        .tcptype(TcpType::Passive)
                        .build()
                        .context("tcp candidate")?,
                );
            }
        }

        let sfu_cfg = SfuConfig {
            candidates,
            max_endpoints: cfg.max_endpoints as usize,
            per_source_pps: cfg.max_pps_per_source,
            audio_slots: cfg.audio_slots.into(),
            video_slots: cfg.video_slots.into(),
            hidden_audio_slots: cfg.recorder_audio_slots.into(),
            hidden_video_slots: cfg.recorder_video_slots.into(),
            initial_bwe: cfg.bwe.then(|| str0m::bwe::Bitrate::kbps(2_500)),
            ..SfuConfig::default()
        };
        // str0m sets its crypto up at the first endpoint's build: ~30 ms of one-time work, and
        // far more on a busy node, that the first join of every bridge would wait for.
        drop(str0m::Rtc::builder().build(Instant::now()));
        let (ev_tx, ev_rx) = crate::control_queue::queue(cfg.control_queue, metrics.clone());
        let tcp_writers: TcpWriters = Arc::default();
        for w in 0..workers {
            metrics.worker_endpoints.with_label_values(&[&w.to_string()]).set(0);
        }
        let media_alive = Arc::new(AtomicUsize::new(workers));
        let shared =
            (workers > 1).then(|| Arc::new(Shared::new(workers, metrics.worker_conferences.clone())));
        let pacing_quantum = Duration::from_micros(cfg.pacing_quantum_us);
        // What every worker's loop shares; each has its own core, socket handle and index.
        let media_loop = |sfu: SfuConfig, socket, control_out, worker, shared| MediaLoop {
            sfu: Sfu::new(sfu, Instant::now()),
            socket,
            control_out,
            tcp_writers: tcp_writers.clone(),
            udp_local_v4: v4,
            udp_local_v6: v6,
            latency: latency.clone(),
            metrics: metrics.clone(),
            worker,
            shared,
            own_census: Default::default(),
            exported: SfuCounters::default(),
            pacing_quantum,
            ended: Vec::new(),
        };
        let (dispatch, loops) = match &shared {
            None => {
                let (tx, rx) = std::sync::mpsc::channel();
                let socket = BatchSocket::new(udp).context("batched media socket (recvmmsg/GSO, epoll)")?;
                let media = media_loop(sfu_cfg, socket, ev_tx, 0, None);
                // Several workers are woken through their channels; the only one by a datagram.
                let waker = Waker::new(udp_addr).context("waker socket")?;
                let input = Input::Socket { commands: rx, waker_addr: waker.local_addr() };
                (Dispatch::One { tx, waker }, vec![(media, input)])
            }
            Some(shared) => {
                // The other sockets of the group join only now: the address discovery above
                // read its answers on the first, which alone held the port then.
                let mut sockets = vec![udp];
                for _ in 1..workers {
                    sockets
                        .push(bind_udp(udp_addr, true).context("a media worker's socket of the UDP port")?);
                }
                let mut batch_sockets = Vec::new();
                let mut txs = Vec::new();
                let mut rxs = Vec::new();
                for socket in sockets {
                    let socket =
                        BatchSocket::new(socket).context("batched media socket (recvmmsg/GSO, epoll)")?;
                    let (tx, rx) = std::sync::mpsc::channel();
                    txs.push(WorkerTx::new(tx, socket.waker().context("a media worker's waker")?));
                    rxs.push(rx);
                    batch_sockets.push(socket);
                }
                let mut loops = Vec::new();
                for (index, (socket, rx)) in batch_sockets.into_iter().zip(rxs).enumerate() {
                    let cfg = SfuConfig { steering: Some(ufrag_prefix(index)), ..sfu_cfg.clone() };
                    let media = media_loop(cfg, socket, ev_tx.clone(), index, Some(shared.clone()));
                    let worker = Worker { index, input: rx, shared: shared.clone(), peers: txs.clone() };
                    loops.push((media, Input::Steered(worker)));
                }
                let dispatch = Dispatch::Many {
                    workers: txs,
                    shared: shared.clone(),
                    control_out: ev_tx,
                    max_endpoints: cfg.max_endpoints,
                };
                (dispatch, loops)
            }
        };
        for (media, input) in loops {
            let alive = media_alive.clone();
            // Every worker's thread has the same name: tools count them as one kind.
            std::thread::Builder::new()
                .name("convene-media".into())
                .spawn(move || {
                    media.run(input);
                    alive.fetch_sub(1, Ordering::SeqCst);
                })
                .context("spawning a media worker")?;
        }
        let dispatch = Arc::new(dispatch);

        if let (Some(listener), Some(adv)) = (tcp, tcp_cand) {
            let limits = cfg.tcp_limits();
            let serve =
                crate::io::tcp::serve(listener, adv, dispatch.clone(), tcp_writers, limits, metrics.clone());
            tokio::spawn(serve);
        }

        let bridge = Arc::new(Bridge {
            bridge_id: cfg.bridge_id(),
            cfg,
            udp_addr,
            tcp_addr,
            http_addr,
            advertised,
            metrics,
            latency,
            dispatch,
            workers,
            events: Mutex::new(Some(ev_rx)),
            drain: Mutex::new(None),
            media_alive,
            load: Mutex::new(LoadReport::default()),
            ice: Mutex::new(None),
        });
        info!(
            bridge_id = %bridge.bridge_id,
            udp = %udp_addr,
            tcp = ?tcp_addr,
            http = %http_addr,
            workers = bridge.workers,
            "bridge started"
        );

        tokio::spawn(crate::http::serve(http, bridge.clone()));
        tokio::spawn(load_task(bridge.clone()));
        if let Some(url) = bridge.cfg.signaling_url.clone()
            && let Some(events) = bridge.take_events()
        {
            tokio::spawn(crate::control_client::run(url, bridge.clone(), events, control_tls));
        }
        Ok(bridge)
    }

    /// Hand a control message (from signaling) to the media thread. The clients' ICE counts
    /// are not its business: they are kept here for the load report.
    pub fn send(&self, msg: ToBridge) {
        if let ToBridge::IceStats { ice } = msg {
            if let Ok(mut i) = self.ice.lock() {
                *i = Some((ice, Instant::now()));
            }
            return;
        }
        self.command(Command::Control(msg));
    }

    fn command(&self, c: Command) {
        self.dispatch.send(c);
    }

    /// The stream of messages for signaling (once).
    pub fn take_events(&self) -> Option<ControlIn> {
        self.events.lock().ok()?.take()
    }

    /// Start draining with a deadline (from the drain's start; `None`: the configured
    /// default), or stop. Draining again keeps the start and takes the new deadline.
    pub fn set_draining(&self, draining: bool, deadline: Option<Duration>) {
        let now = Instant::now();
        let report = {
            let Ok(mut d) = self.drain.lock() else { return };
            let was = d.is_some();
            *d = draining.then(|| {
                let started = d.map_or(now, |(s, _)| s);
                (started, deadline.unwrap_or(Duration::from_secs(self.cfg.drain_deadline_seconds)))
            });
            if was != draining {
                info!(draining, deadline_s = d.map(|(_, t)| t.as_secs()), "drain state changed");
            }
            drain_report(*d, now)
        };
        self.command(Command::SetDraining(report));
    }

    /// The drain as reported to others, measured now.
    pub fn drain(&self) -> Option<Drain> {
        self.drain.lock().ok().and_then(|d| drain_report(*d, Instant::now()))
    }

    pub fn is_draining(&self) -> bool {
        self.drain.lock().map(|d| d.is_some()).unwrap_or(false)
    }

    pub fn is_alive(&self) -> bool {
        self.media_alive.load(Ordering::SeqCst) == self.workers
    }

    pub fn shutdown(&self) {
        self.command(Command::Shutdown);
    }

    pub fn register_message(&self) -> FromBridge {
        FromBridge::Register {
            protocol_version: PROTOCOL_VERSION,
            bridge_id: self.bridge_id.clone(),
            region: self.cfg.region.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            addresses: self.advertised.clone(),
            udp_port: self.udp_addr.port(),
            tcp_port: self.tcp_addr.map(|a| a.port()),
            drain: self.drain(),
        }
    }

    /// The latest load figures (rates refreshed every second), with the drain as of now and
    /// the clients' ICE counts signaling sent last (unless they are stale).
    pub fn load(&self) -> LoadReport {
        let figures = self.load.lock().map(|l| l.clone()).unwrap_or_default();
        let ice = self.ice.lock().ok().and_then(|i| *i).filter(|(_, at)| at.elapsed() < ICE_STALE);
        LoadReport { drain: self.drain(), ice: ice.map(|(c, _)| c), ..figures }
    }
}

/// Room for bursts on the media port: the kernel's default (~200 KB) holds ~100 datagrams,
/// a few milliseconds of a busy bridge's input. The kernel caps the request at
/// `net.core.rmem_max`/`wmem_max` (raise them on media nodes for big bridges); what it granted
/// is logged.
const UDP_BUFFER_BYTES: usize = 4 << 20;

/// The media port's socket, in an `SO_REUSEPORT` group when `group` (the kernel then lets
/// further sockets of this user bind the same address).
fn bind_udp(addr: SocketAddr, group: bool) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if group {
        s.set_reuse_port(true)?;
    }
    s.bind(&addr.into())?;
    let udp = UdpSocket::from(s);
    set_socket_buffers(&udp);
    Ok(udp)
}

fn set_socket_buffers(udp: &UdpSocket) {
    let s = socket2::SockRef::from(udp);
    let _ = s.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = s.set_send_buffer_size(UDP_BUFFER_BYTES);
    info!(
        receive = s.recv_buffer_size().ok(),
        send = s.send_buffer_size().ok(),
        asked = UDP_BUFFER_BYTES,
        "media port socket buffers (bytes; capped by net.core.rmem_max/wmem_max)"
    );
}

fn drain_report(drain: Option<(Instant, Duration)>, now: Instant) -> Option<Drain> {
    drain.map(|(started, deadline)| Drain {
        elapsed_ms: now.saturating_duration_since(started).as_millis() as u64,
        deadline_ms: deadline.as_millis() as u64,
    })
}

/// Once a second: rates from counters, stress, gauges.
async fn load_task(bridge: Arc<Bridge>) {
    let m = &bridge.metrics;
    let mut last =
        (Instant::now(), m.bytes_in.get(), m.bytes_out.get(), m.packets_in.get(), m.packets_out.get());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = Instant::now();
        let cur = (now, m.bytes_in.get(), m.bytes_out.get(), m.packets_in.get(), m.packets_out.get());
        let dt = now.saturating_duration_since(last.0).as_secs_f64().max(0.001);
        let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / dt;
        let bin = rate(last.1, cur.1) * 8.0;
        let bout = rate(last.2, cur.2) * 8.0;
        m.bitrate_in_bps.set(bin);
        m.bitrate_out_bps.set(bout);
        let endpoints = m.endpoints.get().max(0) as u64;
        let s = stress(endpoints, bridge.cfg.max_endpoints, bin.max(bout), bridge.cfg.max_bitrate_mbps * 1e6);
        m.stress.set(s);
        if let Ok(mut l) = bridge.load.lock() {
            *l = LoadReport {
                endpoints,
                conferences: m.conferences.get().max(0) as u64,
                largest_conference: m.largest_conference.get().max(0) as u64,
                bitrate_in_bps: bin as u64,
                bitrate_out_bps: bout as u64,
                packets_in_per_s: rate(last.3, cur.3) as u64,
                packets_out_per_s: rate(last.4, cur.4) as u64,
                stress: s,
                drain: None, // filled in when read: the drain is measured at that moment
                ice: None,   // as is what signaling sent last
            };
        }
        last = cur;
    }
}
