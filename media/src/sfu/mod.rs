//! The sans-IO forwarding core: conferences of str0m endpoints, fed datagrams, control
//! messages and time; it yields datagrams to send and control messages for signaling.
//! No sockets here, so routing is tested in-process.
pub mod conference;
pub mod demux;
pub mod endpoint;
pub mod lastn;
pub mod ratelimit;
pub mod router;
pub mod simulcast;
pub mod speaker;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use str0m::net::{Protocol, Receive, Transmit};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, Rtc};
use tracing::{debug, info, warn};

use crate::control::{
    Drain, EndpointState, ErrorCode, FromBridge, OfferId, ReceiverConstraints, RequestId, SourceInfo,
    SourceKind, ToBridge,
};
use crate::metrics::{DropReason, Metrics};
use conference::Conference;
use endpoint::{Endpoint, OutState, TrackIn, TrackOut, vp8_keyframe_height};
use ratelimit::TokenBucket;
use router::Decision;

pub type EpId = u64;

/// Why a request was refused; the control handler turns it into an `error` reply.
type Refusal = (ErrorCode, String);

/// (track index, layer infos, layer rids, max height) of one video source of a receiver.
type SourceLayers = (usize, Vec<simulcast::LayerInfo>, Vec<Option<Rid>>, u32);

#[derive(Debug, Clone)]
pub struct SfuConfig {
    /// Local candidates put in every answer (UDP host/srflx, TCP passive).
    pub candidates: Vec<Candidate>,
    pub max_endpoints: usize,
    /// Packets per second accepted from one source address (floods beyond are dropped).
    pub per_source_pps: f64,
    pub keyframe_min_gap: Duration,
    /// Up to this many endpoints every audio stream is forwarded; above, only the loudest.
    pub audio_all_max: usize,
    pub audio_loudest: usize,
    /// An endpoint disconnected this long (no ICE restart) is expired.
    pub disconnect_grace: Duration,
    /// str0m stats period (loss/RTT/NACK metrics).
    pub stats_interval: Option<Duration>,
    /// Start estimate for TWCC bandwidth estimation; `None` disables BWE (and str0m's pacer):
    /// layers are then chosen by receiver constraints only.
    pub initial_bwe: Option<Bitrate>,
}

impl Default for SfuConfig {
    fn default() -> Self {
        SfuConfig {
            candidates: Vec::new(),
            max_endpoints: 1000,
            per_source_pps: 20_000.0,
            keyframe_min_gap: Duration::from_millis(300),
            audio_all_max: 20,
            audio_loudest: 5,
            disconnect_grace: Duration::from_secs(60),
            stats_interval: Some(Duration::from_secs(2)),
            initial_bwe: Some(Bitrate::kbps(2_500)),
        }
    }
}

const HOUSEKEEPING: Duration = Duration::from_millis(250);
const MAX_FLOOD_TABLE: usize = 100_000;

pub struct Sfu {
    cfg: SfuConfig,
    metrics: Arc<Metrics>,
    endpoints: HashMap<EpId, Endpoint>,
    conferences: HashMap<String, Conference>,
    by_name: HashMap<(String, String), EpId>,
    by_ufrag: HashMap<String, EpId>,
    by_addr: HashMap<SocketAddr, EpId>,
    floods: HashMap<SocketAddr, TokenBucket>,
    dirty: Vec<EpId>,
    transmits: VecDeque<Transmit>,
    control_out: VecDeque<FromBridge>,
    next_endpoint_id: EpId,
    next_offer_id: OfferId,
    draining: bool,
    last_housekeeping: Instant,
    log_limit: TokenBucket,
    /// Cumulative NACK counters per (endpoint, mid, rid, egress) to turn str0m totals into deltas.
    nack_totals: HashMap<(EpId, Mid, Option<Rid>, bool), u64>,
}

/// Counters behind `Load` (the I/O layer turns totals into rates).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub endpoints: u64,
    pub conferences: u64,
    pub largest_conference: u64,
}

impl Sfu {
    pub fn new(cfg: SfuConfig, metrics: Arc<Metrics>, now: Instant) -> Sfu {
        crate::install_crypto();
        Sfu {
            cfg,
            metrics,
            endpoints: HashMap::new(),
            conferences: HashMap::new(),
            by_name: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            floods: HashMap::new(),
            dirty: Vec::new(),
            transmits: VecDeque::new(),
            control_out: VecDeque::new(),
            next_endpoint_id: 1,
            next_offer_id: 0,
            draining: false,
            last_housekeeping: now,
            log_limit: TokenBucket::new(2.0, 10.0, now),
            nack_totals: HashMap::new(),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
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

    /// Enter/leave draining: no new conferences; signaling is told.
    /// `drain`: the deadline, owned by the I/O layer's clock (`None`: stop draining).
    pub fn set_draining(&mut self, drain: Option<Drain>) {
        let draining = drain.is_some();
        if self.draining != draining || draining {
            self.draining = draining;
            self.metrics.draining.set(i64::from(draining));
            self.control_out.push_back(FromBridge::Draining { drain });
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_control(&mut self) -> Option<FromBridge> {
        self.control_out.pop_front()
    }

    /// When `handle_timeout` should be called next.
    pub fn next_timeout(&self) -> Instant {
        let hk = self.last_housekeeping + HOUSEKEEPING;
        self.endpoints.values().map(|e| e.timeout).fold(hk, Instant::min)
    }

    fn log_drop(&mut self, now: Instant, reason: DropReason, source: SocketAddr) {
        self.metrics.count_drop(reason);
        if self.log_limit.allow(now) {
            warn!(reason = reason.label(), %source, "dropped input (rate-limited log)");
        }
    }

    // ------------------------------------------------------------------ datagrams ----

    /// One datagram (UDP) or one de-framed ICE-TCP packet.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        if self.floods.len() > MAX_FLOOD_TABLE {
            // Spoofed-source storm: forget buckets rather than grow without bound.
            self.floods.clear();
        }
        let rate = self.cfg.per_source_pps;
        let bucket = self.floods.entry(source).or_insert_with(|| TokenBucket::new(rate, rate / 2.0, now));
        if !bucket.allow(now) {
            return self.log_drop(now, DropReason::Flood, source);
        }
        let id = match demux::classify(buf) {
            demux::Kind::Unknown => return self.log_drop(now, DropReason::Unparseable, source),
            demux::Kind::Stun => match demux::stun_local_ufrag(buf) {
                None => return self.log_drop(now, DropReason::MalformedStun, source),
                Some(u) => match self.by_ufrag.get(u) {
                    Some(id) => *id,
                    None => return self.log_drop(now, DropReason::UnknownUfrag, source),
                },
            },
            demux::Kind::Dtls | demux::Kind::Rtp => match self.by_addr.get(&source) {
                Some(id) => *id,
                None => return self.log_drop(now, DropReason::UnknownSource, source),
            },
        };
        let Ok(recv) = Receive::new(proto, source, destination, buf) else {
            return self.log_drop(now, DropReason::Unparseable, source);
        };
        let is_stun = matches!(demux::classify(buf), demux::Kind::Stun);
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if let Err(e) = ep.rtc.handle_input(Input::Receive(now, recv)) {
            debug!(endpoint = %ep.name, "input refused: {e}");
            return self.log_drop(now, DropReason::Rejected, source);
        }
        if is_stun && !ep.addrs.contains(&source) {
            ep.addrs.push(source);
            self.by_addr.insert(source, id);
        }
        self.metrics.packets_in.inc();
        self.metrics.bytes_in.inc_by(buf.len() as u64);
        self.mark_dirty(id);
        self.flush(now);
    }

    /// Drive time: str0m timers, then housekeeping (layer choice, expiry).
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<EpId> = self.endpoints.values().filter(|e| e.timeout <= now).map(|e| e.id).collect();
        for id in due {
            if let Some(ep) = self.endpoints.get_mut(&id) {
                if ep.rtc.is_alive() {
                    if let Err(e) = ep.rtc.handle_input(Input::Timeout(now)) {
                        warn!(endpoint = %ep.name, "timeout handling failed: {e}");
                        ep.rtc.disconnect();
                    }
                } else {
                    ep.timeout = now + Duration::from_secs(1);
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

    fn housekeeping(&mut self, now: Instant) {
        // Expire endpoints that stayed disconnected (or died) past the grace period.
        let grace = self.cfg.disconnect_grace;
        let dead: Vec<EpId> = self
            .endpoints
            .values()
            .filter(|e| {
                e.disconnected_since
                    .is_some_and(|t| now.saturating_duration_since(t) > grace)
                    // Dead, or allocated but never connected (client went away mid-join).
                    || ((!e.rtc.is_alive() || !e.connected)
                        && now.saturating_duration_since(e.created) > grace)
            })
            .map(|e| e.id)
            .collect();
        for id in dead {
            info!(endpoint = id, "expiring disconnected endpoint");
            self.remove_endpoint(id);
        }
        self.floods.retain(|_, b| now.saturating_duration_since(b.last_used()) < Duration::from_secs(10));
        if self.floods.len() > MAX_FLOOD_TABLE / 2 {
            self.floods.clear();
        }
        let big: Vec<String> = self
            .conferences
            .values()
            .filter(|c| c.members.len() > self.cfg.audio_all_max)
            .map(|c| c.name.clone())
            .collect();
        for name in big {
            if let Some(c) = self.conferences.get_mut(&name) {
                c.update_loudest(self.cfg.audio_loudest, now);
            }
        }
        let ids: Vec<EpId> = self.endpoints.keys().copied().collect();
        for id in ids {
            self.reallocate(id, now);
        }
    }

    fn mark_dirty(&mut self, id: EpId) {
        if let Some(ep) = self.endpoints.get_mut(&id)
            && !ep.dirty
        {
            ep.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Poll every endpoint that got input until it has nothing more to say.
    fn flush(&mut self, now: Instant) {
        while let Some(id) = self.dirty.pop() {
            self.poll_endpoint(id, now);
        }
    }

    fn poll_endpoint(&mut self, id: EpId, now: Instant) {
        let mut events = Vec::new();
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        ep.dirty = false;
        loop {
            if !ep.rtc.is_alive() {
                ep.timeout = now + Duration::from_secs(1);
                if ep.disconnected_since.is_none() {
                    ep.disconnected_since = Some(now);
                    self.control_out.push_back(FromBridge::EndpointState {
                        conference: ep.conference.clone(),
                        endpoint: ep.name.clone(),
                        state: EndpointState::Disconnected,
                    });
                }
                break;
            }
            match ep.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    ep.timeout = t;
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    self.metrics.packets_out.inc();
                    self.metrics.bytes_out.inc_by(t.contents.len() as u64);
                    self.transmits.push_back(t);
                }
                Ok(Output::Event(e)) => events.push(e),
                Err(e) => {
                    warn!(endpoint = %ep.name, "poll_output failed, disconnecting: {e}");
                    ep.rtc.disconnect();
                }
            }
        }
        for e in events {
            self.on_event(id, e, now);
        }
    }

    fn on_event(&mut self, id: EpId, event: Event, now: Instant) {
        match event {
            Event::MediaData(data) => self.on_media(id, data, now),
            Event::Connected => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.connected = true;
                    ep.disconnected_since = None;
                    info!(conference = %ep.conference, endpoint = %ep.name, "endpoint connected");
                    self.control_out.push_back(FromBridge::EndpointState {
                        conference: ep.conference.clone(),
                        endpoint: ep.name.clone(),
                        state: EndpointState::Connected,
                    });
                }
            }
            Event::IceConnectionStateChange(s) => {
                let Some(ep) = self.endpoints.get_mut(&id) else {
                    return;
                };
                let notify = match s {
                    IceConnectionState::Disconnected if ep.disconnected_since.is_none() => {
                        ep.disconnected_since = Some(now);
                        Some(EndpointState::Disconnected)
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed
                        if ep.disconnected_since.take().is_some() && ep.connected =>
                    {
                        Some(EndpointState::Connected)
                    }
                    _ => None,
                };
                if let Some(state) = notify {
                    self.control_out.push_back(FromBridge::EndpointState {
                        conference: ep.conference.clone(),
                        endpoint: ep.name.clone(),
                        state,
                    });
                }
            }
            Event::MediaAdded(m) => {
                if matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                    self.add_track_in(id, m.mid, m.kind, now);
                }
            }
            Event::KeyframeRequest(req) => {
                // A receiver asks for a keyframe: route it to the source's sender.
                let Some(ep) = self.endpoints.get(&id) else {
                    return;
                };
                let Some(t) = ep.tracks_out.iter().find(|t| t.mid() == Some(req.mid)) else {
                    return;
                };
                let rid = t.current.or(t.target).flatten();
                let (src, src_mid) = (t.src, t.src_mid);
                self.request_keyframe(src, src_mid, rid, now);
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.estimate_bps = Some(estimate.as_u64());
                }
            }
            Event::PeerStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.metrics.rtt_seconds.observe(rtt.as_secs_f64());
                }
                let losses: Vec<f32> =
                    [s.ingress_loss_fraction, s.egress_loss_fraction].into_iter().flatten().collect();
                if !losses.is_empty() {
                    let mean = losses.iter().sum::<f32>() / losses.len() as f32;
                    self.metrics.loss.set(f64::from(mean));
                }
            }
            Event::MediaEgressStats(s) => {
                let key = (id, s.mid, s.rid, true);
                let last = self.nack_totals.insert(key, s.nacks).unwrap_or(0);
                self.metrics.nacks_received.inc_by(s.nacks.saturating_sub(last));
            }
            Event::MediaIngressStats(s) => {
                let key = (id, s.mid, s.rid, false);
                let last = self.nack_totals.insert(key, s.nacks).unwrap_or(0);
                self.metrics.nacks_sent.inc_by(s.nacks.saturating_sub(last));
            }
            _ => {}
        }
    }

    fn add_track_in(&mut self, id: EpId, mid: Mid, kind: MediaKind, now: Instant) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if ep.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        let mid_s = mid.to_string();
        let declared = ep.declared.iter().find(|s| s.mid == mid_s).map(|s| s.kind);
        let source = match (kind, declared) {
            (MediaKind::Audio, _) => SourceKind::Audio,
            (MediaKind::Video, Some(SourceKind::Screen)) => SourceKind::Screen,
            (MediaKind::Video, Some(_)) => SourceKind::Camera,
            // Default: first video is the camera, later ones screens.
            (MediaKind::Video, None) => {
                if ep.tracks_in.iter().any(|t| t.kind == MediaKind::Video) {
                    SourceKind::Screen
                } else {
                    SourceKind::Camera
                }
            }
        };
        let letter = match source {
            SourceKind::Audio => 'a',
            SourceKind::Camera => 'v',
            SourceKind::Screen => 's',
        };
        let n = ep.tracks_in.iter().filter(|t| t.source == source).count();
        let name = format!("{}-{letter}{n}", ep.name);
        debug!(endpoint = %ep.name, %mid, %name, "publishes source");
        ep.tracks_in.push(TrackIn::new(mid, kind, source, name.clone()));
        let src_endpoint = ep.name.clone();
        let conf = ep.conference.clone();
        let others: Vec<EpId> = self
            .conferences
            .get(&conf)
            .map(|c| c.members.iter().copied().filter(|m| *m != id).collect())
            .unwrap_or_default();
        for o in others {
            if let Some(r) = self.endpoints.get_mut(&o) {
                r.tracks_out.push(new_track_out(id, &src_endpoint, mid, kind, source, &name));
            }
            self.negotiate(o, now);
        }
    }

    // ------------------------------------------------------------------ media ----

    fn on_media(&mut self, id: EpId, data: MediaData, now: Instant) {
        let Some(p) = self.endpoints.get_mut(&id) else {
            return;
        };
        let keyframe = data.is_keyframe();
        let height = if keyframe { vp8_keyframe_height(&data.data) } else { None };
        let Some(track) = p.track_in(data.mid) else {
            return;
        };
        let kind = track.kind;
        let new_layer = track.observe(data.rid, data.data.len(), height, now);
        let mut kf_requests: Vec<(EpId, Mid, Option<Rid>)> = Vec::new();
        if kind == MediaKind::Video && !data.contiguous {
            // Loss the sender could not repair: the decoder needs a fresh keyframe.
            kf_requests.push((id, data.mid, data.rid));
        }
        let pname = p.name.clone();
        let Some(conf) = self.conferences.get_mut(&p.conference) else {
            return;
        };
        let mut speaker_changed = None;
        let audio_level = data.ext_vals.audio_level;
        let voice = data.ext_vals.voice_activity.unwrap_or(false);
        if kind == MediaKind::Audio
            && let Some(level) = audio_level
        {
            speaker_changed = conf.speaker.observe(&pname, level, now);
        }
        let audio_ok = conf.members.len() <= self.cfg.audio_all_max || conf.loudest.contains(&pname);
        for &rid in &conf.members {
            if rid == id {
                continue;
            }
            let Some(r) = self.endpoints.get_mut(&rid) else {
                continue;
            };
            let Some(t) = r.tracks_out.iter_mut().find(|t| t.src == id && t.src_mid == data.mid) else {
                continue;
            };
            let Some(mid) = t.open_mid() else { continue };
            let switched = if kind == MediaKind::Audio {
                if !audio_ok {
                    continue;
                }
                false
            } else {
                let (d, cur) = router::decide(t.current, t.target, data.rid, keyframe);
                if cur != t.current && cur.is_some() && t.current.is_some() {
                    self.metrics.layer_switches.inc();
                }
                t.current = cur;
                match d {
                    Decision::Forward { switched } => switched,
                    Decision::Drop => continue,
                    Decision::NeedKeyframe => {
                        kf_requests.push((id, data.mid, data.rid));
                        continue;
                    }
                }
            };
            let time = t.rewrite_time(data.time, switched, now);
            let Some(mut writer) = r.rtc.writer(mid) else {
                continue;
            };
            let Some(pt) = writer.match_params(data.params) else {
                continue;
            };
            if let Some(level) = audio_level {
                writer = writer.audio_level(level, voice);
            }
            if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                debug!(endpoint = %r.name, "write failed: {e}");
                continue;
            }
            if !r.dirty {
                r.dirty = true;
                self.dirty.push(rid);
            }
        }
        if let Some(speaker) = speaker_changed {
            let conference = conf.name.clone();
            let members = conf.members.clone();
            self.control_out.push_back(FromBridge::DominantSpeaker { conference, endpoint: speaker });
            for m in members {
                self.reallocate(m, now);
            }
        } else if new_layer {
            let members = conf.members.clone();
            for m in members {
                self.reallocate(m, now);
            }
        }
        for (ep, mid, rid) in kf_requests {
            self.request_keyframe(ep, mid, rid, now);
        }
    }

    fn request_keyframe(&mut self, ep: EpId, mid: Mid, rid: Option<Rid>, now: Instant) {
        let gap = self.cfg.keyframe_min_gap;
        let Some(e) = self.endpoints.get_mut(&ep) else {
            return;
        };
        let Some(t) = e.track_in(mid) else { return };
        if !t.may_request_keyframe(rid, now, gap) {
            return;
        }
        let Some(mut w) = e.rtc.writer(mid) else {
            return;
        };
        let kind = if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else {
            KeyframeRequestKind::Fir
        };
        match w.request_keyframe(rid, kind) {
            Ok(()) => {
                self.metrics.keyframe_requests.inc();
                self.mark_dirty(ep);
            }
            Err(e) => debug!("keyframe request failed: {e}"),
        }
    }

    /// Re-decide which sources (last-N) and layers (constraints, BWE) a receiver gets.
    fn reallocate(&mut self, id: EpId, now: Instant) {
        let Some(r) = self.endpoints.get(&id) else {
            return;
        };
        let Some(conf) = self.conferences.get(&r.conference) else {
            return;
        };
        let c = &r.constraints;
        let selected =
            lastn::select(&r.name, c.last_n, &c.pinned, conf.speaker.history(), &conf.member_names);
        // Video tracks in priority order: by selection rank, screens before cameras.
        let mut order: Vec<(usize, usize, u8)> = Vec::new(); // (track index, rank, kind rank)
        for (i, t) in r.tracks_out.iter().enumerate() {
            if t.kind != MediaKind::Video {
                continue;
            }
            if let Some(rank) = selected.iter().position(|e| *e == t.src_endpoint) {
                order.push((i, rank, u8::from(t.source != SourceKind::Screen)));
            }
        }
        order.sort_by_key(|(_, rank, k)| (*rank, *k));
        let infos: Vec<SourceLayers> = order
            .iter()
            .filter_map(|(i, _, _)| {
                let t = &r.tracks_out[*i];
                let src = self.endpoints.get(&t.src)?;
                let tin = src.tracks_in.iter().find(|x| x.mid == t.src_mid)?;
                let max_h = max_height_for(c, &t.name, &t.src_endpoint);
                Some((*i, tin.layer_infos(now), tin.layers.iter().map(|l| l.rid).collect(), max_h))
            })
            .collect();
        let sources: Vec<(&[simulcast::LayerInfo], u32)> =
            infos.iter().map(|(_, l, _, h)| (l.as_slice(), *h)).collect();
        let chosen = simulcast::allocate(&sources, r.estimate_bps);
        let desired: u64 =
            infos.iter().map(|(_, l, _, _)| l.iter().map(|x| x.bitrate_bps).max().unwrap_or(0)).sum();
        let mut targets: Vec<Option<Option<Rid>>> = vec![None; r.tracks_out.len()];
        for ((i, _, rids, _), ch) in infos.iter().zip(chosen) {
            targets[*i] = ch.map(|k| rids[k]);
        }
        let mut kf = Vec::new();
        let Some(r) = self.endpoints.get_mut(&id) else {
            return;
        };
        for (t, target) in r.tracks_out.iter_mut().zip(targets) {
            if t.kind != MediaKind::Video {
                continue;
            }
            if t.target != target {
                t.target = target;
            }
            if let Some(tg) = target
                && t.current != Some(tg)
                && t.open_mid().is_some()
            {
                kf.push((t.src, t.src_mid, tg));
            }
            if target.is_none() {
                t.current = None;
            }
        }
        if desired > 0 && self.cfg.initial_bwe.is_some() {
            // Ask the estimator to probe above what the best layers need (payload bitrate
            // excludes RTP/SRTP overhead), so a receiver that can take the top layer gets it.
            let want = (desired.saturating_mul(3) / 2).max(300_000);
            r.rtc.bwe().set_bitrate(Bitrate::kbps(300), Bitrate::bps(want));
        }
        for (src, mid, rid) in kf {
            self.request_keyframe(src, mid, rid, now);
        }
    }

    // ------------------------------------------------------------------ control ----

    /// Handle one control message from signaling; replies go to `poll_control`.
    pub fn handle_control(&mut self, msg: ToBridge, now: Instant) {
        let reply = match msg {
            ToBridge::AllocateEndpoint { id, conference, endpoint } => {
                self.allocate(id, &conference, &endpoint, now)
            }
            ToBridge::Offer { id, conference, endpoint, sdp, sources } => {
                match self.accept_offer(id, &conference, &endpoint, &sdp, sources, now) {
                    // The answer (and any offer it triggered) is already queued, in order.
                    Ok(()) => return self.flush(now),
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                }
            }
            ToBridge::Answer { offer_id, conference, endpoint, sdp } => {
                // Answers get no reply: a bad one leaves the offer pending, to be redone.
                if let Err(e) = self.accept_answer(offer_id, &conference, &endpoint, &sdp, now) {
                    warn!(%conference, %endpoint, offer_id, "client answer refused: {e}");
                }
                return self.flush(now);
            }
            ToBridge::IceCandidate { id, conference, endpoint, candidate } => {
                match self.lookup(&conference, &endpoint) {
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                    Ok(ep) => {
                        let c = candidate.trim();
                        let c = if c.starts_with("candidate:") {
                            c.to_string()
                        } else {
                            format!("candidate:{c}")
                        };
                        match Candidate::from_sdp_string(&c) {
                            Ok(cand) => {
                                if let Some(e) = self.endpoints.get_mut(&ep) {
                                    e.rtc.add_remote_candidate(cand);
                                }
                                self.mark_dirty(ep);
                                FromBridge::Ok { id }
                            }
                            Err(e) => FromBridge::error(Some(id), ErrorCode::BadRequest, e.to_string()),
                        }
                    }
                }
            }
            ToBridge::ReceiverConstraints { id, conference, endpoint, constraints } => {
                match self.lookup(&conference, &endpoint) {
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                    Ok(ep) => {
                        if let Some(e) = self.endpoints.get_mut(&ep) {
                            e.constraints = constraints;
                        }
                        self.reallocate(ep, now);
                        FromBridge::Ok { id }
                    }
                }
            }
            ToBridge::ExpireEndpoint { id, conference, endpoint } => {
                match self.lookup(&conference, &endpoint) {
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                    Ok(ep) => {
                        self.remove_endpoint(ep);
                        FromBridge::Ok { id }
                    }
                }
            }
            ToBridge::ExpireConference { id, conference } => match self.conferences.get(&conference) {
                None => FromBridge::error(Some(id), ErrorCode::UnknownConference, conference),
                Some(c) => {
                    for m in c.members.clone() {
                        self.remove_endpoint(m);
                    }
                    FromBridge::Ok { id }
                }
            },
        };
        self.control_out.push_back(reply);
        self.flush(now);
    }

    fn lookup(&self, conference: &str, endpoint: &str) -> Result<EpId, Refusal> {
        self.endpoint_id(conference, endpoint)
            .ok_or_else(|| (ErrorCode::UnknownEndpoint, format!("{conference}/{endpoint}")))
    }

    fn endpoint_id(&self, conference: &str, endpoint: &str) -> Option<EpId> {
        self.by_name.get(&(conference.to_string(), endpoint.to_string())).copied()
    }

    fn allocate(&mut self, req: RequestId, conference: &str, endpoint: &str, now: Instant) -> FromBridge {
        if conference.is_empty() || endpoint.is_empty() || conference.len() > 256 || endpoint.len() > 256 {
            return FromBridge::error(Some(req), ErrorCode::BadRequest, "bad conference/endpoint id");
        }
        if self.draining && !self.conferences.contains_key(conference) {
            return FromBridge::error(Some(req), ErrorCode::Draining, "bridge is draining");
        }
        if self.endpoints.len() >= self.cfg.max_endpoints {
            return FromBridge::error(Some(req), ErrorCode::Capacity, "bridge is full");
        }
        let key = (conference.to_string(), endpoint.to_string());
        if self.by_name.contains_key(&key) {
            return FromBridge::error(Some(req), ErrorCode::Conflict, "endpoint exists");
        }
        let ufrag = random_token(16);
        let creds = IceCreds { ufrag: ufrag.clone(), pass: random_token(24) };
        let mut builder = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(creds)
            .set_stats_interval(self.cfg.stats_interval);
        if let Some(b) = self.cfg.initial_bwe {
            builder = builder.enable_bwe(Some(b));
        }
        let mut rtc = builder.build(now);
        for c in &self.cfg.candidates {
            rtc.add_local_candidate(c.clone());
        }
        let id = self.next_endpoint_id;
        self.next_endpoint_id += 1;
        let conf = self
            .conferences
            .entry(conference.to_string())
            .or_insert_with(|| Conference::new(conference, now));
        // Existing sources of the conference become tracks to receive.
        let mut tracks_out = Vec::new();
        for m in &conf.members {
            if let Some(src) = self.endpoints.get(m) {
                for t in &src.tracks_in {
                    tracks_out.push(new_track_out(*m, &src.name, t.mid, t.kind, t.source, &t.name));
                }
            }
        }
        conf.add(id, endpoint);
        self.endpoints.insert(
            id,
            Endpoint {
                id,
                conference: conference.to_string(),
                name: endpoint.to_string(),
                rtc,
                ufrag: ufrag.clone(),
                timeout: now,
                dirty: false,
                connected: false,
                disconnected_since: None,
                negotiated: false,
                declared: Vec::new(),
                tracks_in: Vec::new(),
                tracks_out,
                pending: None,
                constraints: ReceiverConstraints::default(),
                estimate_bps: None,
                addrs: Vec::new(),
                created: now,
            },
        );
        self.by_ufrag.insert(ufrag, id);
        self.by_name.insert(key, id);
        self.update_census();
        info!(%conference, %endpoint, "endpoint allocated");
        FromBridge::Allocated {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            candidates: self.cfg.candidates.iter().map(|c| c.to_sdp_string()).collect(),
            ice_lite: true,
        }
    }

    fn accept_offer(
        &mut self,
        req: RequestId,
        conference: &str,
        endpoint: &str,
        sdp: &str,
        sources: Vec<SourceInfo>,
        now: Instant,
    ) -> Result<(), Refusal> {
        let id = self.lookup(conference, endpoint)?;
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| (ErrorCode::Sdp, e.to_string()))?;
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return Err((ErrorCode::UnknownEndpoint, endpoint.to_string()));
        };
        // The client's offer wins over ours (glare): our pending changes are redone later.
        rollback_pending(ep);
        if !sources.is_empty() {
            ep.declared = sources;
        }
        let answer = ep.rtc.sdp_api().accept_offer(offer).map_err(|e| (ErrorCode::Sdp, e.to_string()))?;
        ep.negotiated = true;
        let reply = FromBridge::Answer {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            sdp: answer.to_sdp_string(),
        };
        // The answer must reach signaling before any offer of ours that this triggers.
        self.control_out.push_back(reply);
        self.mark_dirty(id);
        self.flush(now);
        self.negotiate(id, now);
        Ok(())
    }

    /// The client's answer to our offer `offer`.
    fn accept_answer(
        &mut self,
        offer: OfferId,
        conference: &str,
        endpoint: &str,
        sdp: &str,
        now: Instant,
    ) -> Result<(), String> {
        let id = self.endpoint_id(conference, endpoint).ok_or("unknown endpoint")?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| e.to_string())?;
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return Err("unknown endpoint".into());
        };
        match ep.pending.take() {
            Some((offer_id, pending)) if offer_id == offer => {
                if let Err(e) = ep.rtc.sdp_api().accept_answer(pending, answer) {
                    rollback_pending(ep);
                    return Err(e.to_string());
                }
                for t in &mut ep.tracks_out {
                    if let OutState::Negotiating(m) = t.state {
                        t.state = OutState::Open(m);
                    }
                }
                ep.tracks_out.retain(|t| !matches!(t.state, OutState::NegotiatingStop(_)));
            }
            other => {
                ep.pending = other;
                return Err("no such pending offer".into());
            }
        }
        self.mark_dirty(id);
        self.reallocate(id, now);
        self.negotiate(id, now);
        Ok(())
    }

    /// Offer added/removed sources to an endpoint if anything changed and no offer is pending.
    fn negotiate(&mut self, id: EpId, now: Instant) {
        let Some(ep) = self.endpoints.get(&id) else {
            return;
        };
        if !ep.negotiated || ep.pending.is_some() {
            return;
        }
        let needed = ep.tracks_out.iter().any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)));
        if needed && let Some(offer) = self.renegotiate(id, now) {
            self.control_out.push_back(offer);
        }
    }

    /// Build a bridge offer (sources to add and stop).
    fn renegotiate(&mut self, id: EpId, now: Instant) -> Option<FromBridge> {
        self.next_offer_id += 1;
        let offer_id = self.next_offer_id;
        let ep = self.endpoints.get_mut(&id)?;
        rollback_pending(ep);
        let mut api = ep.rtc.sdp_api();
        for t in &mut ep.tracks_out {
            match t.state {
                OutState::ToOpen => {
                    let mid = api.add_media(
                        t.kind,
                        Direction::SendOnly,
                        Some(t.src_endpoint.clone()),
                        Some(t.name.clone()),
                        None,
                    );
                    t.state = OutState::Negotiating(mid);
                }
                OutState::ToStop(mid) => {
                    api.stop_media(mid);
                    t.state = OutState::NegotiatingStop(mid);
                }
                _ => {}
            }
        }
        let (offer, pending) = api.apply()?;
        ep.pending = Some((offer_id, pending));
        let sources = ep
            .tracks_out
            .iter()
            .filter(|t| matches!(t.state, OutState::Open(_) | OutState::Negotiating(_)))
            .filter_map(|t| {
                Some(SourceInfo {
                    mid: t.mid()?.to_string(),
                    kind: t.source,
                    endpoint: Some(t.src_endpoint.clone()),
                    name: Some(t.name.clone()),
                })
            })
            .collect();
        let msg = FromBridge::Offer {
            offer_id,
            conference: ep.conference.clone(),
            endpoint: ep.name.clone(),
            sdp: offer.to_sdp_string(),
            sources,
        };
        self.mark_dirty(id);
        let _ = now;
        Some(msg)
    }

    fn remove_endpoint(&mut self, id: EpId) {
        let Some(mut ep) = self.endpoints.remove(&id) else {
            return;
        };
        ep.rtc.disconnect();
        self.by_ufrag.remove(&ep.ufrag);
        for a in &ep.addrs {
            self.by_addr.remove(a);
        }
        self.by_name.remove(&(ep.conference.clone(), ep.name.clone()));
        self.nack_totals.retain(|k, _| k.0 != id);
        self.dirty.retain(|d| *d != id);
        let mut others = Vec::new();
        if let Some(c) = self.conferences.get_mut(&ep.conference) {
            c.remove(id, &ep.name);
            others = c.members.clone();
            if c.members.is_empty() {
                self.conferences.remove(&ep.conference);
                info!(conference = %ep.conference, "conference ended");
            }
        }
        for o in others {
            if let Some(r) = self.endpoints.get_mut(&o) {
                r.tracks_out.retain(|t| !(t.src == id && t.state == OutState::ToOpen));
                for t in r.tracks_out.iter_mut().filter(|t| t.src == id) {
                    if let OutState::Open(m) | OutState::Negotiating(m) = t.state {
                        t.state = OutState::ToStop(m);
                    }
                }
            }
            self.negotiate(o, Instant::now());
        }
        self.control_out.push_back(FromBridge::EndpointState {
            conference: ep.conference.clone(),
            endpoint: ep.name.clone(),
            state: EndpointState::Expired,
        });
        info!(conference = %ep.conference, endpoint = %ep.name, "endpoint expired");
        self.update_census();
    }

    fn update_census(&self) {
        let c = self.census();
        self.metrics.endpoints.set(c.endpoints as i64);
        self.metrics.conferences.set(c.conferences as i64);
        self.metrics.largest_conference.set(c.largest_conference as i64);
    }

    /// Test/diagnostic view: which layer each receiver gets of each source.
    pub fn forwarded_layers(&self, conference: &str, endpoint: &str) -> Vec<(String, Option<String>)> {
        let Some(id) = self.endpoint_id(conference, endpoint) else {
            return Vec::new();
        };
        let Some(ep) = self.endpoints.get(&id) else {
            return Vec::new();
        };
        ep.tracks_out
            .iter()
            .filter(|t| t.kind == MediaKind::Video)
            .map(|t| (t.name.clone(), t.current.flatten().map(|r| r.to_string())))
            .collect()
    }
}

fn rollback_pending(ep: &mut Endpoint) {
    if ep.pending.take().is_some() {
        for t in &mut ep.tracks_out {
            match t.state {
                OutState::Negotiating(_) => t.state = OutState::ToOpen,
                OutState::NegotiatingStop(m) => t.state = OutState::ToStop(m),
                _ => {}
            }
        }
    }
}

fn new_track_out(
    src: EpId,
    src_endpoint: &str,
    mid: Mid,
    kind: MediaKind,
    source: SourceKind,
    name: &str,
) -> TrackOut {
    TrackOut {
        src,
        src_endpoint: src_endpoint.to_string(),
        src_mid: mid,
        kind,
        source,
        name: name.to_string(),
        state: OutState::ToOpen,
        current: None,
        target: None,
        time_offset: 0,
        last_out: None,
    }
}

fn max_height_for(c: &ReceiverConstraints, source: &str, endpoint: &str) -> u32 {
    c.max_height.get(source).or_else(|| c.max_height.get(endpoint)).copied().unwrap_or(c.default_max_height)
}

/// ICE ufrag/password characters (RFC 5245 ice-char subset).
fn random_token(n: usize) -> String {
    const CH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| CH[fastrand::usize(..CH.len())] as char).collect()
}
