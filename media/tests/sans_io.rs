//! The forwarding core without sockets or threads: str0m peers and the `Sfu` exchange
//! datagrams in memory on simulated time. Deterministic and fast.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{FromBridge, ReceiverConstraints, SourceInfo, SourceKind, ToBridge};
use convene_media::sfu::{Sfu, SfuConfig};
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
    frames_by_mid: HashMap<Mid, u64>,
    sources: HashMap<String, String>, // mid -> source name
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
            frames_by_mid: HashMap::new(),
            sources: HashMap::new(),
        };
        (peer, offer.to_sdp_string())
    }

    fn frames_from(&self, source: &str) -> u64 {
        self.sources
            .iter()
            .filter(|(_, s)| *s == source)
            .map(|(m, _)| self.frames_by_mid.get(&Mid::from(m.as_str())).copied().unwrap_or(0))
            .sum()
    }
}

struct World {
    sfu: Sfu,
    peers: Vec<Peer>,
    now: Instant,
    frame: u64,
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
                if let Some(v) = p.video {
                    let key = self.frame % 990 == 33;
                    let mut f = vec![0u8; 1500];
                    f[0] = if key { 0x10 } else { 0x11 };
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    write(&mut p.rtc, v, now, MediaTime::new(ts, Frequency::NINETY_KHZ), f);
                }
                if let Some(sc) = p.screen {
                    let mut f = vec![0u8; 800];
                    f[0] = if self.frame % 990 == 33 { 0x10 } else { 0x11 };
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    write(&mut p.rtc, sc, now, MediaTime::new(ts, Frequency::NINETY_KHZ), f);
                }
                if let Some(a) = p.audio {
                    let t = MediaTime::new(self.frame * 48, Frequency::FORTY_EIGHT_KHZ);
                    write(&mut p.rtc, a, now, t, vec![1u8; 60]);
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
                    Output::Event(Event::MediaData(d)) => *p.frames_by_mid.entry(d.mid).or_default() += 1,
                    Output::Event(Event::KeyframeRequest(_)) => {}
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
            FromBridge::Offer { offer_id, conference, endpoint, sdp, sources } => {
                let p = self.peers.iter_mut().find(|p| &p.name == endpoint).unwrap();
                for s in sources {
                    p.sources.insert(s.mid.clone(), s.name.clone().unwrap_or_default());
                }
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
        self.sfu.handle_control(
            ToBridge::AllocateEndpoint { id: 1, conference: "c".into(), endpoint: name.into() },
            now,
        );
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
    let Some(pt) = rtc.writer(mid).and_then(|w| w.payload_params().next().map(|p| p.pt())) else {
        return;
    };
    if let Some(w) = rtc.writer(mid) {
        let _ = w.audio_level(-20, true).write(pt, now, t, data);
    }
}

fn world() -> World {
    let now = Instant::now();
    let cfg = SfuConfig {
        candidates: vec![Candidate::host(BRIDGE.parse().unwrap(), "udp").unwrap()],
        ..SfuConfig::default()
    };
    World { sfu: Sfu::new(cfg, now), peers: Vec::new(), now, frame: 0, log: Vec::new() }
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
            FromBridge::Offer { endpoint, sources, .. } if endpoint == "viewer" => Some(sources.clone()),
            _ => None,
        })
        .flatten()
        .map(|s| (s.name.unwrap_or_default(), s.kind))
        .collect();
    assert!(kinds.contains(&("presenter-s0".to_string(), SourceKind::Screen)), "{kinds:?}");
    assert!(kinds.contains(&("presenter-v0".to_string(), SourceKind::Camera)), "{kinds:?}");
}
