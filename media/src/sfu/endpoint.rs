//! One endpoint: its str0m `Rtc`, the tracks it publishes and the tracks it receives.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Rtc;
use str0m::change::SdpPendingOffer;
use str0m::media::{MediaKind, Mid, Pt, Rid};

use super::EpId;
use super::keyframe_asks::KeyframeAsks;
use super::rewrite::Rewriter;
use super::simulcast::{LayerInfo, assumed_height, rid_rank};
use crate::control::{ReceiverConstraints, SlotSource, SourceKind};

/// A layer is inactive when the sender has not sent on it for this long.
const LAYER_IDLE: Duration = Duration::from_millis(1500);

#[derive(Debug)]
pub struct Layer {
    pub rid: Option<Rid>,
    /// Height seen in a VP8 keyframe, if any.
    pub seen_height: Option<u32>,
    pub last_seen: Instant,
    window_start: Instant,
    window_bytes: u64,
    pub bitrate_bps: u64,
}

/// A track published by this endpoint (one m-line, possibly several simulcast layers).
#[derive(Debug)]
pub struct TrackIn {
    pub mid: Mid,
    pub kind: MediaKind,
    pub source_kind: SourceKind,
    /// `<endpoint>-a0` / `-v0` / `-s0`.
    pub name: String,
    /// Ordered low → high quality.
    pub layers: Vec<Layer>,
    /// Keyframe requests per layer (rate limit).
    pub keyframe_asks: KeyframeAsks,
}

impl TrackIn {
    pub fn new(mid: Mid, kind: MediaKind, source_kind: SourceKind, name: String) -> Self {
        TrackIn { mid, kind, source_kind, name, layers: Vec::new(), keyframe_asks: KeyframeAsks::default() }
    }

    /// Account a received frame on its layer; returns true if the layer is new or was idle
    /// (the source may now be wanted by receivers that skipped it).
    pub fn observe(&mut self, rid: Option<Rid>, bytes: usize, height: Option<u32>, now: Instant) -> bool {
        let mut added = false;
        if !self.layers.iter().any(|l| l.rid == rid) {
            self.layers.push(Layer {
                rid,
                seen_height: None,
                last_seen: now,
                window_start: now,
                window_bytes: 0,
                bitrate_bps: 0,
            });
            // Known names by rank, unknown ones in order of appearance after them.
            self.layers.sort_by_key(|l| l.rid.as_ref().and_then(|r| rid_rank(r)).unwrap_or(u8::MAX));
            added = true;
        }
        if let Some(l) = self.layers.iter_mut().find(|l| l.rid == rid) {
            added |= now.saturating_duration_since(l.last_seen) >= LAYER_IDLE;
            l.last_seen = now;
            l.window_bytes += bytes as u64;
            if height.is_some() {
                l.seen_height = height;
            }
            let dt = now.saturating_duration_since(l.window_start);
            if dt >= Duration::from_secs(1) {
                l.bitrate_bps = l.window_bytes * 8 * 1000 / (dt.as_millis().max(1) as u64);
                l.window_bytes = 0;
                l.window_start = now;
            }
        }
        added
    }

    /// Sending on some layer recently.
    pub fn is_active(&self, now: Instant) -> bool {
        self.layers.iter().any(|l| now.saturating_duration_since(l.last_seen) < LAYER_IDLE)
    }

    pub fn layer_infos(&self, now: Instant) -> Vec<LayerInfo> {
        let n = self.layers.len();
        self.layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerInfo {
                height: l.seen_height.unwrap_or_else(|| assumed_height(i, n)),
                bitrate_bps: l.bitrate_bps,
                active: now.saturating_duration_since(l.last_seen) < LAYER_IDLE,
            })
            .collect()
    }
}

/// A source track: its endpoint and m-line.
pub type Track = (EpId, Mid);

/// What a slot forwards: one layer (`rid`, `None` without simulcast) of one source track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Feed {
    pub src: EpId,
    pub mid: Mid,
    pub rid: Option<Rid>,
}

impl Feed {
    /// The source track (endpoint, m-line), whatever the layer.
    pub fn track(&self) -> (EpId, Mid) {
        (self.src, self.mid)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// Not offered yet.
    ToOpen,
    /// In the pending bridge offer.
    Negotiating(Mid),
    Open(Mid),
}

/// One receive slot of an endpoint: a `sendonly` m-line of the bridge, never closed, that
/// carries one source at a time (see `slots.rs`).
#[derive(Debug)]
pub struct Slot {
    pub media: MediaKind,
    pub state: SlotState,
    /// Source layer forwarded now, and the one wanted (switched to on its next keyframe).
    pub current: Option<Feed>,
    pub target: Option<Feed>,
    /// One continuous outgoing stream across switches (sequence numbers, RTP time, VP8
    /// picture ids: every source layer has its own).
    pub rewrite: Rewriter,
    /// Payload type map of the current source: (incoming, ours to this receiver).
    pub pt_map: Option<(EpId, Pt, Pt)>,
    /// The source track the client was last told this slot carries.
    pub announced: Option<(EpId, Mid)>,
}

impl Slot {
    pub fn new(media: MediaKind) -> Self {
        Slot {
            media,
            state: SlotState::ToOpen,
            current: None,
            target: None,
            rewrite: Rewriter::default(),
            pt_map: None,
            announced: None,
        }
    }

    pub fn open_mid(&self) -> Option<Mid> {
        match self.state {
            SlotState::Open(m) => Some(m),
            _ => None,
        }
    }

    pub fn mid(&self) -> Option<Mid> {
        match self.state {
            SlotState::ToOpen => None,
            SlotState::Negotiating(m) | SlotState::Open(m) => Some(m),
        }
    }

    /// The source tracks this slot listens to (current and target; the same one at most once).
    pub fn tracks(&self) -> impl Iterator<Item = (EpId, Mid)> {
        let c = self.current.map(|f| f.track());
        let t = self.target.map(|f| f.track()).filter(|t| Some(*t) != c);
        c.into_iter().chain(t)
    }
}

pub struct Endpoint {
    pub id: EpId,
    pub conference: String,
    pub name: String,
    /// A recorder: receives every source, publishes nothing, is in nobody's last-N or slots.
    pub hidden: bool,
    pub rtc: Rtc,
    pub ufrag: String,
    pub timeout: Instant,
    /// Needs `poll_output` (input was given or media written).
    pub dirty: bool,
    pub connected: bool,
    pub disconnected_since: Option<Instant>,
    /// First offer/answer done; only then may the bridge renegotiate.
    pub negotiated: bool,
    pub declared: Vec<crate::control::SourceInfo>,
    pub tracks_in: Vec<TrackIn>,
    /// Receive slots, opened in steps (`slots::grown`); a slot's index never changes.
    pub slots: Vec<Slot>,
    /// Queued in `Sfu::slots_changed` (a slot changed source since the client was told).
    pub slots_dirty: bool,
    /// The bridge offer awaiting the client's answer, with its offer id.
    pub pending: Option<(crate::control::OfferId, SdpPendingOffer)>,
    pub constraints: ReceiverConstraints,
    /// Latest TWCC estimate of what we may send to this endpoint.
    pub estimate_bps: Option<u64>,
    pub addrs: Vec<SocketAddr>,
    pub created: Instant,
}

impl Endpoint {
    /// A new endpoint: not connected, nothing negotiated yet, no receive slots.
    pub fn new(id: EpId, conference: &str, name: &str, rtc: Rtc, ufrag: String, now: Instant) -> Self {
        Endpoint {
            id,
            conference: conference.to_string(),
            name: name.to_string(),
            hidden: false,
            rtc,
            ufrag,
            timeout: now,
            dirty: false,
            connected: false,
            disconnected_since: None,
            negotiated: false,
            declared: Vec::new(),
            tracks_in: Vec::new(),
            slots: Vec::new(),
            slots_dirty: false,
            pending: None,
            constraints: ReceiverConstraints::default(),
            estimate_bps: None,
            addrs: Vec::new(),
            created: now,
        }
    }

    pub fn track_in(&mut self, mid: Mid) -> Option<&mut TrackIn> {
        self.tracks_in.iter_mut().find(|t| t.mid == mid)
    }

    /// How a slot names this endpoint's track `mid` to receivers.
    pub fn slot_source(&self, mid: Mid) -> Option<SlotSource> {
        let t = self.tracks_in.iter().find(|t| t.mid == mid)?;
        Some(SlotSource { endpoint: self.name.clone(), name: t.name.clone(), kind: t.source_kind })
    }
}
