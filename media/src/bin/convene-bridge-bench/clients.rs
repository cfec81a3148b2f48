//! The bench's str0m clients and the threads that drive them. Each client is one `Rtc` on its
//! own UDP socket, like a browser: it may publish (VP8 simulcast q/h/f + Opus) and receives
//! whatever the bridge puts on the receive slots it offers. Clients are split over one or
//! more std threads, each owning its subset; signaling messages reach them over channels.
use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use convene_media::control::{FromBridge, ToBridge};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, Frequency, MediaKind, MediaTime, Mid, Rid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc};

use crate::scenario::{LAYER_RIDS, Media, PeerSpec};

/// Frame delay buckets (publisher's write → a subscriber's whole frame), `DELAY_BUCKET_US`
/// wide; the last one holds everything beyond.
const DELAY_BUCKETS: usize = 1000;
const DELAY_BUCKET_US: u64 = 100;
/// Where a video frame carries its publish time (µs since `epoch()`), clear of the VP8 header
/// bytes the publisher writes.
const STAMP: std::ops::Range<usize> = 10..18;

/// The bench's clock origin: publishers and subscribers are threads of one process.
fn epoch() -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Cumulative counters of one client thread (published once per loop iteration; the
/// orchestrator takes differences over the measurement window).
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    /// Datagrams received from the bridge (any kind: RTP, RTCP, STUN, DTLS).
    pub rx_dgrams: u64,
    /// Datagrams sent to the bridge, and sends that failed (e.g. a full socket buffer).
    pub tx_dgrams: u64,
    pub tx_errors: u64,
    /// RTP packets the receivers should have got (highest − first sequence number + 1, summed
    /// over every SSRC the bridge sent them, RTX included) and those they got.
    pub rtp_expected: u64,
    pub rtp_received: u64,
    /// Clients receiving all the video they should (a gauge).
    pub ready: u64,
    /// RTP packets the publishers sent per simulcast layer (q, h, f) and of audio
    /// (primary SSRCs only: no retransmissions).
    pub pub_video: [u64; 3],
    pub pub_audio: u64,
    /// This thread's CPU time.
    pub cpu_ns: u64,
    /// Video frames received per delay bucket (end to end, through the bridge and both
    /// clients' loops).
    pub frame_delay: [u64; DELAY_BUCKETS],
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            rx_dgrams: 0,
            tx_dgrams: 0,
            tx_errors: 0,
            rtp_expected: 0,
            rtp_received: 0,
            ready: 0,
            pub_video: [0; 3],
            pub_audio: 0,
            cpu_ns: 0,
            frame_delay: [0; DELAY_BUCKETS],
        }
    }
}

impl Tally {
    pub fn add(&mut self, o: &Tally) {
        self.rx_dgrams += o.rx_dgrams;
        self.tx_dgrams += o.tx_dgrams;
        self.tx_errors += o.tx_errors;
        self.rtp_expected += o.rtp_expected;
        self.rtp_received += o.rtp_received;
        self.ready += o.ready;
        for i in 0..3 {
            self.pub_video[i] += o.pub_video[i];
        }
        self.pub_audio += o.pub_audio;
        self.cpu_ns += o.cpu_ns;
        for (a, b) in self.frame_delay.iter_mut().zip(&o.frame_delay) {
            *a += b;
        }
    }

    /// The frame delay quantile `q` (0..1) in µs (a bucket's upper edge), if any frame came.
    pub fn frame_delay_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.frame_delay.iter().sum();
        let rank = ((total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.frame_delay.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some((i as u64 + 1) * DELAY_BUCKET_US);
            }
        }
        None
    }

    /// `self − earlier` for the counters (the gauge `ready` is kept).
    pub fn since(&self, e: &Tally) -> Tally {
        let mut d = *self;
        d.rx_dgrams -= e.rx_dgrams;
        d.tx_dgrams -= e.tx_dgrams;
        d.tx_errors -= e.tx_errors;
        d.rtp_expected -= e.rtp_expected;
        d.rtp_received -= e.rtp_received;
        for i in 0..3 {
            d.pub_video[i] -= e.pub_video[i];
        }
        d.pub_audio -= e.pub_audio;
        d.cpu_ns -= e.cpu_ns;
        for (a, b) in d.frame_delay.iter_mut().zip(&e.frame_delay) {
            *a -= b;
        }
        d
    }
}

/// Sequence tracking of one received SSRC (extended sequence numbers).
struct SeqTrack {
    max: u64,
}

/// What an RTP/RTCP datagram looks like from outside (SRTP leaves the header in clear):
/// `Some((ssrc, seq))` for RTP, `None` for RTCP, STUN and DTLS (RFC 7983, RFC 5761).
fn rtp_header(b: &[u8]) -> Option<(u32, u16)> {
    if b.len() < 12 || !(128..=191).contains(&b[0]) || (192..=223).contains(&b[1]) {
        return None;
    }
    Some((u32::from_be_bytes([b[8], b[9], b[10], b[11]]), u16::from_be_bytes([b[2], b[3]])))
}

pub struct Peer {
    pub name: String,
    pub conference: String,
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    /// Our offer's request id and pending state, until the bridge answers.
    pending: Option<(u64, SdpPendingOffer)>,
    offer: Option<SdpOffer>,
    publisher: Option<(Mid, Mid)>,
    /// Our send SSRCs: 0..=2 simulcast layer, 3 audio (filled once connected).
    tx_ssrcs: HashMap<u32, usize>,
    connected: bool,
    next_audio: Instant,
    next_video: Instant,
    video_ts: u64,
    audio_ts: u64,
    want_key: [bool; 3],
    last_key: Instant,
    /// Video frames received per mid, and how many video sources this client should get.
    video_frames: HashMap<Mid, u64>,
    want_videos: usize,
    ready: bool,
    rx: HashMap<u32, SeqTrack>,
    /// RTP packets received (all SSRCs).
    rtp_received: u64,
}

impl Peer {
    pub fn new(spec: &PeerSpec) -> anyhow::Result<Peer> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let local = socket.local_addr()?;
        let now = Instant::now();
        let mut rtc = Rtc::builder().build(now);
        rtc.add_local_candidate(Candidate::host(local, "udp")?);
        let mut api = rtc.sdp_api();
        let publisher = if spec.publish {
            let a = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
            let mut sim = Simulcast::new();
            for rid in LAYER_RIDS {
                sim.add_send_layer(SimulcastLayer::new(rid));
            }
            let v = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, Some(sim));
            Some((a, v))
        } else {
            // An offer needs an m-line. Not a data channel: that would make the bridge run an
            // SCTP association per subscriber, which the web client (sendonly transceivers,
            // no data channel) never costs it. An inactive audio line costs nothing.
            api.add_media(MediaKind::Audio, Direction::Inactive, None, None, None);
            None
        };
        let (offer, pending) = api.apply().ok_or_else(|| anyhow!("no offer"))?;
        Ok(Peer {
            name: spec.name.clone(),
            conference: spec.conference.clone(),
            rtc,
            socket,
            local,
            pending: Some((0, pending)),
            offer: Some(offer),
            publisher,
            tx_ssrcs: HashMap::new(),
            connected: false,
            next_audio: now,
            next_video: now,
            video_ts: 0,
            audio_ts: 0,
            want_key: [true; 3],
            last_key: now,
            video_frames: HashMap::new(),
            want_videos: spec.receive_videos,
            ready: spec.receive_videos == 0,
            rx: HashMap::new(),
            rtp_received: 0,
        })
    }

    /// Our offer as SDP, and the request id it goes out with.
    pub fn take_offer(&mut self, id: u64) -> String {
        if let Some((_, pending)) = self.pending.take() {
            self.pending = Some((id, pending));
        }
        self.offer.take().map(|o| o.to_sdp_string()).unwrap_or_default()
    }

    fn on_signaling(&mut self, m: FromBridge, out: &Sender<ToBridge>) -> anyhow::Result<()> {
        match m {
            FromBridge::Answer { id, sdp, .. } => {
                if let Some((pid, pending)) = self.pending.take() {
                    if pid == id {
                        self.rtc.sdp_api().accept_answer(pending, SdpAnswer::from_sdp_string(&sdp)?)?;
                    } else {
                        self.pending = Some((pid, pending));
                    }
                }
            }
            FromBridge::Offer { offer_id, conference, endpoint, sdp, .. } => {
                let a = self.rtc.sdp_api().accept_offer(SdpOffer::from_sdp_string(&sdp)?)?;
                let sdp = a.to_sdp_string();
                out.send(ToBridge::Answer { offer_id, conference, endpoint, sdp })
                    .map_err(|_| anyhow!("signaling gone"))?;
            }
            _ => {}
        }
        Ok(())
    }

    fn count_rx(&mut self, b: &[u8], t: &mut Tally) {
        t.rx_dgrams += 1;
        let Some((ssrc, seq)) = rtp_header(b) else { return };
        t.rtp_received += 1;
        self.rtp_received += 1;
        let seq = u64::from(seq);
        match self.rx.get_mut(&ssrc) {
            None => {
                self.rx.insert(ssrc, SeqTrack { max: seq + (1 << 16) });
                t.rtp_expected += 1;
            }
            Some(s) => {
                // The extended number closest to the highest seen so far.
                let mut ext = (s.max & !0xffff) | seq;
                if ext + 0x8000 < s.max {
                    ext += 1 << 16;
                } else if ext > s.max + 0x8000 {
                    ext -= 1 << 16;
                }
                if ext > s.max {
                    t.rtp_expected += ext - s.max;
                    s.max = ext;
                }
            }
        }
    }

    fn drive(&mut self, now: Instant, buf: &mut [u8], media: &Media, t: &mut Tally) {
        while let Ok((n, src)) = self.socket.recv_from(buf) {
            self.count_rx(&buf[..n], t);
            if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                let _ = self.rtc.handle_input(Input::Receive(now, r));
            }
        }
        let _ = self.rtc.handle_input(Input::Timeout(now));
        if self.connected {
            self.publish(now, media);
        }
        while let Ok(out) = self.rtc.poll_output() {
            match out {
                Output::Transmit(tr) => {
                    if let Some((ssrc, _)) = rtp_header(&tr.contents)
                        && let Some(&i) = self.tx_ssrcs.get(&ssrc)
                    {
                        match i {
                            3 => t.pub_audio += 1,
                            i => t.pub_video[i] += 1,
                        }
                    }
                    match self.socket.send_to(&tr.contents, tr.destination) {
                        Ok(_) => t.tx_dgrams += 1,
                        Err(_) => t.tx_errors += 1,
                    }
                }
                Output::Timeout(_) => break,
                Output::Event(Event::Connected) => {
                    self.connected = true;
                    // Publish from now on (no burst of frames "owed" since the client was made).
                    self.next_audio = now;
                    self.next_video = now;
                }
                Output::Event(Event::MediaData(d)) => {
                    if d.params.spec().codec.is_video() {
                        if let Some(b) = d.data.get(STAMP) {
                            let sent = epoch()
                                + Duration::from_micros(u64::from_le_bytes(b.try_into().unwrap_or_default()));
                            let us = now.saturating_duration_since(sent).as_micros() as u64;
                            t.frame_delay[((us / DELAY_BUCKET_US) as usize).min(DELAY_BUCKETS - 1)] += 1;
                        }
                        let n = self.video_frames.entry(d.mid).or_default();
                        *n += 1;
                        if !self.ready && *n >= 10 {
                            self.ready =
                                self.video_frames.values().filter(|&&n| n >= 10).count() >= self.want_videos;
                        }
                    }
                }
                Output::Event(Event::KeyframeRequest(k)) => {
                    let i = k.rid.and_then(|r| LAYER_RIDS.iter().position(|x| *x == &*r));
                    self.want_key[i.unwrap_or(2)] = true;
                }
                Output::Event(_) => {}
            }
        }
    }

    fn learn_tx_ssrcs(&mut self) {
        let Some((a, v)) = self.publisher else { return };
        let mut api = self.rtc.direct_api();
        if let Some(s) = api.stream_tx_by_mid(a, None) {
            self.tx_ssrcs.insert(*s.ssrc(), 3);
        }
        for (i, rid) in LAYER_RIDS.iter().enumerate() {
            if let Some(s) = api.stream_tx_by_mid(v, Some(Rid::from(*rid))) {
                self.tx_ssrcs.insert(*s.ssrc(), i);
            }
        }
    }

    fn publish(&mut self, now: Instant, media: &Media) {
        let Some((a, v)) = self.publisher else { return };
        if now >= self.next_audio {
            self.next_audio += Duration::from_millis(20);
            self.audio_ts += 960;
            let pt = self.rtc.writer(a).and_then(|w| w.payload_params().next().map(|p| p.pt()));
            if let (Some(pt), Some(w)) = (pt, self.rtc.writer(a)) {
                let t = MediaTime::new(self.audio_ts, Frequency::FORTY_EIGHT_KHZ);
                let _ = w.audio_level(-30, true).write(pt, now, t, vec![0xfcu8; 160]);
            }
        }
        if now >= self.next_video {
            self.next_video += Duration::from_micros(1_000_000 / media.fps);
            self.video_ts += 90_000 / media.fps;
            if now.duration_since(self.last_key) > Duration::from_secs(3) {
                self.want_key = [true; 3];
                self.last_key = now;
            }
            for (i, rid) in LAYER_RIDS.iter().enumerate() {
                let key = std::mem::take(&mut self.want_key[i]);
                let mut f = vec![0u8; media.frame_bytes(i)];
                f[0] = if key { 0x10 } else { 0x11 };
                if key {
                    f[3..6].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    let h = 180u16 << i;
                    f[8..10].copy_from_slice(&h.to_le_bytes());
                }
                if let Some(b) = f.get_mut(STAMP) {
                    b.copy_from_slice(
                        &(now.saturating_duration_since(epoch()).as_micros() as u64).to_le_bytes(),
                    );
                }
                let Some(w) = self.rtc.writer(v) else { return };
                let Some(pt) = w.payload_params().find(|p| p.spec().codec.is_video()).map(|p| p.pt()) else {
                    return;
                };
                let t = MediaTime::new(self.video_ts, Frequency::NINETY_KHZ);
                let _ = w.rid(Rid::from(*rid)).write(pt, now, t, f);
            }
        }
        if self.tx_ssrcs.len() < 4 {
            self.learn_tx_ssrcs();
        }
    }
}

/// What a client thread shares with the orchestrator.
#[derive(Default)]
pub struct Shared {
    pub tally: Mutex<Tally>,
    /// RTP packets received so far by each client of the thread that should receive video.
    pub per_receiver: Mutex<Vec<u64>>,
    pub stop: AtomicBool,
}

/// Drives `peers` until told to stop: signaling messages for them arrive on `inbox`, their
/// answers to bridge offers leave on `outbox`.
pub fn run(
    mut peers: Vec<Peer>,
    inbox: Receiver<FromBridge>,
    outbox: Sender<ToBridge>,
    shared: Arc<Shared>,
    media: Media,
) -> anyhow::Result<()> {
    let index: HashMap<String, usize> = peers.iter().enumerate().map(|(i, p)| (p.name.clone(), i)).collect();
    epoch();
    let mut buf = vec![0u8; 2048];
    let mut t = Tally::default();
    let cpu0 = crate::procfs::thread_cpu_seconds();
    while !shared.stop.load(Ordering::Relaxed) {
        while let Ok(m) = inbox.try_recv() {
            let endpoint = match &m {
                FromBridge::Answer { endpoint, .. } | FromBridge::Offer { endpoint, .. } => endpoint,
                _ => continue,
            };
            if let Some(&i) = index.get(endpoint) {
                let name = peers[i].name.clone();
                peers[i].on_signaling(m, &outbox).map_err(|e| e.context(name))?;
            }
        }
        let now = Instant::now();
        for p in peers.iter_mut() {
            p.drive(now, &mut buf, &media, &mut t);
        }
        t.ready = peers.iter().filter(|p| p.ready).count() as u64;
        t.cpu_ns = ((crate::procfs::thread_cpu_seconds() - cpu0) * 1e9) as u64;
        *shared.tally.lock().map_err(|_| anyhow!("poisoned"))? = t;
        {
            let mut v = shared.per_receiver.lock().map_err(|_| anyhow!("poisoned"))?;
            v.clear();
            v.extend(peers.iter().filter(|p| p.want_videos > 0).map(|p| p.rtp_received));
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    Ok(())
}
