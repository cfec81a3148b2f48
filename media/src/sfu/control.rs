//! Control requests from signaling, and every message the core sends to signaling: the one
//! place that reads `ToBridge` or builds `FromBridge` (`convene_proto::control`).
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::media::MediaKind;
use str0m::{Candidate, IceCreds, Rtc};
use tracing::{info, warn};

use super::conference::Conference;
use super::endpoint::Endpoint;
use super::negotiate::{BridgeOffer, NegotiationError};
use super::{EpId, Sfu};
use crate::control::{
    Drain, EndpointState, ErrorCode, FromBridge, OfferId, RequestId, SlotInfo, SourceInfo, ToBridge,
};

/// Why a request was refused; becomes the `error` reply.
type Refusal = (ErrorCode, String);

impl Sfu {
    pub(super) fn on_control(&mut self, msg: ToBridge, now: Instant) {
        let hidden = matches!(msg, ToBridge::AllocateHiddenEndpoint { .. });
        let reply = match msg {
            ToBridge::AllocateEndpoint { id, conference, endpoint }
            | ToBridge::AllocateHiddenEndpoint { id, conference, endpoint } => {
                let reply = self.allocate_endpoint(id, &conference, &endpoint, hidden, now);
                // Refused for a conference not hosted here: with several workers the dispatcher
                // made this worker its owner by routing the request here; give it back.
                if matches!(reply, FromBridge::Error { .. }) && !self.conferences.contains_key(&conference) {
                    self.steer_change(super::SteerChange::ConferenceEnded(conference));
                }
                reply
            }
            ToBridge::Offer { id, conference, endpoint, sdp, sources } => {
                match self.on_offer(id, &conference, &endpoint, &sdp, sources, now) {
                    // The answer (and any offer it triggered) is already queued, in order.
                    Ok(()) => return self.flush(now),
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                }
            }
            // Kept by the bridge for its load report (`Bridge::send`); nothing for the core.
            ToBridge::IceStats { .. } => return,
            ToBridge::Answer { offer_id, conference, endpoint, sdp } => {
                // Answers get no reply: a refused one leaves our offer to be made again.
                if let Err((_, why)) = self.on_answer(offer_id, &conference, &endpoint, &sdp, now) {
                    warn!(%conference, %endpoint, offer_id, "client answer refused: {why}");
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
                        self.allocate(ep, now);
                        FromBridge::Ok { id }
                    }
                }
            }
            ToBridge::ExpireEndpoint { id, conference, endpoint } => {
                match self.lookup(&conference, &endpoint) {
                    Err((code, why)) => FromBridge::error(Some(id), code, why),
                    Ok(ep) => {
                        self.remove_endpoint(ep, now);
                        FromBridge::Ok { id }
                    }
                }
            }
            ToBridge::ExpireConference { id, conference } => match self.conferences.get(&conference) {
                None => FromBridge::error(Some(id), ErrorCode::UnknownConference, conference),
                Some(c) => {
                    for m in c.receivers() {
                        self.remove_endpoint(m, now);
                    }
                    FromBridge::Ok { id }
                }
            },
        };
        self.control_out.push_back(reply);
        self.flush(now);
    }

    fn lookup(&self, conference: &str, endpoint: &str) -> Result<EpId, Refusal> {
        self.endpoint_by_name(conference, endpoint)
            .ok_or_else(|| (ErrorCode::UnknownEndpoint, format!("{conference}/{endpoint}")))
    }

    fn allocate_endpoint(
        &mut self,
        req: RequestId,
        conference: &str,
        endpoint: &str,
        hidden: bool,
        now: Instant,
    ) -> FromBridge {
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
        // With several workers the ufrag's prefix names this one (the steering reads it).
        let prefix = self.cfg.steering.as_deref().unwrap_or("");
        let ufrag = format!("{prefix}{}", random_token(16 - prefix.len().min(8)));
        let creds = IceCreds { ufrag: ufrag.clone(), pass: random_token(24) };
        // Opus, VP8 and constrained-baseline H.264 only: every receive slot m-line lists each
        // codec (str0m's default list makes a video m-line ~4 KB of SDP).
        let mut builder = Rtc::builder()
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .set_ice_lite(true)
            // Forward RTP packets as they come (no depacketizing, no re-packetizing per receiver).
            .set_rtp_mode(true)
            .set_local_ice_credentials(creds)
            .set_stats_interval(self.cfg.stats_interval);
        builder.codec_config().add_h264(108.into(), Some(109.into()), true, 0x42e01f);
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
        if hidden {
            conf.add_hidden(id);
        } else {
            conf.add(id, endpoint);
        }
        let mut ep = Endpoint::new(id, conference, endpoint, rtc, ufrag.clone(), now);
        ep.hidden = hidden;
        self.endpoints.insert(id, ep);
        // Receive slots, not per-source m-lines: others joining switch what the slots carry.
        // They open after the client's first offer, as many as it wants then, and more later
        // only when it wants more (`slots::grown`). A hidden endpoint (recorder) gets every
        // source: it wants a whole room's worth from the start.
        if hidden {
            for media in [MediaKind::Audio, MediaKind::Video] {
                self.grow_slots(id, media, self.cfg.slot_cap(media, true));
            }
        }
        self.timers.push(std::cmp::Reverse((now, id)));
        self.by_ufrag.insert(ufrag, id);
        self.by_name.insert(key, id);
        self.update_census();
        info!(%conference, %endpoint, hidden, "endpoint allocated");
        FromBridge::Allocated {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            candidates: self.cfg.candidates.iter().map(|c| c.to_sdp_string()).collect(),
            ice_lite: true,
        }
    }

    fn on_offer(
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
        // The client's offer wins over ours (glare): our pending changes are redone later.
        let answer = self.accept_offer(id, offer, sources).map_err(|e| refusal(endpoint, e))?;
        let reply = FromBridge::Answer {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            sdp: answer.to_sdp_string(),
        };
        // The answer must reach signaling before any offer of ours that this triggers.
        self.control_out.push_back(reply);
        self.mark_dirty(id);
        // Slots for what it wants now (at least a first few), all in one offer of ours.
        self.grow_slots(id, MediaKind::Audio, 1);
        self.grow_slots(id, MediaKind::Video, 1);
        self.allocate(id, now);
        self.flush(now);
        self.offer_if_needed(id);
        Ok(())
    }

    /// The client's answer to our offer `offer_id`.
    fn on_answer(
        &mut self,
        offer_id: OfferId,
        conference: &str,
        endpoint: &str,
        sdp: &str,
        now: Instant,
    ) -> Result<(), Refusal> {
        let id = self.lookup(conference, endpoint)?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| (ErrorCode::Sdp, e.to_string()))?;
        self.accept_answer(id, offer_id, answer, now).map_err(|e| refusal(endpoint, e))
    }
}

fn refusal(endpoint: &str, e: NegotiationError) -> Refusal {
    match e {
        NegotiationError::UnknownEndpoint => (ErrorCode::UnknownEndpoint, endpoint.to_string()),
        NegotiationError::Sdp(m) => (ErrorCode::Sdp, m),
        NegotiationError::NotPending => (ErrorCode::Conflict, "no such pending offer".into()),
    }
}

/// `offer` from the bridge to an endpoint (relayed by signaling).
pub(super) fn offer(o: BridgeOffer) -> FromBridge {
    FromBridge::Offer {
        offer_id: o.id,
        conference: o.conference,
        endpoint: o.endpoint,
        sdp: o.sdp.to_sdp_string(),
        slots: o.slots,
    }
}

/// `slots` from the bridge to an endpoint: the slots that changed source.
pub(super) fn slots(ep: &Endpoint, slots: Vec<SlotInfo>) -> FromBridge {
    FromBridge::Slots { conference: ep.conference.clone(), endpoint: ep.name.clone(), slots }
}

pub(super) fn endpoint_state(ep: &Endpoint, state: EndpointState) -> FromBridge {
    FromBridge::EndpointState { conference: ep.conference.clone(), endpoint: ep.name.clone(), state }
}

pub(super) fn dominant_speaker(conference: String, endpoint: String) -> FromBridge {
    FromBridge::DominantSpeaker { conference, endpoint }
}

pub(super) fn draining(drain: Option<Drain>) -> FromBridge {
    FromBridge::Draining { drain }
}

/// ICE ufrag/password characters (RFC 5245 ice-char subset).
fn random_token(n: usize) -> String {
    const CH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| CH[fastrand::usize(..CH.len())] as char).collect()
}
