//! Test harness: str0m clients on loopback and a test acting as signaling for an in-process
//! bridge. Everything is bounded in time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use convene_media::bridge::Bridge;
use convene_media::config::Config;
use convene_media::control::{FromBridge, SlotInfo, SourceInfo, SourceKind, ToBridge};
// The fake encoder (VP8 keyframe headers with layer marker at byte 10) is the load generator's.
use convene_loadgen::publish::{PublishConfig, Publisher, RIDS};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};

pub const LOOP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,str0m=error,dimpl=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// What a client received on one m-line.
#[derive(Debug, Default, Clone)]
pub struct Received {
    pub frames: u64,
    pub keyframes: u64,
    /// Keyframes whose depacketized VP8 header is valid (start code, dimensions).
    pub decodable_keyframes: u64,
    /// Layer index of each frame, in order (from our fake encoder's marker byte).
    pub layers: Vec<u8>,
    /// Height of the last decodable keyframe.
    pub last_height: Option<u32>,
    /// (layer, is_keyframe) at each change of layer.
    pub switches: Vec<(u8, bool)>,
}

pub struct Client {
    pub name: String,
    pub rtc: Rtc,
    pub socket: UdpSocket,
    pub local: SocketAddr,
    /// ICE-TCP instead of UDP: the stream to the bridge, its address, and a read buffer.
    pub tcp: Option<(TcpStream, SocketAddr, Vec<u8>)>,
    pub pending: Option<(u64, SdpPendingOffer)>,
    pub audio_mid: Option<Mid>,
    pub video_mid: Option<Mid>,
    pub simulcast: bool,
    /// Audio level to send (str0m convention: 0 loudest, -127 silence).
    pub audio_level: i8,
    pub connected: bool,
    /// What arrived per source, attributed by the slot map when it arrived.
    pub received: HashMap<String, Received>,
    /// Slot m-line → the source it carries now (the bridge's offer, then `slots`).
    pub slot_src: HashMap<Mid, String>,
    /// Frames on a slot not mapped yet: media and the `slots` message take different paths,
    /// so a new source's first frames may come first; they are its when the map comes.
    unmapped: HashMap<Mid, Received>,
    publisher: Option<Publisher>,
    initial_offer: Option<SdpOffer>,
}

impl Client {
    /// `publish`: send audio + video (3 simulcast layers if `simulcast`).
    pub fn new(name: &str, publish: bool, simulcast: bool) -> Client {
        convene_media::install_crypto();
        let socket = UdpSocket::bind(SocketAddr::new(LOOP, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp").unwrap());
        Client {
            name: name.to_string(),
            rtc,
            socket,
            local,
            tcp: None,
            pending: None,
            audio_mid: None,
            video_mid: None,
            simulcast: publish && simulcast,
            audio_level: -30,
            connected: false,
            received: HashMap::new(),
            slot_src: HashMap::new(),
            unmapped: HashMap::new(),
            publisher: None,
            initial_offer: None,
        }
        .with_offer_media(publish)
    }

    /// A client whose only candidate is ICE-TCP (active) towards the bridge's TCP port.
    pub fn new_tcp(name: &str, publish: bool, bridge_tcp: SocketAddr) -> Client {
        convene_media::install_crypto();
        let stream = TcpStream::connect(bridge_tcp).unwrap();
        stream.set_nonblocking(true).unwrap();
        stream.set_nodelay(true).unwrap();
        let local = stream.local_addr().unwrap();
        let socket = UdpSocket::bind(SocketAddr::new(LOOP, 0)).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut c = Client::new(name, publish, false);
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        let cand = Candidate::builder().tcp().host(local).tcptype(TcpType::Active).build().unwrap();
        rtc.add_local_candidate(cand);
        c.rtc = rtc;
        c.local = local;
        c.socket = socket;
        c.tcp = Some((stream, bridge_tcp, Vec::new()));
        c.audio_mid = None;
        c.video_mid = None;
        c.with_offer_media(publish)
    }

    fn with_offer_media(mut self, publish: bool) -> Client {
        let mut api = self.rtc.sdp_api();
        if publish {
            self.audio_mid = Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            let sim = self.simulcast.then(|| {
                let mut s = Simulcast::new();
                for r in RIDS {
                    s.add_send_layer(SimulcastLayer::new(r));
                }
                s
            });
            self.video_mid = Some(api.add_media(MediaKind::Video, Direction::SendOnly, None, None, sim));
        } else {
            api.add_channel("convene".into());
        }
        let (offer, pending) = api.apply().unwrap();
        self.pending = Some((0, pending));
        self.initial_offer = Some(offer);
        self.publisher = Some(Publisher::new(
            publish_config(self.simulcast),
            self.audio_mid,
            self.video_mid,
            Instant::now(),
        ));
        self
    }
}

impl Client {
    pub fn take_offer(&mut self) -> String {
        self.initial_offer.take().map(|o| o.to_sdp_string()).unwrap_or_default()
    }

    /// Sources this client publishes, as declared in its offer.
    pub fn declared_sources(&self) -> Vec<SourceInfo> {
        let mut v = Vec::new();
        if let Some(m) = self.audio_mid {
            v.push(SourceInfo { mid: m.to_string(), kind: SourceKind::Audio, endpoint: None, name: None });
        }
        if let Some(m) = self.video_mid {
            v.push(SourceInfo { mid: m.to_string(), kind: SourceKind::Camera, endpoint: None, name: None });
        }
        v
    }

    pub fn accept_answer(&mut self, id: u64, sdp: &str) {
        let answer = SdpAnswer::from_sdp_string(sdp).expect("bridge answer parses");
        let (pid, pending) = self.pending.take().expect("client has a pending offer");
        assert_eq!(pid, id, "answer id echoes the offer id");
        self.rtc.sdp_api().accept_answer(pending, answer).expect("answer accepted");
    }

    pub fn accept_offer(&mut self, sdp: &str, slots: &[SlotInfo]) -> String {
        let offer = SdpOffer::from_sdp_string(sdp).expect("bridge offer parses");
        self.apply_slots(slots);
        let answer = self.rtc.sdp_api().accept_offer(offer).expect("bridge offer accepted");
        answer.to_sdp_string()
    }

    /// Follow the bridge's slot map.
    pub fn apply_slots(&mut self, slots: &[SlotInfo]) {
        for s in slots {
            let mid = Mid::from(s.mid.as_str());
            match &s.source {
                Some(src) => {
                    self.slot_src.insert(mid, src.name.clone());
                    if let Some(early) = self.unmapped.remove(&mid) {
                        let r = self.received.entry(src.name.clone()).or_default();
                        r.frames += early.frames;
                        r.keyframes += early.keyframes;
                        r.decodable_keyframes += early.decodable_keyframes;
                        r.last_height = early.last_height.or(r.last_height);
                        r.switches.extend(early.switches);
                        r.layers.extend(early.layers);
                    }
                }
                None => {
                    self.slot_src.remove(&mid);
                }
            }
        }
    }

    /// What arrived from `source` (a bridge source name) on whichever slot carried it.
    pub fn received_from(&self, source: &str) -> Received {
        self.received.get(source).cloned().unwrap_or_default()
    }

    /// Feed socket input and time, write due media, send output.
    pub fn drive(&mut self, now: Instant) {
        let mut buf = [0u8; 2048];
        while let Ok((n, src)) = self.socket.recv_from(&mut buf) {
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(now, r));
            }
        }
        if let Some((stream, peer, rbuf)) = &mut self.tcp {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                rbuf.extend_from_slice(&chunk[..n]);
            }
            while rbuf.len() >= 2 {
                let len = u16::from_be_bytes([rbuf[0], rbuf[1]]) as usize;
                if rbuf.len() < 2 + len {
                    break;
                }
                let frame: Vec<u8> = rbuf.drain(..2 + len).skip(2).collect();
                if let Ok(r) = Receive::new(Protocol::Tcp, *peer, self.local, &frame) {
                    let _ = self.rtc.handle_input(Input::Receive(now, r));
                }
            }
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
        if self.connected {
            self.write_media(now);
        }
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Transmit(t)) => match (&mut self.tcp, t.proto) {
                    (Some((stream, _, _)), Protocol::Tcp) => {
                        let mut framed = (t.contents.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&t.contents);
                        // Loopback with tiny volumes: a blocking write is fine here.
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.write_all(&framed);
                        let _ = stream.set_nonblocking(true);
                    }
                    (None, Protocol::Udp) => {
                        let _ = self.socket.send_to(&t.contents, t.destination);
                    }
                    _ => {}
                },
                Ok(Output::Timeout(_)) => break,
                Ok(Output::Event(e)) => self.on_event(e),
                Err(e) => panic!("{}: poll_output: {e}", self.name),
            }
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::Connected => self.connected = true,
            Event::KeyframeRequest(req) => {
                if let Some(p) = &mut self.publisher {
                    p.request_keyframe(req.rid.as_ref());
                }
            }
            Event::MediaData(d) => {
                let r = match self.slot_src.get(&d.mid) {
                    Some(source) => self.received.entry(source.clone()).or_default(),
                    None => self.unmapped.entry(d.mid).or_default(),
                };
                r.frames += 1;
                if d.params.spec().codec.is_video() {
                    let layer = d.data.get(10).copied().unwrap_or(255);
                    if d.is_keyframe() {
                        r.keyframes += 1;
                        if d.data.len() >= 11 && d.data[3..6] == [0x9d, 0x01, 0x2a] {
                            r.decodable_keyframes += 1;
                            r.last_height =
                                Some(u32::from(u16::from_le_bytes([d.data[8], d.data[9]]) & 0x3fff));
                        }
                    }
                    if r.layers.last() != Some(&layer) {
                        r.switches.push((layer, d.is_keyframe()));
                    }
                    r.layers.push(layer);
                }
            }
            _ => {}
        }
    }

    fn write_media(&mut self, now: Instant) {
        if let Some(p) = &mut self.publisher {
            p.cfg.audio_level = self.audio_level;
            p.write_due(&mut self.rtc, now);
        }
    }
}

/// What the test clients send: 30 fps, 3 kB keyframes every 3 s, 300/600/900-byte deltas.
fn publish_config(simulcast: bool) -> PublishConfig {
    PublishConfig {
        audio: true,
        video: true,
        simulcast,
        fps: 30,
        frame_bytes: [300, 600, 900],
        keyframe_bytes: [3000; 3],
        keyframe_interval: Duration::from_secs(3),
        audio_bytes: 80,
        audio_level: -30,
    }
}

/// A message without its SDP (for assertion output).
pub fn summary(m: &FromBridge) -> String {
    match m {
        FromBridge::Offer { offer_id, endpoint, .. } => {
            format!("Offer{{offer_id:{offer_id},endpoint:{endpoint}}}")
        }
        FromBridge::Answer { id, endpoint, .. } => format!("Answer{{id:{id},endpoint:{endpoint}}}"),
        other => format!("{other:?}"),
    }
}

/// The bridge in-process plus the clients; the test plays signaling.
pub struct Harness {
    pub bridge: Arc<Bridge>,
    pub events: convene_media::control_queue::ControlIn,
    pub clients: Vec<Client>,
    pub conference: String,
    pub log: Vec<FromBridge>,
    next_id: u64,
    /// The conference each client joined (`conference` when it joined).
    member_of: std::collections::HashMap<String, String>,
}

impl Harness {
    pub async fn new(conference: &str) -> Harness {
        Self::with_config(conference, Config::for_test(LOOP)).await
    }

    pub async fn with_config(conference: &str, cfg: Config) -> Harness {
        init_logs();
        let bridge = Bridge::start(cfg).await.expect("bridge starts");
        let events = bridge.take_events().expect("events");
        Harness {
            bridge,
            events,
            clients: Vec::new(),
            conference: conference.into(),
            log: Vec::new(),
            next_id: 100,
            member_of: Default::default(),
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Allocate, offer, and keep the client; its answer arrives through the pump.
    pub fn join(&mut self, mut c: Client) -> usize {
        let id = self.next_id();
        self.bridge.send(ToBridge::AllocateEndpoint {
            id,
            conference: self.conference.clone(),
            endpoint: c.name.clone(),
        });
        let reply = self.wait_for(|m| m.reply_to() == Some(id), Duration::from_secs(5));
        assert!(matches!(reply, FromBridge::Allocated { .. }), "allocation failed: {reply:?}");
        let oid = self.next_id();
        if let Some((_, p)) = c.pending.take() {
            c.pending = Some((oid, p));
        }
        let sdp = c.take_offer();
        let sources = c.declared_sources();
        self.bridge.send(ToBridge::Offer {
            id: oid,
            conference: self.conference.clone(),
            endpoint: c.name.clone(),
            sdp,
            sources,
        });
        self.member_of.insert(c.name.clone(), self.conference.clone());
        self.clients.push(c);
        self.clients.len() - 1
    }

    /// Send a request and wait for the reply with its id.
    pub fn request(&mut self, msg: ToBridge) -> FromBridge {
        let id = msg.request_id().expect("request has an id");
        self.bridge.send(msg);
        self.wait_for(|m| m.reply_to() == Some(id), Duration::from_secs(5))
    }

    pub fn client(&self, name: &str) -> &Client {
        self.clients.iter().find(|c| c.name == name).expect("client exists")
    }

    pub fn client_mut(&mut self, name: &str) -> &mut Client {
        self.clients.iter_mut().find(|c| c.name == name).expect("client exists")
    }

    /// Wait for a bridge message matching `f` while pumping media.
    pub fn wait_for(&mut self, f: impl Fn(&FromBridge) -> bool, limit: Duration) -> FromBridge {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(pos) = self.log.iter().position(&f) {
                return self.log.remove(pos);
            }
            if Instant::now() >= deadline {
                let kinds: Vec<String> = self.log.iter().map(summary).collect();
                panic!("timed out waiting for a bridge message; log: {kinds:?}");
            }
            self.step();
        }
    }

    /// Run signaling and media for `d`.
    pub fn pump(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.step();
        }
    }

    /// Pump until `f` holds (panics after `limit`).
    pub fn pump_until(&mut self, limit: Duration, what: &str, f: impl Fn(&Harness) -> bool) {
        let end = Instant::now() + limit;
        while !f(self) {
            assert!(Instant::now() < end, "timed out: {what}");
            self.step();
        }
    }

    fn step(&mut self) {
        while let Ok(m) = self.events.try_recv() {
            self.on_bridge_message(m);
        }
        let now = Instant::now();
        for c in &mut self.clients {
            c.drive(now);
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    fn on_bridge_message(&mut self, m: FromBridge) {
        match &m {
            FromBridge::Answer { id, endpoint, sdp, .. } => {
                if let Some(c) = self.clients.iter_mut().find(|c| &c.name == endpoint) {
                    c.accept_answer(*id, sdp);
                }
            }
            FromBridge::Slots { endpoint, slots, .. } => {
                if let Some(c) = self.clients.iter_mut().find(|c| &c.name == endpoint) {
                    c.apply_slots(slots);
                }
            }
            FromBridge::Offer { offer_id, endpoint, sdp, slots, .. } => {
                let answer =
                    self.clients.iter_mut().find(|c| &c.name == endpoint).map(|c| c.accept_offer(sdp, slots));
                if let Some(sdp) = answer {
                    let conference = self.member_of.get(endpoint).unwrap_or(&self.conference).clone();
                    self.bridge.send(ToBridge::Answer {
                        offer_id: *offer_id,
                        conference,
                        endpoint: endpoint.clone(),
                        sdp,
                    });
                }
            }
            _ => {}
        }
        self.log.push(m);
    }
}
