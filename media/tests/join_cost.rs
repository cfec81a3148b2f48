//! Join cost benchmark: N endpoints join one conference through the sans-IO core (str0m peers
//! in memory, simulated time), each publishing audio and video; the bridge's CPU time inside
//! `Sfu` calls is measured, split into the join path (the joiner's control messages — its
//! allocation, offer and the answer to the bridge's one slot offer — and its ICE/DTLS
//! handshake packets), media (packets of connected peers: each sends one audio frame and one
//! keyframe when connected, then a small audio and video frame every second so its sources stay
//! active; silent, so nobody becomes dominant speaker) and timers (str0m timers, housekeeping).
//! Printed per endpoint for each size, as ratios against the first size measured in the same
//! run (O(1) amortised per endpoint: ratios near 1). Also: what each join makes the bridge send
//! the others (`slots` messages and their bytes: no SDP).
//!
//! `cargo test -p convene-media --release --test join_cost -- --ignored --nocapture`
//! (`JOIN_COST_SIZES=10,100,500` is the default; other sizes by that variable).
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{self, FromBridge, ToBridge};
use convene_media::sfu::{Sfu, SfuConfig};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

const BRIDGE: &str = "10.0.0.1:10000";
/// Signaling's round trip: a bridge offer is answered this much later (as in real life, which
/// lets the bridge fold changes made meanwhile into its next offer).
const ANSWER_DELAY: Duration = Duration::from_millis(20);
/// Time between two joins (a burst, as a load generator makes).
const JOIN_EVERY: Duration = Duration::from_millis(10);
/// Media keep-alive of each connected peer (below the bridge's 1.5 s layer idle time).
const KEEPALIVE: Duration = Duration::from_secs(1);

struct Peer {
    rtc: Rtc,
    pending: Option<SdpPendingOffer>,
    timeout: Instant,
    media: Option<(Mid, Mid)>,
    connected: bool,
    /// Next keep-alive frame (after the first media).
    next_media: Option<Instant>,
    frames: u64,
}

#[derive(Default)]
struct Cost {
    join_path: Duration,
    timers: Duration,
    /// Parts of the join path: control messages (allocation, offer, answers to bridge offers),
    /// and the handshake packets of peers not yet connected (ICE, DTLS).
    control: Duration,
    handshake: Duration,
    /// Packets of connected peers (media, RTCP).
    media: Duration,
    offers: u64,
    offer_bytes: u64,
    /// `slots` messages to receivers, and their JSON bytes.
    slot_msgs: u64,
    slot_bytes: u64,
}

struct World {
    sfu: Sfu,
    bridge: SocketAddr,
    peers: Vec<Peer>,
    by_addr: HashMap<SocketAddr, usize>,
    by_name: HashMap<String, usize>,
    /// Bridge offers waiting for their answer time.
    offers: VecDeque<(Instant, FromBridge)>,
    now: Instant,
    cost: Cost,
}

impl World {
    fn new() -> World {
        convene_media::install_crypto();
        let now = Instant::now();
        let bridge: SocketAddr = BRIDGE.parse().unwrap();
        let cfg =
            SfuConfig { candidates: vec![Candidate::host(bridge, "udp").unwrap()], ..SfuConfig::default() };
        World {
            sfu: Sfu::new(cfg, now),
            bridge,
            peers: Vec::new(),
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            offers: VecDeque::new(),
            now,
            cost: Cost::default(),
        }
    }

    fn join(&mut self, i: usize) {
        let name = format!("p{i}");
        let addr: SocketAddr = format!("10.0.{}.{}:5000", i / 250, i % 250 + 2).parse().unwrap();
        let mut rtc = Rtc::builder().build(self.now);
        rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
        let mut api = rtc.sdp_api();
        let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let (offer, pending) = api.apply().unwrap();
        self.by_addr.insert(addr, self.peers.len());
        self.by_name.insert(name.clone(), self.peers.len());
        self.peers.push(Peer {
            rtc,
            pending: Some(pending),
            timeout: self.now,
            media: Some((a, v)),
            connected: false,
            next_media: None,
            frames: 0,
        });
        let now = self.now;
        let alloc = ToBridge::AllocateEndpoint { id: 1, conference: "c".into(), endpoint: name.clone() };
        let offer = ToBridge::Offer {
            id: 2,
            conference: "c".into(),
            endpoint: name,
            sdp: offer.to_sdp_string(),
            sources: vec![],
        };
        let t = Instant::now();
        self.sfu.handle_control(alloc, now);
        self.sfu.handle_control(offer, now);
        self.cost.join_path += t.elapsed();
        self.cost.control += t.elapsed();
    }

    /// Exchange everything due at `now`; false when nothing happened.
    fn exchange(&mut self) -> bool {
        let now = self.now;
        let mut busy = false;
        while let Some(m) = self.sfu.poll_control() {
            busy = true;
            match m {
                FromBridge::Answer { endpoint, sdp, .. } => {
                    let p = &mut self.peers[self.by_name[&endpoint]];
                    let answer = SdpAnswer::from_sdp_string(&sdp).unwrap();
                    p.rtc.sdp_api().accept_answer(p.pending.take().unwrap(), answer).unwrap();
                    p.timeout = now;
                }
                m @ FromBridge::Offer { .. } => {
                    if let FromBridge::Offer { sdp, .. } = &m {
                        self.cost.offer_bytes += sdp.len() as u64;
                    }
                    self.offers.push_back((now + ANSWER_DELAY, m));
                }
                m @ FromBridge::Slots { .. } => {
                    self.cost.slot_msgs += 1;
                    self.cost.slot_bytes += control::to_json(&m).len() as u64;
                }
                _ => {}
            }
        }
        while self.offers.front().is_some_and(|(at, _)| *at <= now) {
            busy = true;
            let Some((_, FromBridge::Offer { offer_id, conference, endpoint, sdp, .. })) =
                self.offers.pop_front()
            else {
                continue;
            };
            let p = &mut self.peers[self.by_name[&endpoint]];
            let answer = p.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp).unwrap()).unwrap();
            p.timeout = now;
            let reply = ToBridge::Answer { offer_id, conference, endpoint, sdp: answer.to_sdp_string() };
            let t = Instant::now();
            self.sfu.handle_control(reply, now);
            self.cost.join_path += t.elapsed();
            self.cost.control += t.elapsed();
            self.cost.offers += 1;
        }
        loop {
            let mut moved = false;
            while let Some(tx) = self.sfu.poll_transmit() {
                moved = true;
                if let Some(&i) = self.by_addr.get(&tx.destination)
                    && let Ok(r) = Receive::new(Protocol::Udp, tx.source, tx.destination, &tx.contents)
                {
                    let _ = self.peers[i].rtc.handle_input(Input::Receive(now, r));
                    self.peers[i].timeout = now;
                }
            }
            for i in 0..self.peers.len() {
                if self.peers[i].timeout > now {
                    continue;
                }
                let p = &mut self.peers[i];
                let _ = p.rtc.handle_input(Input::Timeout(now));
                if p.connected
                    && p.next_media.is_none_or(|t| t <= now)
                    && let Some((a, v)) = p.media
                {
                    // First a keyframe (the new source's first media), then a small frame every
                    // second; audio is silent.
                    let mut f = vec![0u8; if p.frames == 0 { 1000 } else { 200 }];
                    f[0] = if p.frames == 0 { 0x10 } else { 0x11 };
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    p.frames += 1;
                    p.next_media = Some(now + KEEPALIVE);
                    let k = p.frames;
                    write(&mut p.rtc, v, now, MediaTime::new(90_000 * k, Frequency::NINETY_KHZ), f);
                    let t = MediaTime::new(48_000 * k, Frequency::FORTY_EIGHT_KHZ);
                    write(&mut p.rtc, a, now, t, vec![1; 60]);
                }
                loop {
                    match p.rtc.poll_output() {
                        Ok(Output::Timeout(t)) => {
                            p.timeout = t;
                            break;
                        }
                        Ok(Output::Transmit(t)) => {
                            moved = true;
                            let t0 = Instant::now();
                            self.sfu.handle_packet(now, Protocol::Udp, t.source, self.bridge, &t.contents);
                            if p.connected {
                                self.cost.media += t0.elapsed();
                            } else {
                                self.cost.join_path += t0.elapsed();
                                self.cost.handshake += t0.elapsed();
                            }
                        }
                        Ok(Output::Event(Event::Connected)) => p.connected = true,
                        Ok(Output::Event(_)) => {}
                        Err(_) => break,
                    }
                }
            }
            busy |= moved;
            if !moved {
                break;
            }
        }
        busy
    }

    /// Run until `until` in simulated time, jumping from one deadline to the next.
    fn run_until(&mut self, until: Instant) {
        loop {
            while self.exchange() {}
            let t = Instant::now();
            let sfu_next = self.sfu.next_timeout();
            self.cost.timers += t.elapsed();
            let next = self
                .peers
                .iter()
                .map(|p| p.timeout)
                .chain(self.peers.iter().filter_map(|p| p.next_media))
                .chain(self.offers.front().map(|(at, _)| *at))
                .fold(sfu_next, Instant::min)
                .max(self.now + Duration::from_micros(100));
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            if sfu_next <= next {
                let t = Instant::now();
                self.sfu.handle_timeout(next);
                self.cost.timers += t.elapsed();
            }
        }
    }
}

fn write(rtc: &mut Rtc, mid: Mid, now: Instant, t: MediaTime, data: Vec<u8>) {
    let Some(pt) = rtc.writer(mid).and_then(|w| w.payload_params().next().map(|p| p.pt())) else {
        return;
    };
    if let Some(w) = rtc.writer(mid) {
        let _ = w.audio_level(-127, false).write(pt, now, t, data);
    }
}

/// Join `n` endpoints, one every `JOIN_EVERY`, and let them settle (everyone connected,
/// every offer answered). Returns the bridge's cost, the simulated and the wall time.
fn measure(n: usize) -> (Cost, Duration, Duration) {
    let wall = Instant::now();
    let mut w = World::new();
    let start = w.now;
    for i in 0..n {
        w.join(i);
        let next = w.now + JOIN_EVERY;
        w.run_until(next);
    }
    let settle = w.now + Duration::from_secs(1);
    w.run_until(settle);
    let connected = w.peers.iter().filter(|p| p.connected).count();
    assert_eq!(connected, n, "every endpoint connected");
    assert!(w.offers.is_empty());
    assert_eq!(w.cost.offers, n as u64, "one bridge offer per endpoint: its own slots");
    let simulated = w.now - start;
    (w.cost, simulated, wall.elapsed())
}

#[test]
#[ignore = "benchmark: run with --release -- --ignored --nocapture"]
fn join_cost_per_endpoint_in_one_conference() {
    let sizes: Vec<usize> = std::env::var("JOIN_COST_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10, 100, 500]);
    let mut base: Option<f64> = None;
    println!(
        "endpoints  join path/ep  ratio  (control, handshake /ep)  bridge offers (SDP kB/offer)  \
         slots msgs/ep (bytes/ep)  media/ep  timers/ep/s  (simulated s, wall s)"
    );
    for n in sizes {
        let (cost, simulated, wall) = measure(n);
        let per = |d: Duration| d.as_secs_f64() * 1e3 / n as f64;
        let jp = per(cost.join_path);
        let b = *base.get_or_insert(jp);
        println!(
            "{n:>9}  {jp:>9.3} ms  {:>5.2}  ({:.3} ms, {:.3} ms)  {} ({:.1})  {:.1} ({:.0})  {:.3} ms  {:.3} ms  ({:.1} s, {:.1} s)",
            jp / b,
            per(cost.control),
            per(cost.handshake),
            cost.offers,
            cost.offer_bytes as f64 / 1e3 / cost.offers.max(1) as f64,
            cost.slot_msgs as f64 / n as f64,
            cost.slot_bytes as f64 / n as f64,
            per(cost.media),
            per(cost.timers) / simulated.as_secs_f64(),
            simulated.as_secs_f64(),
            wall.as_secs_f64()
        );
    }
}
