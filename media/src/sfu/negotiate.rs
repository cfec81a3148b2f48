//! SDP with each endpoint: the client's offers (its published tracks) and the bridge's own
//! offers of its receive slots — first after the client's first offer, then only when the
//! endpoint wants more sources than it has slots (`slots::grown`: in steps, a handful of times
//! at most). Others joining or leaving otherwise renegotiate nobody (the slots switch sources
//! instead, see `allocate.rs`), and slots never close. One bridge offer is pending per endpoint
//! at a time; a client offer wins glare and the bridge offers again afterwards.
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::{Direction, MediaKind, Mid};
use tracing::debug;

use super::control;
use super::endpoint::{Endpoint, Slot, SlotState, Track, TrackIn};
use super::{EpId, Sfu, slots};
use crate::control::{OfferId, SlotInfo, SlotMedia, SourceKind};

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
    /// Every receive slot (open or being opened) and what it carries now.
    pub slots: Vec<SlotInfo>,
}

impl Sfu {
    /// Apply a client's offer (rolling back a pending bridge offer) and return the answer.
    pub(super) fn accept_offer(
        &mut self,
        id: EpId,
        offer: SdpOffer,
        sources: Vec<crate::control::SourceInfo>,
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
                for s in &mut ep.slots {
                    if let SlotState::Negotiating(m) = s.state {
                        s.state = SlotState::Open(m);
                    }
                }
            }
            other => {
                ep.pending = other;
                return Err(NegotiationError::NotPending);
            }
        }
        self.mark_dirty(id);
        self.allocate(id, now);
        self.offer_if_needed(id);
        Ok(())
    }

    /// Open more receive slots of `media` on `id` if it wants more sources (`want`) than it has
    /// slots. They are offered at the end of the step (`flush`), so audio and video slots
    /// opened by one change go in one offer.
    pub(super) fn grow_slots(&mut self, id: EpId, media: MediaKind, want: usize) {
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        let cap = self.cfg.slot_cap(media, ep.hidden);
        let total = ep.slots.iter().filter(|s| s.media == media).count();
        let n = slots::grown(total, want, cap);
        if n > total {
            ep.slots.extend(std::iter::repeat_with(|| Slot::new(media)).take(n - total));
            self.grown.push(id);
        }
    }

    /// Offer the endpoint's receive slots if some are not negotiated and no offer is pending.
    pub(super) fn offer_if_needed(&mut self, id: EpId) {
        let Some(ep) = self.endpoints.get(&id) else {
            return;
        };
        if !ep.negotiated || ep.pending.is_some() {
            return;
        }
        let needed = ep.slots.iter().any(|s| s.state == SlotState::ToOpen);
        if needed && let Some(offer) = self.make_offer(id) {
            self.control_out.push_back(control::offer(offer));
        }
    }

    /// Build a bridge offer (the slots not negotiated yet) and make it the pending one.
    pub(super) fn make_offer(&mut self, id: EpId) -> Option<BridgeOffer> {
        self.next_offer_id += 1;
        let offer_id = self.next_offer_id;
        let ep = self.endpoints.get_mut(&id)?;
        rollback_pending(ep);
        let mut api = ep.rtc.sdp_api();
        for (i, s) in ep.slots.iter_mut().enumerate() {
            if s.state == SlotState::ToOpen {
                let mid = api.add_media(
                    s.media,
                    Direction::SendOnly,
                    Some("convene".into()),
                    Some(format!("slot{i}")),
                    None,
                );
                s.state = SlotState::Negotiating(mid);
            }
        }
        let (sdp, pending) = api.apply()?;
        ep.pending = Some((offer_id, pending));
        let described: Vec<(Mid, SlotMedia, Option<Track>)> = ep
            .slots
            .iter_mut()
            .filter_map(|s| {
                let media = if s.media == MediaKind::Audio { SlotMedia::Audio } else { SlotMedia::Video };
                s.announced = s.current.map(|f| f.track());
                Some((s.mid()?, media, s.announced))
            })
            .collect();
        let slots = described
            .into_iter()
            .map(|(mid, media, src)| SlotInfo {
                mid: mid.to_string(),
                media,
                source: src.and_then(|(e, m)| self.endpoints.get(&e)?.slot_source(m)),
            })
            .collect();
        let ep = self.endpoints.get(&id)?;
        let offer = BridgeOffer {
            id: offer_id,
            conference: ep.conference.clone(),
            endpoint: ep.name.clone(),
            sdp,
            slots,
        };
        self.mark_dirty(id);
        Some(offer)
    }

    /// An endpoint negotiated a track it sends: it becomes a source. Nobody is renegotiated:
    /// receivers get it on a slot once it sends (`allocate.rs`).
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
    }
}

/// Drop the pending bridge offer: its tracks go back to "to open" / "to stop".
fn rollback_pending(ep: &mut Endpoint) {
    if ep.pending.take().is_some() {
        for s in &mut ep.slots {
            if let SlotState::Negotiating(_) = s.state {
                s.state = SlotState::ToOpen;
            }
        }
    }
}
