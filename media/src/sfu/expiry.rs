//! Expiry: removing an endpoint (asked by signaling, or timed out) and telling everyone
//! concerned; and finding the endpoints that timed out.
use std::time::Instant;

use tracing::info;

use super::control;
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
            self.remove_endpoint(id, now);
        }
    }

    /// Remove an endpoint; the slots that carried its sources are freed and refilled (no
    /// renegotiation) and signaling is told it expired.
    pub(super) fn remove_endpoint(&mut self, id: EpId, now: Instant) {
        let Some(mut ep) = self.endpoints.remove(&id) else {
            return;
        };
        ep.rtc.disconnect();
        self.by_ufrag.remove(&ep.ufrag);
        for a in &ep.addrs {
            self.by_addr.remove(a);
            self.steer_change(super::SteerChange::Forgotten(*a));
        }
        self.by_name.remove(&(ep.conference.clone(), ep.name.clone()));
        self.nack_totals.retain(|k, _| k.0 != id);
        self.dirty.retain(|d| *d != id);
        // Its own slots stop listening.
        for (i, slot) in ep.slots.iter().enumerate() {
            for t in slot.tracks() {
                if let Some(v) = self.routes.get_mut(&t) {
                    v.retain(|x| *x != (id, i));
                    if v.is_empty() {
                        self.routes.remove(&t);
                    }
                }
            }
        }
        // The slots carrying its sources are freed (the clients are told), then filled again.
        let mut affected: Vec<EpId> = Vec::new();
        for t in &ep.tracks_in {
            for (rx, i) in self.routes.remove(&(id, t.mid)).unwrap_or_default() {
                let Some(slot) = self.endpoints.get_mut(&rx).and_then(|r| r.slots.get_mut(i)) else {
                    continue;
                };
                if slot.current.is_some_and(|f| f.src == id) {
                    slot.current = None;
                }
                if slot.target.is_some_and(|f| f.src == id) {
                    slot.target = None;
                }
                self.slot_changed(rx);
                if !affected.contains(&rx) {
                    affected.push(rx);
                }
            }
        }
        let mut was_audible = false;
        if let Some(c) = self.conferences.get_mut(&ep.conference) {
            was_audible = c.remove(id, &ep.name);
            if c.is_empty() {
                self.conferences.remove(&ep.conference);
                self.steer_change(super::SteerChange::ConferenceEnded(ep.conference.clone()));
                info!(conference = %ep.conference, "conference ended");
            }
        }
        for rx in affected {
            self.allocate(rx, now);
        }
        if was_audible {
            self.allocate_audio_all(&ep.conference, now);
        }
        self.control_out.push_back(control::endpoint_state(&ep, EndpointState::Expired));
        info!(conference = %ep.conference, endpoint = %ep.name, "endpoint expired");
        self.update_census();
    }
}
