//! Expiry: removing an endpoint (asked by signaling, or timed out) and telling everyone
//! concerned; and finding the endpoints that timed out.
use std::time::Instant;

use tracing::info;

use super::control;
use super::endpoint::OutState;
use super::{EpId, Sfu};
use crate::control::EndpointState;

impl Sfu {
    /// Expire endpoints that stayed disconnected (or died) past the grace period.
    pub(super) fn expire_stale(&mut self, now: Instant) {
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
    }

    /// Remove an endpoint; the others stop receiving its sources (by renegotiation) and
    /// signaling is told it expired.
    pub(super) fn remove_endpoint(&mut self, id: EpId) {
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
            self.offer_if_needed(o);
        }
        self.control_out.push_back(control::endpoint_state(&ep, EndpointState::Expired));
        info!(conference = %ep.conference, endpoint = %ep.name, "endpoint expired");
        self.update_census();
    }
}
