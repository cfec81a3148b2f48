//! The sans-IO forwarding core: conferences of str0m endpoints, fed datagrams, control
//! messages and time; it yields datagrams to send and control messages for signaling.
//! No sockets, no clock and no metrics registry here: every entry point takes `now`, and what
//! the core counts is in [`SfuCounters`], which the I/O layer exports. So routing is tested
//! in-process, in simulated time.
//!
//! [`Sfu`] and its public API are here; its work is split by concern, one `impl Sfu` each:
//! `ingress` (datagrams in: flood limit, classification, hand-off to the endpoint), `poll`
//! (driving str0m and collecting its output), `events` (str0m events), `forward` (media to
//! receivers on their slots, keyframe requests), `allocate` (which source each receive slot
//! carries: last-N, pins, speakers; and simulcast layers per receiver; a hidden endpoint, i.e.
//! a recorder, gets every source and is never one),
//! `negotiate` (SDP offer/answer with each endpoint), `control` (requests from signaling and
//! the messages sent to it) and `expiry` (removing endpoints, finding the timed-out ones).
pub mod conference;
pub mod counters;
pub mod demux;
pub mod endpoint;
pub mod keyframe_asks;
pub mod lastn;
pub mod ratelimit;
pub mod router;
pub mod simulcast;
pub mod slots;
pub mod speaker;

mod allocate;
mod codec;
mod control;
mod events;
mod expiry;
mod forward;
mod ingress;
mod negotiate;
mod poll;
mod probe;
mod rewrite;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Mid, Rid};
use str0m::net::{Protocol, Transmit};
use str0m::{Candidate, Input};
use tracing::warn;

use crate::control::{Drain, FromBridge, OfferId, ToBridge};
use conference::Conference;
pub use counters::{Census, DropReason, SfuCounters};
use endpoint::Endpoint;
pub use forward::MAX_EGRESS_QUEUE;
use ratelimit::TokenBucket;

pub type EpId = u64;

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Local candidates put in every answer (UDP host/srflx, TCP passive).
    pub candidates: Vec<Candidate>,
    pub max_endpoints: usize,
    /// Packets per second accepted from one source address (floods beyond are dropped).
    pub per_source_pps: f64,
    /// Least time between keyframe requests on one layer while the last is unanswered
    /// (`keyframe_asks`: an answered one frees the next sooner).
    pub keyframe_min_gap: Duration,
    /// Most receive slots per endpoint: audio (the loudest speakers but the receiver, see
    /// `slots::Audible`) and video (cameras and screens by last-N). They open in steps as the
    /// endpoint wants more sources (`slots::grown`).
    pub audio_slots: usize,
    pub video_slots: usize,
    /// Receive slots of a hidden endpoint (a recorder), which gets every source: so these
    /// bound the participants (audio) and cameras + screens (video) a recording can hold.
    /// All are offered at once (a recording must not miss the start of anyone).
    pub hidden_audio_slots: usize,
    pub hidden_video_slots: usize,
    /// An endpoint disconnected this long (no ICE restart) is expired.
    pub disconnect_grace: Duration,
    /// str0m stats period (loss/RTT/NACK counters).
    pub stats_interval: Option<Duration>,
    /// Start estimate for TWCC bandwidth estimation; `None` disables BWE (and str0m's pacer):
    /// layers are then chosen by receiver constraints only.
    pub initial_bwe: Option<Bitrate>,
    /// Several workers share the bridge's UDP port (`io::steer`): every ICE ufrag starts with
    /// this worker's prefix, and the core records what the steering must learn
    /// ([`Sfu::take_steer_changes`]). `None`: one worker, nothing recorded.
    pub steering: Option<String>,
}

/// What the steering in front of several workers must learn from this one's core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SteerChange {
    /// An endpoint of this worker did ICE from this address: its DTLS/RTP come here.
    Learned(SocketAddr),
    Forgotten(SocketAddr),
    /// The conference has no endpoint here (any more, or its allocation was refused): another
    /// worker may host it next time.
    ConferenceEnded(String),
}

impl SfuConfig {
    /// The most receive slots of `media` an endpoint may have.
    pub fn slot_cap(&self, media: MediaKind, hidden: bool) -> usize {
        match (media, hidden) {
            (MediaKind::Audio, false) => self.audio_slots,
            (MediaKind::Audio, true) => self.hidden_audio_slots,
            (MediaKind::Video, false) => self.video_slots,
            (MediaKind::Video, true) => self.hidden_video_slots,
        }
    }
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            candidates: Vec::new(),
            max_endpoints: 1000,
            per_source_pps: 20_000.0,
            keyframe_min_gap: Duration::from_millis(300),
            audio_slots: 5,
            video_slots: 20,
            hidden_audio_slots: 32,
            hidden_video_slots: 48,
            disconnect_grace: Duration::from_secs(60),
            stats_interval: Some(Duration::from_secs(2)),
            initial_bwe: Some(Bitrate::kbps(2_500)),
            steering: None,
        }
    }
}

/// Period of the housekeeping pass (expiry, loudest speakers, layer re-allocation).
const HOUSEKEEPING: Duration = Duration::from_millis(250);
/// RTT samples kept until the I/O layer takes them (bounded for drivers that never do).
const MAX_RTT_SAMPLES: usize = 1024;

pub struct Sfu {
    cfg: SfuConfig,
    counters: SfuCounters,
    rtt_samples: Vec<Duration>,
    endpoints: HashMap<EpId, Endpoint>,
    conferences: HashMap<String, Conference>,
    /// Source track → the receive slots (receiver, slot index) listening to it (as current or
    /// target): a frame goes to these only, never through the whole conference.
    routes: HashMap<(EpId, Mid), Vec<(EpId, usize)>>,
    /// Receivers whose slots changed source since they were last told (`poll_control`).
    slots_changed: Vec<EpId>,
    /// Endpoints whose slots grew since the last flush (to be offered).
    grown: Vec<EpId>,
    by_name: HashMap<(String, String), EpId>,
    by_ufrag: HashMap<String, EpId>,
    by_addr: HashMap<SocketAddr, EpId>,
    /// Per-source-address token buckets (flood limit).
    floods: HashMap<SocketAddr, TokenBucket>,
    /// Endpoints that need `poll_output` (see `Endpoint::dirty`).
    dirty: Vec<EpId>,
    /// Endpoint deadlines, earliest first: an entry per deadline set (`Endpoint::timeout` is the
    /// live one; an entry that no longer matches it is skipped). So finding the due endpoints
    /// and the next deadline costs O(log N), not a pass over every endpoint.
    timers: BinaryHeap<Reverse<(Instant, EpId)>>,
    transmits: VecDeque<Transmit>,
    control_out: VecDeque<FromBridge>,
    next_endpoint_id: EpId,
    /// The ids of our own offers (answered by the client with the same id).
    next_offer_id: OfferId,
    draining: bool,
    last_housekeeping: Instant,
    log_limit: TokenBucket,
    /// Cumulative NACK counters per (endpoint, mid, rid, egress) to turn str0m totals into deltas.
    nack_totals: HashMap<(EpId, Mid, Option<Rid>, bool), u64>,
    /// Recorded only with `SfuConfig::steering`; taken after every call by the I/O layer.
    steer_changes: Vec<SteerChange>,
}

impl Sfu {
    pub fn new(cfg: SfuConfig, now: Instant) -> Sfu {
        crate::install_crypto();
        Sfu {
            cfg,
            counters: SfuCounters::default(),
            rtt_samples: Vec::new(),
            endpoints: HashMap::new(),
            conferences: HashMap::new(),
            routes: HashMap::new(),
            slots_changed: Vec::new(),
            grown: Vec::new(),
            by_name: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            floods: HashMap::new(),
            dirty: Vec::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            control_out: VecDeque::new(),
            next_endpoint_id: 1,
            next_offer_id: 0,
            draining: false,
            last_housekeeping: now,
            log_limit: TokenBucket::new(2.0, 10.0, now),
            nack_totals: HashMap::new(),
            steer_changes: Vec::new(),
        }
    }

    /// What the core counted so far (the I/O layer exports it).
    pub fn counters(&self) -> &SfuCounters {
        &self.counters
    }

    /// Round-trip times reported by peers since the last call.
    pub fn drain_rtt_samples(&mut self) -> impl Iterator<Item = Duration> + '_ {
        self.rtt_samples.drain(..)
    }

    pub fn census(&self) -> Census {
        Census {
            endpoints: self.endpoints.len() as u64,
            conferences: self.conferences.len() as u64,
            largest_conference: self.conferences.values().map(|c| c.members.len() as u64).max().unwrap_or(0),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Enter (with the drain as the I/O layer's clock measures it) or leave draining: no new
    /// conferences; signaling is told.
    pub fn set_draining(&mut self, drain: Option<Drain>) {
        let draining = drain.is_some();
        if self.draining != draining || draining {
            self.draining = draining;
            self.counters.draining = draining;
            self.control_out.push_back(control::draining(drain));
        }
    }

    /// One datagram (UDP) or one de-framed ICE-TCP packet.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        self.receive(now, proto, source, destination, buf);
        self.flush(now);
    }

    /// Datagrams read together (one `recvmmsg`): each is handed to its endpoint as it comes,
    /// and every receiver the batch wrote to is polled once at the end, not once per packet
    /// (str0m's per-poll work grows with an endpoint's streams).
    pub fn handle_datagrams<'a>(
        &mut self,
        now: Instant,
        proto: Protocol,
        destination: impl Fn(SocketAddr) -> SocketAddr,
        datagrams: impl Iterator<Item = (SocketAddr, &'a [u8])>,
    ) {
        for (source, buf) in datagrams {
            self.receive(now, proto, source, destination(source), buf);
        }
        self.flush(now);
    }

    /// Handle one control message from signaling; replies go to `poll_control`.
    pub fn handle_control(&mut self, msg: ToBridge, now: Instant) {
        self.on_control(msg, now);
    }

    /// Drive time: str0m timers, then housekeeping (layer choice, expiry).
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<EpId> = Vec::new();
        while let Some(Reverse((at, id))) = self.timers.peek().copied()
            && at <= now
        {
            self.timers.pop();
            // Skip entries of removed endpoints and deadlines moved since (the new one is queued).
            if self.endpoints.get(&id).is_some_and(|e| e.timeout == at) {
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        for id in due {
            if let Some(ep) = self.endpoints.get_mut(&id) {
                if ep.rtc.is_alive() {
                    if let Err(e) = ep.rtc.handle_input(Input::Timeout(now)) {
                        warn!(endpoint = %ep.name, "timeout handling failed: {e}");
                        ep.rtc.disconnect();
                    }
                } else {
                    ep.timeout = now + Duration::from_secs(1);
                    self.timers.push(Reverse((ep.timeout, id)));
                }
            }
            self.mark_dirty(id);
        }
        self.flush(now);
        if now.saturating_duration_since(self.last_housekeeping) >= HOUSEKEEPING {
            self.last_housekeeping = now;
            self.housekeeping(now);
            self.flush(now);
        }
    }

    /// When `handle_timeout` should be called next.
    pub fn next_timeout(&self) -> Instant {
        let hk = self.last_housekeeping + HOUSEKEEPING;
        // The earliest entry may be stale (a spurious, harmless wake-up).
        self.timers.peek().map_or(hk, |Reverse((at, _))| (*at).min(hk))
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// What the steering must learn since the last call (always empty with one worker).
    pub fn take_steer_changes(&mut self) -> std::vec::Drain<'_, SteerChange> {
        self.steer_changes.drain(..)
    }

    pub fn has_conference(&self, name: &str) -> bool {
        self.conferences.contains_key(name)
    }

    fn steer_change(&mut self, c: SteerChange) {
        if self.cfg.steering.is_some() {
            self.steer_changes.push(c);
        }
    }

    pub fn poll_control(&mut self) -> Option<FromBridge> {
        self.control_out.pop_front()
    }

    /// Test/diagnostic view: the video sources a receiver gets now, and which layer of each.
    pub fn forwarded_layers(&self, conference: &str, endpoint: &str) -> Vec<(String, Option<String>)> {
        let Some(ep) = self.endpoint_by_name(conference, endpoint).and_then(|id| self.endpoints.get(&id))
        else {
            return Vec::new();
        };
        ep.slots
            .iter()
            .filter(|s| s.media == MediaKind::Video)
            .filter_map(|s| s.current)
            .filter_map(|f| {
                let name = self.endpoints.get(&f.src)?.slot_source(f.mid)?.name;
                Some((name, f.rid.map(|r| r.to_string())))
            })
            .collect()
    }

    fn housekeeping(&mut self, now: Instant) {
        self.expire_stale(now);
        self.prune_floods(now);
        let capacity = self.cfg.audio_slots + 1;
        let mut reordered = Vec::new();
        for c in self.conferences.values_mut() {
            let speaker = &c.speaker;
            if c.audible.reorder(capacity, |m| speaker.score(m, now)) {
                reordered.push(c.name.clone());
            }
        }
        for c in reordered {
            self.allocate_audio_all(&c, now);
        }
        let ids: Vec<EpId> = self.endpoints.keys().copied().collect();
        for id in ids {
            self.allocate(id, now);
        }
    }

    fn endpoint_by_name(&self, conference: &str, endpoint: &str) -> Option<EpId> {
        self.by_name.get(&(conference.to_string(), endpoint.to_string())).copied()
    }

    fn update_census(&mut self) {
        self.counters.census = self.census();
    }

    fn record_rtt(&mut self, rtt: Duration) {
        if self.rtt_samples.len() < MAX_RTT_SAMPLES {
            self.rtt_samples.push(rtt);
        }
    }
}
