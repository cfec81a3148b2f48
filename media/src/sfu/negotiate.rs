//! SDP with each endpoint: the client's offers (its published tracks) and the bridge's own
//! offers (other endpoints' sources to add or stop, ICE restart). One bridge offer is pending
//! per endpoint at a time; a client offer wins glare and the bridge offers again afterwards.
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use tracing::debug;

use super::control;
use super::endpoint::{Endpoint, OutState, TrackIn, TrackOut};
use super::{EpId, Sfu};
use crate::control::{OfferId, SourceInfo, SourceKind};

/// Why a client's offer or answer was not applied.
pub(super) enum NegotiationError {
    UnknownEndpoint,
    Sdp(String),
    /// The answer is not for the bridge offer pending on that endpoint.
    NotPending,
}

/// An offer of the bridge to one endpoint.
pub(super) struct BridgeOffer {
    pub id: OfferId,
    pub conference: String,
    pub endpoint: String,
    pub sdp: SdpOffer,
    /// The m-lines that carry other endpoints' sources (open or being opened).
    pub sources: Vec<SourceInfo>,
}

impl Sfu {
    /// Apply a client's offer (rolling back a pending bridge offer) and return the answer.
    pub(super) fn accept_offer(
        &mut self,
        id: EpId,
        offer: SdpOffer,
        sources: Vec<SourceInfo>,
    ) -> Result<SdpAnswer, NegotiationError> {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return Err(NegotiationError::UnknownEndpoint);
        };
        rollback_pending(ep);
        if !sources.is_empty() {
            ep.declared = sources;
        }
        let answer =
            ep.rtc.sdp_api().accept_offer(offer).map_err(|e| NegotiationError::Sdp(e.to_string()))?;
        ep.negotiated = true;
        Ok(answer)
    }

    /// Apply the client's answer to the bridge offer `offer_id`, then offer what changed since.
    pub(super) fn accept_answer(
        &mut self,
        id: EpId,
        offer_id: OfferId,
        answer: SdpAnswer,
        now: Instant,
    ) -> Result<(), NegotiationError> {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return Err(NegotiationError::UnknownEndpoint);
        };
        match ep.pending.take() {
            Some((pending_id, pending)) if pending_id == offer_id => {
                if let Err(e) = ep.rtc.sdp_api().accept_answer(pending, answer) {
                    rollback_pending(ep);
                    return Err(NegotiationError::Sdp(e.to_string()));
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
                return Err(NegotiationError::NotPending);
            }
        }
        self.mark_dirty(id);
        self.allocate_layers(id, now);
        self.offer_if_needed(id);
        Ok(())
    }

    /// Offer added/removed sources to an endpoint if anything changed and no offer is pending.
    pub(super) fn offer_if_needed(&mut self, id: EpId) {
        let Some(ep) = self.endpoints.get(&id) else {
            return;
        };
        if !ep.negotiated || ep.pending.is_some() {
            return;
        }
        let needed = ep.tracks_out.iter().any(|t| matches!(t.state, OutState::ToOpen | OutState::ToStop(_)));
        if needed && let Some(offer) = self.make_offer(id) {
            self.control_out.push_back(control::offer(offer));
        }
    }

    /// Build a bridge offer (sources to add and stop) and make it the pending one.
    pub(super) fn make_offer(&mut self, id: EpId) -> Option<BridgeOffer> {
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
        let (sdp, pending) = api.apply()?;
        ep.pending = Some((offer_id, pending));
        let sources = ep
            .tracks_out
            .iter()
            .filter(|t| matches!(t.state, OutState::Open(_) | OutState::Negotiating(_)))
            .filter_map(|t| {
                Some(SourceInfo {
                    mid: t.mid()?.to_string(),
                    kind: t.source_kind,
                    endpoint: Some(t.src_endpoint.clone()),
                    name: Some(t.name.clone()),
                })
            })
            .collect();
        let offer = BridgeOffer {
            id: offer_id,
            conference: ep.conference.clone(),
            endpoint: ep.name.clone(),
            sdp,
            sources,
        };
        self.mark_dirty(id);
        Some(offer)
    }

    /// An endpoint negotiated a track it sends: it becomes a source, offered to every other
    /// endpoint of the conference.
    pub(super) fn add_track_in(&mut self, id: EpId, mid: Mid, kind: MediaKind) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if ep.tracks_in.iter().any(|t| t.mid == mid) {
            return;
        }
        let mid_s = mid.to_string();
        let declared = ep.declared.iter().find(|s| s.mid == mid_s).map(|s| s.kind);
        let source_kind = match (kind, declared) {
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
        let letter = match source_kind {
            SourceKind::Audio => 'a',
            SourceKind::Camera => 'v',
            SourceKind::Screen => 's',
        };
        let n = ep.tracks_in.iter().filter(|t| t.source_kind == source_kind).count();
        let name = format!("{}-{letter}{n}", ep.name);
        debug!(endpoint = %ep.name, %mid, %name, "publishes source");
        ep.tracks_in.push(TrackIn::new(mid, kind, source_kind, name.clone()));
        let src_endpoint = ep.name.clone();
        let conf = ep.conference.clone();
        let others: Vec<EpId> = self
            .conferences
            .get(&conf)
            .map(|c| c.members.iter().copied().filter(|m| *m != id).collect())
            .unwrap_or_default();
        for o in others {
            if let Some(r) = self.endpoints.get_mut(&o) {
                r.tracks_out.push(TrackOut::new(id, &src_endpoint, mid, kind, source_kind, &name));
            }
            self.offer_if_needed(o);
        }
    }
}

/// Drop the pending bridge offer: its tracks go back to "to open" / "to stop".
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
