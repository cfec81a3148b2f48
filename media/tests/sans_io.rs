//! The forwarding core without sockets or threads: str0m peers and the `Sfu` exchange
//! datagrams in memory on simulated time. Deterministic and fast. Receivers follow the
//! bridge's slot map (`offer.slots`, then `slots`), as the web app does.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{FromBridge, ReceiverConstraints, SlotInfo, SourceInfo, SourceKind, ToBridge};
use convene_media::metrics::Metrics;
use convene_media::sfu::{DropReason, MAX_EGRESS_QUEUE, Sfu, SfuConfig, SfuCounters};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const BRIDGE: &str = "10.0.0.1:10000";

struct Peer {
    name: String,
    rtc: Rtc,
    addr: SocketAddr,
    pending: Option<SdpPendingOffer>,
    video: Option<Mid>,
    audio: Option<Mid>,
    screen: Option<Mid>,
    connected: bool,
    /// Audio level sent (str0m convention: 0 loudest, -127 silence).
    level: i8,
    /// A keyframe was asked for (sent with the next video frame).
    keyframe_wanted: bool,
    keyframe_requests: u64,
    /// Slot m-line → the source it carries now (from the bridge's offer and `slots`).
    slot_src: HashMap<Mid, String>,
    /// Frames received per source, attributed by the slot map when they arrived.
    frames: HashMap<String, u64>,
    /// Every frame received per slot: (source, first seq, last seq, RTP time, keyframe).
    log: HashMap<Mid, Vec<Arrival>>,
}

#[derive(Debug, Clone)]
struct Arrival {
    /// The source as the slot map said when the frame arrived.
    source: String,
    /// The publisher as the frame itself says (its port's last byte, written in the payload).
    tag: u8,
    seq: (u64, u64),
    time: u64,
    keyframe: bool,
    contiguous: bool,
}

impl Peer {
    fn new(name: &str, port: u16, publish: bool, screen: bool, now: Instant) -> (Peer, String) {
        convene_media::install_crypto();
        let addr: SocketAddr = format!("10.0.0.2:{port}").parse().unwrap();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let (mut audio, mut video) = (None, None);
        if publish {
            audio = Some(api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None));
            video = Some(api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        }
        let screen = screen.then(|| api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None));
        if !publish && screen.is_none() {
            api.add_channel("x".into());
        }
        let (offer, pending) = api.apply().unwrap();
        let peer = Peer {
            name: name.into(),
            rtc,
            addr,
            pending: Some(pending),
            video,
            audio,
            screen,
            connected: false,
            level: -20,
            keyframe_wanted: false,
            keyframe_requests: 0,
            slot_src: HashMap::new(),
            frames: HashMap::new(),
            log: HashMap::new(),
        };
        (peer, offer.to_sdp_string())
    }

    fn frames_from(&self, source: &str) -> u64 {
        self.frames.get(source).copied().unwrap_or(0)
    }

    fn apply_slots(&mut self, slots: &[SlotInfo]) {
        for s in slots {
            let mid = Mid::from(s.mid.as_str());
            match &s.source {
                Some(src) => self.slot_src.insert(mid, src.name.clone()),
                None => self.slot_src.remove(&mid),
            };
        }
    }

    /// Everything the peer has to send to `to` at `now`, all at once (it has no pacer, but
    /// str0m releases one packet per timeout).
    fn drain_to(&mut self, to: SocketAddr, now: Instant) -> Vec<str0m::net::Transmit> {
        let mut out = Vec::new();
        loop {
            let _ = self.rtc.handle_input(Input::Timeout(now));
            let before = out.len();
            while let Ok(o) = self.rtc.poll_output() {
                match o {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) if t.destination == to => out.push(t),
                    Output::Event(Event::KeyframeRequest(_)) => self.keyframe_wanted = true,
                    _ => {}
                }
            }
            if out.len() == before {
                return out;
            }
        }
    }

    /// The slot carrying `source` now.
    fn slot_of(&self, source: &str) -> Option<Mid> {
        self.slot_src.iter().find(|(_, s)| *s == source).map(|(m, _)| *m)
    }
}

struct World {
    sfu: Sfu,
    peers: Vec<Peer>,
    now: Instant,
    frame: u64,
    /// Frames between two keyframes nobody asked for.
    keyframe_every: u64,
    log: Vec<FromBridge>,
}

impl World {
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        let bridge: SocketAddr = BRIDGE.parse().unwrap();
        self.frame += 1;
        for p in &mut self.peers {
            let _ = p.rtc.handle_input(Input::Timeout(now));
            if p.connected && self.frame.is_multiple_of(33) {
                let ts = self.frame * 90;
                let periodic = (self.frame / 33) % self.keyframe_every == 1;
                if let Some(v) = p.video {
                    let key = periodic || std::mem::take(&mut p.keyframe_wanted);
                    let mut f = vec![0u8; 1500];
                    f[0] = if key { 0x10 } else { 0x11 };
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    f[10] = p.addr.port() as u8;
                    write(&mut p.rtc, v, now, MediaTime::new(ts, Frequency::NINETY_KHZ), f);
                }
                if let Some(sc) = p.screen {
                    let mut f = vec![0u8; 800];
                    f[0] = if periodic { 0x10 } else { 0x11 };
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    write(&mut p.rtc, sc, now, MediaTime::new(ts, Frequency::NINETY_KHZ), f);
                }
                if let Some(a) = p.audio {
                    let t = MediaTime::new(self.frame * 48, Frequency::FORTY_EIGHT_KHZ);
                    write_level(&mut p.rtc, a, now, t, vec![p.addr.port() as u8; 60], p.level);
                }
            }
            while let Ok(o) = p.rtc.poll_output() {
                match o {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        if t.destination == bridge {
                            self.sfu.handle_packet(now, Protocol::Udp, t.source, bridge, &t.contents);
                        }
                    }
                    Output::Event(Event::Connected) => p.connected = true,
                    Output::Event(Event::MediaData(d)) => {
                        let source = p.slot_src.get(&d.mid).cloned().unwrap_or_default();
                        *p.frames.entry(source.clone()).or_default() += 1;
                        p.log.entry(d.mid).or_default().push(Arrival {
                            source,
                            tag: d.data.get(10).copied().unwrap_or(0),
                            seq: (**d.seq_range.start(), **d.seq_range.end()),
                            time: d.time.numer(),
                            keyframe: d.is_keyframe(),
                            contiguous: d.contiguous,
                        });
                    }
                    Output::Event(Event::KeyframeRequest(_)) => {
                        p.keyframe_wanted = true;
                        p.keyframe_requests += 1;
                    }
                    Output::Event(_) => {}
                }
            }
        }
        if self.sfu.next_timeout() <= now {
            self.sfu.handle_timeout(now);
        }
        while let Some(t) = self.sfu.poll_transmit() {
            if let Some(p) = self.peers.iter_mut().find(|p| p.addr == t.destination)
                && let Ok(r) = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
            {
                let _ = p.rtc.handle_input(Input::Receive(now, r));
            }
        }
        while let Some(m) = self.sfu.poll_control() {
            self.on_control(m);
        }
    }

    fn on_control(&mut self, m: FromBridge) {
        match &m {
            FromBridge::Answer { endpoint, sdp, .. } => {
                let p = self.peers.iter_mut().find(|p| &p.name == endpoint).unwrap();
                let pending = p.pending.take().unwrap();
                p.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(sdp).unwrap()).unwrap();
            }
            FromBridge::Slots { endpoint, slots, .. } => {
                self.peers.iter_mut().find(|p| &p.name == endpoint).unwrap().apply_slots(slots);
            }
            FromBridge::Offer { offer_id, conference, endpoint, sdp, slots } => {
                let p = self.peers.iter_mut().find(|p| &p.name == endpoint).unwrap();
                p.apply_slots(slots);
                let answer = p.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(sdp).unwrap()).unwrap();
                let reply = ToBridge::Answer {
                    offer_id: *offer_id,
                    conference: conference.clone(),
                    endpoint: endpoint.clone(),
                    sdp: answer.to_sdp_string(),
                };
                self.sfu.handle_control(reply, self.now);
            }
            _ => {}
        }
        self.log.push(m);
    }

    fn join(&mut self, name: &str, port: u16, publish: bool) {
        self.join_with_screen(name, port, publish, false);
    }

    fn join_with_screen(&mut self, name: &str, port: u16, publish: bool, screen: bool) {
        let alloc = ToBridge::AllocateEndpoint { id: 1, conference: "c".into(), endpoint: name.into() };
        self.join_as(alloc, port, publish, screen);
    }

    /// A hidden endpoint (a recorder); `publish` makes it try to send too.
    fn join_hidden(&mut self, name: &str, port: u16, publish: bool) {
        let alloc = ToBridge::AllocateHiddenEndpoint { id: 1, conference: "c".into(), endpoint: name.into() };
        self.join_as(alloc, port, publish, false);
    }

    fn join_as(&mut self, alloc: ToBridge, port: u16, publish: bool, screen: bool) {
        let (ToBridge::AllocateEndpoint { endpoint, .. } | ToBridge::AllocateHiddenEndpoint { endpoint, .. }) =
            alloc.clone()
        else {
            panic!("not an allocation")
        };
        let name = endpoint.as_str();
        let (p, offer) = Peer::new(name, port, publish, screen, self.now);
        let mut sources = Vec::new();
        if let Some(m) = p.screen {
            // Declared explicitly; order alone would also make the second video a screen.
            sources.push(SourceInfo {
                mid: m.to_string(),
                kind: SourceKind::Screen,
                endpoint: None,
                name: None,
            });
        }
        self.peers.push(p);
        let now = self.now;
        self.sfu.handle_control(alloc, now);
        self.sfu.handle_control(
            ToBridge::Offer {
                id: 2,
                conference: "c".into(),
                endpoint: name.into(),
                sdp: offer,
                sources: vec![],
            },
            now,
        );
        while let Some(m) = self.sfu.poll_control() {
            self.on_control(m);
        }
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.step();
        }
    }
}

fn write(rtc: &mut Rtc, mid: Mid, now: Instant, t: MediaTime, data: Vec<u8>) {
    write_level(rtc, mid, now, t, data, -20);
}

fn write_level(rtc: &mut Rtc, mid: Mid, now: Instant, t: MediaTime, data: Vec<u8>, level: i8) {
    let Some(pt) = rtc.writer(mid).and_then(|w| w.payload_params().next().map(|p| p.pt())) else {
        return;
    };
    if let Some(w) = rtc.writer(mid) {
        let _ = w.audio_level(level, level > -100).write(pt, now, t, data);
    }
}

fn world() -> World {
    world_with(SfuConfig::default())
}

fn world_with(cfg: SfuConfig) -> World {
    let now = Instant::now();
    let cfg = SfuConfig { candidates: vec![Candidate::host(BRIDGE.parse().unwrap(), "udp").unwrap()], ..cfg };
    World { sfu: Sfu::new(cfg, now), peers: Vec::new(), now, frame: 0, keyframe_every: 30, log: Vec::new() }
}

#[test]
fn routes_between_endpoints_without_sockets() {
    let mut w = world();
    w.join("a", 5001, true);
    w.join("b", 5002, true);
    w.join("c", 5003, false);
    w.run(3000);
    let get = |w: &World, p: &str, s: &str| w.peers.iter().find(|x| x.name == p).unwrap().frames_from(s);
    for (p, s) in [("a", "b-v0"), ("a", "b-a0"), ("b", "a-v0"), ("c", "a-v0"), ("c", "b-v0"), ("c", "a-a0")] {
        assert!(get(&w, p, s) >= 20, "{p} receives {s}: {}", get(&w, p, s));
    }
    // last_n = 0 for c: its video stops, audio continues.
    w.sfu.handle_control(
        ToBridge::ReceiverConstraints {
            id: 9,
            conference: "c".into(),
            endpoint: "c".into(),
            constraints: ReceiverConstraints { last_n: 0, ..ReceiverConstraints::default() },
        },
        w.now,
    );
    w.run(200);
    let (v0, a0) = (get(&w, "c", "a-v0"), get(&w, "c", "a-a0"));
    w.run(1000);
    assert_eq!(get(&w, "c", "a-v0"), v0, "no video with last_n = 0");
    assert!(get(&w, "c", "a-a0") >= a0 + 20, "audio still forwarded");
    assert!(w.log.contains(&FromBridge::Ok { id: 9 }));
}

#[test]
fn camera_and_screen_share_are_separate_sources() {
    let mut w = world();
    w.join_with_screen("presenter", 5001, true, true);
    w.join_with_screen("viewer", 5002, false, false);
    w.run(2000);
    let v = w.peers.iter().find(|p| p.name == "viewer").unwrap();
    assert!(v.frames_from("presenter-v0") >= 20, "camera: {}", v.frames_from("presenter-v0"));
    assert!(v.frames_from("presenter-s0") >= 20, "screen: {}", v.frames_from("presenter-s0"));
    assert!(v.frames_from("presenter-a0") >= 20);
    let kinds: Vec<_> = w
        .log
        .iter()
        .filter_map(|m| match m {
            FromBridge::Slots { endpoint, slots, .. } if endpoint == "viewer" => Some(slots.clone()),
            _ => None,
        })
        .flatten()
        .filter_map(|s| s.source)
        .map(|s| (s.name, s.kind))
        .collect();
    assert!(kinds.contains(&("presenter-s0".to_string(), SourceKind::Screen)), "{kinds:?}");
    assert!(kinds.contains(&("presenter-v0".to_string(), SourceKind::Camera)), "{kinds:?}");
}

impl World {
    fn peer(&self, name: &str) -> &Peer {
        self.peers.iter().find(|p| p.name == name).unwrap()
    }

    fn peer_mut(&mut self, name: &str) -> &mut Peer {
        self.peers.iter_mut().find(|p| p.name == name).unwrap()
    }

    /// Bridge offers (renegotiations) sent to `endpoint` so far.
    fn offers_to(&self, endpoint: &str) -> usize {
        self.log
            .iter()
            .filter(|m| matches!(m, FromBridge::Offer { endpoint: e, .. } if e == endpoint))
            .count()
    }

    fn constrain(&mut self, endpoint: &str, constraints: ReceiverConstraints) {
        let msg = ToBridge::ReceiverConstraints {
            id: 99,
            conference: "c".into(),
            endpoint: endpoint.into(),
            constraints,
        };
        self.sfu.handle_control(msg, self.now);
    }

    /// Run until `f` holds; returns the simulated time it took (panics after `limit_ms`).
    fn run_until(&mut self, limit_ms: u64, what: &str, f: impl Fn(&World) -> bool) -> Duration {
        let start = self.now;
        while !f(self) {
            assert!(self.now - start < Duration::from_millis(limit_ms), "timed out: {what}");
            self.step();
        }
        self.now - start
    }
}

/// Issue 12 item 2 (a), with issue 14's slots opened in steps: a join renegotiates the joiner
/// (its slots, once) and an earlier endpoint only when it now wants more sources than it has
/// slots (doubling, so rarely); everyone else gets the joiner's media on the slots they have.
#[test]
fn joining_renegotiates_only_who_needs_more_slots() {
    let mut w = world();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        w.join(n, 5001 + i as u16, true);
    }
    w.run(2000);
    for n in ["a", "b", "c"] {
        assert_eq!(w.offers_to(n), 1, "{n}: one bridge offer (its slots)");
        assert_eq!(w.peer(n).slot_src.len(), 4, "{n}: two audio and two video slots carry a source");
    }
    // d is the third other for a, b and c: their two slots of each kind grow to four.
    w.join("d", 5004, true);
    w.run(2000);
    let after_d: Vec<usize> = ["a", "b", "c"].iter().map(|n| w.offers_to(n)).collect();
    for (n, offers) in ["a", "b", "c"].iter().zip(&after_d) {
        assert!((2..=3).contains(offers), "{n}: at most one more offer per kind of slot: {offers}");
        assert!(w.peer(n).frames_from("d-v0") >= 20, "{n} gets d's video: {}", w.peer(n).frames_from("d-v0"));
        assert!(w.peer(n).frames_from("d-a0") >= 20, "{n} gets d's audio");
    }
    assert_eq!(w.offers_to("d"), 1);
    for s in ["a-v0", "b-v0", "c-v0", "a-a0", "b-a0", "c-a0"] {
        assert!(w.peer("d").frames_from(s) >= 20, "d gets {s}: {}", w.peer("d").frames_from(s));
    }
    // e fits in the slots everyone has now: only e negotiates, the others learn of it by a
    // small slot map, not SDP.
    let before = w.log.len();
    w.join("e", 5005, true);
    w.run(2000);
    for (n, offers) in ["a", "b", "c"].iter().zip(&after_d) {
        assert_eq!(w.offers_to(n), *offers, "{n} is not renegotiated when e joins");
    }
    assert_eq!(w.offers_to("d"), 1, "d is not renegotiated when e joins");
    assert_eq!(w.offers_to("e"), 1);
    for n in ["a", "b", "c", "d"] {
        assert!(w.peer(n).frames_from("e-v0") >= 20, "{n} gets e's video: {}", w.peer(n).frames_from("e-v0"));
        assert!(w.peer(n).frames_from("e-a0") >= 20, "{n} gets e's audio");
        let told: Vec<String> = w.log[before..]
            .iter()
            .filter_map(|m| match m {
                FromBridge::Slots { endpoint, slots, .. } if endpoint == n => Some(slots.clone()),
                _ => None,
            })
            .flatten()
            .filter_map(|s| s.source.map(|x| x.name))
            .collect();
        assert!(told.contains(&"e-v0".to_string()) && told.contains(&"e-a0".to_string()), "{n}: {told:?}");
    }
    // Leaving renegotiates nobody (slots never close): d's slots are freed on the others.
    let offers: Vec<usize> = ["a", "b", "c", "e"].iter().map(|n| w.offers_to(n)).collect();
    w.sfu.handle_control(
        ToBridge::ExpireEndpoint { id: 7, conference: "c".into(), endpoint: "d".into() },
        w.now,
    );
    w.run(500);
    for (n, before) in ["a", "b", "c", "e"].iter().zip(offers) {
        assert_eq!(w.offers_to(n), before, "{n}");
        assert!(w.peer(n).slot_of("d-v0").is_none() && w.peer(n).slot_of("d-a0").is_none(), "{n}");
    }
}

/// Issue 12 item 2 (b) and (c): with last-N 1 the viewer's video follows the dominant speaker
/// on one slot. The switch waits for a keyframe of the new source, which the bridge asks for
/// (periodic keyframes are 30 s apart here), starts with it, and the slot's stream stays
/// continuous: sequence numbers without a gap, RTP time without a jump.
#[test]
fn dominant_speaker_switch_remaps_a_continuous_slot() {
    let mut w = world();
    w.keyframe_every = 900;
    w.join("a", 5001, true);
    w.join("b", 5002, true);
    w.peer_mut("b").level = -127;
    w.join("v", 5003, false);
    w.constrain("v", ReceiverConstraints { last_n: 1, ..ReceiverConstraints::default() });
    w.run_until(3000, "v sees a's camera", |w| w.peer("v").frames_from("a-v0") >= 10);
    w.run(500);
    assert_eq!(w.peer("v").frames_from("b-v0"), 0, "last-N 1: only the speaker's video");
    let slot = w.peer("v").slot_of("a-v0").expect("a on a slot");
    let requests = w.peer("b").keyframe_requests;
    // b speaks, a stops: b becomes dominant and takes the same slot.
    w.peer_mut("a").level = -127;
    w.peer_mut("b").level = -20;
    w.run_until(5000, "b dominant", |w| {
        w.log.iter().any(|m| matches!(m, FromBridge::DominantSpeaker { endpoint, .. } if endpoint == "b"))
    });
    let took = w.run_until(1000, "v's slot carries b", |w| w.peer("v").slot_of("b-v0").is_some());
    assert_eq!(w.peer("v").slot_of("b-v0"), Some(slot), "the same slot, re-mapped");
    assert!(took < Duration::from_millis(500), "switched within {took:?}: on a requested keyframe");
    assert!(w.peer("b").keyframe_requests > requests, "the bridge asked b for a keyframe");
    w.run(1000);
    assert!(w.peer("v").frames_from("b-v0") >= 20);
    let log = &w.peer("v").log[&slot];
    let (a, b) = (5001u16 as u8, 5002u16 as u8);
    let first_b = log.iter().position(|x| x.tag == b).expect("b's frames on the slot");
    assert!(first_b > 0 && log[first_b - 1].tag == a, "a then b on one slot");
    assert!(log[first_b..].iter().all(|x| x.tag == b), "nothing of a after the switch");
    // The slot map agrees with the content (a message and media take different paths: only
    // around the switch may one frame be labelled early).
    let mislabelled = log.iter().filter(|x| (x.tag == b) != (x.source == "b-v0")).count();
    assert!(mislabelled <= 1, "{mislabelled} frames labelled with the wrong source");
    assert!(
        log[first_b].keyframe,
        "b starts with a keyframe: {:?}",
        &log[first_b.saturating_sub(2)..first_b + 3]
    );
    for pair in log.windows(2) {
        let (x, y) = (&pair[0], &pair[1]);
        assert_eq!(y.seq.0, x.seq.1 + 1, "sequence numbers continue: {x:?} → {y:?}");
        assert!(y.contiguous, "{y:?}");
        let step = y.time.wrapping_sub(x.time);
        assert!(step > 0 && step < 90_000 / 2, "RTP time continues (90 kHz): {x:?} → {y:?}");
    }
    assert_eq!(w.offers_to("v"), 1, "no renegotiation for the switch");
}

/// Issue 12 item 2 (c): audio slots follow the loudest speakers. One audio slot per receiver:
/// the conference forwards two (each receiver hears the loudest but itself); a third who
/// starts speaking louder takes the quietest one's place.
#[test]
fn audio_slots_follow_the_loudest_speakers() {
    let mut w = world_with(SfuConfig { audio_slots: 1, ..SfuConfig::default() });
    w.join("a", 5001, true);
    w.join("b", 5002, true);
    w.peer_mut("b").level = -127;
    w.run(1500);
    w.join("c", 5003, true);
    w.peer_mut("c").level = -127;
    w.join("v", 5004, false);
    w.run(1500);
    let heard = |w: &World, p: &str, s: &str| w.peer(p).frames_from(s);
    assert!(heard(&w, "v", "a-a0") >= 20, "v hears the speaker");
    assert!(heard(&w, "a", "b-a0") >= 20, "a hears the other audible one");
    assert_eq!(heard(&w, "v", "c-a0"), 0, "c was not audible");
    w.peer_mut("a").level = -127;
    w.peer_mut("c").level = -20;
    w.run_until(3000, "v hears c", |w| w.peer("v").frames_from("c-a0") >= 10);
    let slot = w.peer("v").slot_of("c-a0").unwrap();
    let audio: Vec<&String> = w.peer("v").slot_src.values().filter(|s| s.ends_with("-a0")).collect();
    assert_eq!(audio, vec!["c-a0"], "one audio slot");
    let log = &w.peer("v").log[&slot];
    for pair in log.windows(2) {
        assert_eq!(pair[1].seq.0, pair[0].seq.1 + 1, "audio slot sequence continues");
        let step = pair[1].time.wrapping_sub(pair[0].time);
        assert!(step > 0 && step < 48_000 / 2, "{:?} → {:?}", pair[0], pair[1]);
    }
    assert!(log.iter().any(|x| x.tag == 5001u16 as u8), "a was on the slot before c");
    for n in ["a", "b", "c"] {
        assert_eq!(w.offers_to(n), 1, "{n}");
    }
    // v's first offer had two video slots (a's and b's cameras); c's made it want three.
    assert_eq!(w.offers_to("v"), 2);
}

/// Issue 13: a hidden endpoint (the recorder) receives every source — all audio, not only the
/// loudest, and every camera and screen — while it is nobody's source: not in anyone's slots,
/// never a dominant speaker, its own media dropped, even when it is the loudest sender.
#[test]
fn hidden_endpoint_receives_everything_and_is_nobody_s_source() {
    let mut w = world_with(SfuConfig { audio_slots: 1, video_slots: 1, ..SfuConfig::default() });
    w.join("a", 5001, true);
    w.join_with_screen("b", 5002, true, true);
    w.join("c", 5003, true);
    w.peer_mut("b").level = -127;
    w.peer_mut("c").level = -127;
    // The recorder tries to publish, loudly.
    w.join_hidden("rec", 5009, true);
    w.peer_mut("rec").level = 0;
    w.run(3000);
    for s in ["a-a0", "b-a0", "c-a0", "a-v0", "b-v0", "b-s0", "c-v0"] {
        let n = w.peer("rec").frames_from(s);
        assert!(n >= 20, "the recorder gets {s}: {n}");
    }
    for n in ["a", "b", "c"] {
        assert!(w.peer(n).slot_src.values().all(|s| !s.starts_with("rec-")), "{n}: {:?}", w.peer(n).slot_src);
        assert!(w.peer(n).frames.keys().all(|s| !s.starts_with("rec")), "{n} got media of the recorder");
    }
    let told_of_rec = w.log.iter().any(|m| match m {
        FromBridge::Slots { slots, .. } | FromBridge::Offer { slots, .. } => {
            slots.iter().any(|s| s.source.as_ref().is_some_and(|x| x.endpoint == "rec"))
        }
        FromBridge::DominantSpeaker { endpoint, .. } => endpoint == "rec",
        _ => false,
    });
    assert!(!told_of_rec, "the recorder is nobody's source nor a speaker");
    // A participant with one slot each still gets one audio and one video: last-N is unchanged
    // by the recorder.
    assert_eq!(w.sfu.forwarded_layers("c", "c").len(), 1);
    assert_eq!(w.offers_to("rec"), 1);
    // Someone leaving frees the recorder's slots of them.
    w.sfu.handle_control(
        ToBridge::ExpireEndpoint { id: 7, conference: "c".into(), endpoint: "b".into() },
        w.now,
    );
    w.run(300);
    assert!(w.peer("rec").slot_src.values().all(|s| !s.starts_with("b-")), "{:?}", w.peer("rec").slot_src);
}

/// The SSRC of an RTP datagram; `None` for anything else (RTCP's packet types 192..=223 sit
/// where RTP has its marker bit and payload type).
fn rtp_ssrc(d: &[u8]) -> Option<u32> {
    (d.len() >= 12 && d[0] >> 6 == 2 && !(192..=223).contains(&d[1]))
        .then(|| u32::from_be_bytes([d[8], d[9], d[10], d[11]]))
}

/// A receiver's send queue in str0m is capped by the bridge: a publisher's burst far beyond
/// what the receiver's pacer releases at once fills it to `MAX_EGRESS_QUEUE` packets, the rest
/// is dropped and counted (`egress_queue`), and once time moves the receiver gets media again.
/// The burst is fed as the one-worker loop feeds it: a `recvmmsg` batch, then the due timers,
/// all at one instant. The cap reads str0m's queue snapshot, which the receiver's timer
/// refreshes: within one batch the queue may pass the cap by the batch, no more.
#[test]
fn egress_queue_is_bounded_and_drains() {
    const BATCH: usize = quinn_udp::BATCH_SIZE; // the media loop's recvmmsg batch
    // p sends one video m-line only (its "screen", undeclared: a camera to the bridge).
    const SRC: &str = "p-v0";
    let bound = (MAX_EGRESS_QUEUE + BATCH - 1) as u64;
    let mut w = world();
    w.join_with_screen("p", 5001, false, true);
    w.join("r", 5002, false);
    w.run_until(3000, "r gets p's video", |w| w.peer("r").frames_from(SRC) >= 10);
    let bridge: SocketAddr = BRIDGE.parse().unwrap();
    let screen = w.peer("p").screen.unwrap();
    let in_ssrc = *w.peer_mut("p").rtc.direct_api().stream_tx_by_mid(screen, None).unwrap().ssrc();
    let slot = w.peer("r").slot_of(SRC).unwrap();
    let out_ssrc = *w.peer_mut("r").rtc.direct_api().stream_rx_by_mid(slot, None).unwrap().ssrc();

    // One delta frame of ~3 × the cap in packets; the publisher has no pacer: all at once.
    let (now, frame) = (w.now, w.frame);
    let p = w.peer_mut("p");
    let mut f = vec![0u8; 3 * MAX_EGRESS_QUEUE * 1100];
    f[0] = 0x11;
    write(&mut p.rtc, screen, now, MediaTime::new(frame * 90 + 45, Frequency::NINETY_KHZ), f);
    let burst = p.drain_to(bridge, now);
    let fed_total = burst.iter().filter(|t| rtp_ssrc(&t.contents) == Some(in_ssrc)).count() as u64;
    assert!(fed_total >= 2 * bound, "the burst is {fed_total} packets");

    let before = *w.sfu.counters();
    let egress_drops = |w: &World| {
        w.sfu.counters().dropped(DropReason::EgressQueue) - before.dropped(DropReason::EgressQueue)
    };
    let (mut fed, mut sent, mut peak) = (0u64, 0u64, 0u64);
    let mut out = Vec::new();
    for batch in burst.chunks(BATCH) {
        fed += batch.iter().filter(|t| rtp_ssrc(&t.contents) == Some(in_ssrc)).count() as u64;
        w.sfu.handle_datagrams(
            now,
            Protocol::Udp,
            |_| bridge,
            batch.iter().map(|t| (t.source, &*t.contents)),
        );
        if w.sfu.next_timeout() <= now {
            w.sfu.handle_timeout(now);
        }
        while let Some(t) = w.sfu.poll_transmit() {
            sent += u64::from(rtp_ssrc(&t.contents) == Some(out_ssrc));
            out.push(t);
        }
        // Forwarded to r's slot, neither dropped nor sent yet: in str0m's queue.
        let queued = fed - egress_drops(&w) - sent;
        assert!(queued <= bound, "r's send queue holds {queued} packets (cap {MAX_EGRESS_QUEUE})");
        peak = peak.max(queued);
    }
    let dropped = egress_drops(&w);
    assert!(peak >= MAX_EGRESS_QUEUE as u64, "the burst filled the queue to the cap: {peak}");
    assert!(sent < fed_total / 10, "the pacer held the burst back: {sent} of {fed_total} sent");
    assert!(dropped >= fed_total - sent - bound, "{dropped} dropped of {fed_total} ({sent} sent)");
    // Nothing else dropped the burst, and the drops reach the metric under their reason.
    for r in DropReason::ALL.into_iter().filter(|&r| r != DropReason::EgressQueue) {
        assert_eq!(w.sfu.counters().dropped(r), before.dropped(r), "{}", r.label());
    }
    let m = Metrics::new();
    m.export(w.sfu.counters(), &mut SfuCounters::default(), std::iter::empty());
    let total = w.sfu.counters().dropped(DropReason::EgressQueue);
    let line = format!("convene_bridge_dropped_packets_total{{reason=\"egress_queue\"}} {total}");
    assert!(m.render().lines().any(|l| l == line), "missing {line}");

    // Time moves: the queue drains, p's next frames reach r, and nothing more is dropped.
    for t in out {
        if let Some(p) = w.peers.iter_mut().find(|p| p.addr == t.destination)
            && let Ok(r) = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
        {
            let _ = p.rtc.handle_input(Input::Receive(now, r));
        }
    }
    let got = w.peer("r").frames_from(SRC);
    let took = w.run_until(5000, "r gets p's video again", |w| w.peer("r").frames_from(SRC) >= got + 5);
    let (got, dropped) = (w.peer("r").frames_from(SRC), egress_drops(&w));
    w.run(1000);
    assert_eq!(egress_drops(&w), dropped, "drained: nothing dropped once r got media again ({took:?})");
    assert!(w.peer("r").frames_from(SRC) >= got + 20, "r gets p's video at its rate");
}

/// A burst for one receiver leaves in the poll that forwarded it. str0m's pacer asks for a
/// timeout after each packet it releases; handled one per timer round, a receiver got one
/// packet per round of the worker, and a loaded worker fell tens of seconds behind nine
/// browsers' audio (the browser tier's nine-participant check).
#[test]
fn a_burst_leaves_in_the_poll_that_forwarded_it() {
    const SRC: &str = "p-a0";
    const FRAMES: u64 = 40;
    let mut w = world();
    w.join("p", 5001, true);
    w.join("r", 5002, false);
    w.run_until(3000, "r gets p's audio", |w| w.peer("r").frames_from(SRC) >= 10);
    let bridge: SocketAddr = BRIDGE.parse().unwrap();
    let slot = w.peer("r").slot_of(SRC).unwrap();
    let out_ssrc = *w.peer_mut("r").rtc.direct_api().stream_rx_by_mid(slot, None).unwrap().ssrc();
    // Whatever was due goes first: the burst then meets an idle receiver.
    w.run(50);

    let (now, frame) = (w.now, w.frame);
    let p = w.peer_mut("p");
    let audio = p.audio.unwrap();
    for k in 0..FRAMES {
        let t = MediaTime::new((frame + k) * 48, Frequency::FORTY_EIGHT_KHZ);
        write_level(&mut p.rtc, audio, now, t, vec![7; 60], -20);
    }
    let burst = p.drain_to(bridge, now);
    assert!(burst.len() as u64 >= FRAMES, "the burst is {} packets", burst.len());
    // One batch, no timer round after it.
    w.sfu.handle_datagrams(now, Protocol::Udp, |_| bridge, burst.iter().map(|t| (t.source, &*t.contents)));
    let mut sent = 0;
    while let Some(t) = w.sfu.poll_transmit() {
        sent += u64::from(t.destination == w.peer("r").addr && rtp_ssrc(&t.contents) == Some(out_ssrc));
    }
    assert_eq!(sent, FRAMES, "r's audio slot got {sent} of the {FRAMES} packets forwarded at once");
}
