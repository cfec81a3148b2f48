//! Control requests from signaling, and every message the core sends to signaling: the one
//! place that reads or builds `crate::control::Message`.
use std::time::Instant;

use str0m::change::{SdpAnswer, SdpOffer};
use str0m::{Candidate, IceCreds, Rtc};
use tracing::info;

use super::conference::Conference;
use super::endpoint::{Endpoint, TrackOut};
use super::negotiate::{BridgeOffer, NegotiationError};
use super::{EpId, Sfu};
use crate::control::{EndpointState, ErrorCode, Message, SourceInfo};

impl Sfu {
    pub(super) fn on_control(&mut self, msg: Message, now: Instant) {
        let id = msg.id();
        let reply = match msg {
            Message::AllocateEndpoint { id, conference, endpoint, .. } => {
                self.allocate_endpoint(id, &conference, &endpoint, now)
            }
            Message::Offer { id, conference, endpoint, sdp, sources } => {
                match self.on_offer(id, &conference, &endpoint, &sdp, sources, now) {
                    // The answer (and any offer it triggered) is already queued, in order.
                    Ok(()) => return self.flush(now),
                    Err(e) => e,
                }
            }
            Message::Answer { id, conference, endpoint, sdp } => {
                self.on_answer(id, &conference, &endpoint, &sdp, now)
            }
            Message::IceCandidate { id, conference, endpoint, candidate } => {
                match self.lookup(id, &conference, &endpoint) {
                    Err(e) => e,
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
                                Message::Ok { id }
                            }
                            Err(e) => Message::error(Some(id), ErrorCode::BadRequest, e.to_string()),
                        }
                    }
                }
            }
            Message::ReceiverConstraints { id, conference, endpoint, constraints } => {
                match self.lookup(id, &conference, &endpoint) {
                    Err(e) => e,
                    Ok(ep) => {
                        if let Some(e) = self.endpoints.get_mut(&ep) {
                            e.constraints = constraints;
                        }
                        self.allocate_layers(ep, now);
                        Message::Ok { id }
                    }
                }
            }
            Message::RestartIce { id, conference, endpoint } => match self.lookup(id, &conference, &endpoint)
            {
                Err(e) => e,
                Ok(ep) => match self.make_offer(ep, Some(id), true) {
                    Some(o) => offer(o),
                    None => Message::error(Some(id), ErrorCode::Internal, "no offer"),
                },
            },
            Message::ExpireEndpoint { id, conference, endpoint } => {
                match self.lookup(id, &conference, &endpoint) {
                    Err(e) => e,
                    Ok(ep) => {
                        self.remove_endpoint(ep);
                        Message::Ok { id }
                    }
                }
            }
            Message::ExpireConference { id, conference } => match self.conferences.get(&conference) {
                None => Message::error(Some(id), ErrorCode::UnknownConference, conference),
                Some(c) => {
                    for m in c.members.clone() {
                        self.remove_endpoint(m);
                    }
                    Message::Ok { id }
                }
            },
            Message::Ping { id } => Message::Ok { id },
            other => Message::error(
                id,
                ErrorCode::BadRequest,
                format!("not a request for a bridge: {:?}", std::mem::discriminant(&other)),
            ),
        };
        self.control_out.push_back(reply);
        self.flush(now);
    }

    fn lookup(&self, req: u64, conference: &str, endpoint: &str) -> Result<EpId, Message> {
        self.endpoint_by_name(conference, endpoint).ok_or_else(|| {
            Message::error(Some(req), ErrorCode::UnknownEndpoint, format!("{conference}/{endpoint}"))
        })
    }

    fn allocate_endpoint(&mut self, req: u64, conference: &str, endpoint: &str, now: Instant) -> Message {
        if conference.is_empty() || endpoint.is_empty() || conference.len() > 256 || endpoint.len() > 256 {
            return Message::error(Some(req), ErrorCode::BadRequest, "bad conference/endpoint id");
        }
        if self.draining && !self.conferences.contains_key(conference) {
            return Message::error(Some(req), ErrorCode::Draining, "bridge is draining");
        }
        if self.endpoints.len() >= self.cfg.max_endpoints {
            return Message::error(Some(req), ErrorCode::Capacity, "bridge is full");
        }
        let key = (conference.to_string(), endpoint.to_string());
        if self.by_name.contains_key(&key) {
            return Message::error(Some(req), ErrorCode::Conflict, "endpoint exists");
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
        let id = self.next_id;
        self.next_id += 1;
        let conf = self
            .conferences
            .entry(conference.to_string())
            .or_insert_with(|| Conference::new(conference, now));
        // Existing sources of the conference become tracks to receive.
        let mut tracks_out = Vec::new();
        for m in &conf.members {
            if let Some(src) = self.endpoints.get(m) {
                for t in &src.tracks_in {
                    tracks_out.push(TrackOut::new(*m, &src.name, t.mid, t.kind, t.source_kind, &t.name));
                }
            }
        }
        conf.add(id, endpoint);
        let ep = Endpoint::new(id, conference, endpoint, rtc, ufrag.clone(), tracks_out, now);
        self.endpoints.insert(id, ep);
        self.by_ufrag.insert(ufrag, id);
        self.by_name.insert(key, id);
        self.update_census();
        info!(%conference, %endpoint, "endpoint allocated");
        Message::Allocated {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            candidates: self.cfg.candidates.iter().map(|c| c.to_sdp_string()).collect(),
            ice_lite: true,
        }
    }

    fn on_offer(
        &mut self,
        req: u64,
        conference: &str,
        endpoint: &str,
        sdp: &str,
        sources: Vec<SourceInfo>,
        now: Instant,
    ) -> Result<(), Message> {
        let id = self.lookup(req, conference, endpoint)?;
        let offer = SdpOffer::from_sdp_string(sdp)
            .map_err(|e| Message::error(Some(req), ErrorCode::Sdp, e.to_string()))?;
        // The client's offer wins over ours (glare): our pending changes are redone later.
        let answer =
            self.accept_offer(id, offer, sources).map_err(|e| negotiation_error(req, endpoint, e))?;
        let reply = Message::Answer {
            id: req,
            conference: conference.to_string(),
            endpoint: endpoint.to_string(),
            sdp: answer.to_sdp_string(),
        };
        // The answer must reach signaling before any offer of ours that this triggers.
        self.control_out.push_back(reply);
        self.mark_dirty(id);
        self.flush(now);
        self.offer_if_needed(id);
        Ok(())
    }

    fn on_answer(&mut self, req: u64, conference: &str, endpoint: &str, sdp: &str, now: Instant) -> Message {
        let id = match self.lookup(req, conference, endpoint) {
            Ok(id) => id,
            Err(e) => return e,
        };
        let answer = match SdpAnswer::from_sdp_string(sdp) {
            Ok(a) => a,
            Err(e) => return Message::error(Some(req), ErrorCode::Sdp, e.to_string()),
        };
        match self.accept_answer(id, req, answer, now) {
            Ok(()) => Message::Ok { id: req },
            Err(e) => negotiation_error(req, endpoint, e),
        }
    }
}

fn negotiation_error(req: u64, endpoint: &str, e: NegotiationError) -> Message {
    match e {
        NegotiationError::UnknownEndpoint => Message::error(Some(req), ErrorCode::UnknownEndpoint, endpoint),
        NegotiationError::Sdp(m) => Message::error(Some(req), ErrorCode::Sdp, m),
        NegotiationError::NotPending => {
            Message::error(Some(req), ErrorCode::Conflict, "no such pending offer")
        }
    }
}

/// `offer` from the bridge to an endpoint (relayed by signaling).
pub(super) fn offer(o: BridgeOffer) -> Message {
    Message::Offer {
        id: o.id,
        conference: o.conference,
        endpoint: o.endpoint,
        sdp: o.sdp.to_sdp_string(),
        sources: o.sources,
    }
}

pub(super) fn endpoint_state(ep: &Endpoint, state: EndpointState) -> Message {
    Message::EndpointState { conference: ep.conference.clone(), endpoint: ep.name.clone(), state }
}

pub(super) fn dominant_speaker(conference: String, endpoint: String) -> Message {
    Message::DominantSpeaker { conference, endpoint }
}

pub(super) fn draining(draining: bool, migrate_after_seconds: Option<u64>) -> Message {
    Message::Draining { draining, migrate_after_seconds }
}

/// ICE ufrag/password characters (RFC 5245 ice-char subset).
fn random_token(n: usize) -> String {
    const CH: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..n).map(|_| CH[fastrand::usize(..CH.len())] as char).collect()
}
