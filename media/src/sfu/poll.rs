//! Driving str0m: every endpoint that got input is polled until it has nothing more to say;
//! its datagrams are queued for the I/O layer and its events handled (`events`).
use std::cmp::Reverse;
use std::time::{Duration, Instant};

use str0m::media::MediaKind;
use str0m::{Input, Output};
use tracing::warn;

use super::control;
use super::{EpId, Sfu};
use crate::control::{EndpointState, SlotInfo, SlotMedia};

/// A deadline this close is handled while polling, not left to the next timer round: str0m's
/// pacer asks for a timeout (its clock one microsecond on) after every packet it releases.
const DUE_SLACK: Duration = Duration::from_micros(100);
/// Timeouts handled in one poll of an endpoint (packets its pacer releases at once); the rest
/// wait for the next timer round, so that one busy receiver cannot hold the others up.
const ROUNDS_PER_POLL: u32 = 64;

impl Sfu {
    pub(super) fn mark_dirty(&mut self, id: EpId) {
        if let Some(ep) = self.endpoints.get_mut(&id)
            && !ep.dirty
        {
            ep.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Poll every endpoint that got input until it has nothing more to say, offering the
    /// slots that opened meanwhile; then tell the receivers whose slots changed source.
    pub(super) fn flush(&mut self, now: Instant) {
        loop {
            while let Some(id) = self.dirty.pop() {
                self.poll_endpoint(id, now);
            }
            if self.grown.is_empty() {
                break;
            }
            for id in std::mem::take(&mut self.grown) {
                self.offer_if_needed(id);
            }
        }
        self.announce_slots();
    }

    /// One `slots` message per receiver whose slots changed source since it was last told:
    /// only the changed slots (open ones; the offer told the rest).
    fn announce_slots(&mut self) {
        for rx in std::mem::take(&mut self.slots_changed) {
            let Some(r) = self.endpoints.get_mut(&rx) else {
                continue;
            };
            r.slots_dirty = false;
            let mut changed = Vec::new();
            for s in &mut r.slots {
                let now_on = s.current.map(|f| f.track());
                if let Some(mid) = s.open_mid()
                    && now_on != s.announced
                {
                    s.announced = now_on;
                    let media = if s.media == MediaKind::Audio { SlotMedia::Audio } else { SlotMedia::Video };
                    changed.push((mid, media, now_on));
                }
            }
            if changed.is_empty() {
                continue;
            }
            let slots = changed
                .into_iter()
                .map(|(mid, media, on)| SlotInfo {
                    mid: mid.to_string(),
                    media,
                    source: on.and_then(|(e, m)| self.endpoints.get(&e)?.slot_source(m)),
                })
                .collect();
            if let Some(r) = self.endpoints.get(&rx) {
                self.control_out.push_back(control::slots(r, slots));
            }
        }
    }

    pub(super) fn poll_endpoint(&mut self, id: EpId, now: Instant) {
        let mut events = Vec::new();
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        ep.dirty = false;
        let mut rounds = 0;
        loop {
            if !ep.rtc.is_alive() {
                ep.timeout = now + Duration::from_secs(1);
                self.timers.push(Reverse((ep.timeout, id)));
                if ep.disconnected_since.is_none() {
                    ep.disconnected_since = Some(now);
                    self.control_out.push_back(control::endpoint_state(ep, EndpointState::Disconnected));
                }
                break;
            }
            match ep.rtc.poll_output() {
                // One packet per timer round would cap a receiver at the worker's rounds per
                // second: a loaded worker fell behind nine browsers' audio by tens of seconds.
                Ok(Output::Timeout(t)) if t <= now + DUE_SLACK && rounds < ROUNDS_PER_POLL => {
                    rounds += 1;
                    if let Err(e) = ep.rtc.handle_input(Input::Timeout(t.max(now))) {
                        warn!(endpoint = %ep.name, "timeout handling failed, disconnecting: {e}");
                        ep.rtc.disconnect();
                    }
                }
                Ok(Output::Timeout(t)) => {
                    // A deadline still ahead is queued already; a new or a past one is queued.
                    if ep.timeout != t || t <= now {
                        ep.timeout = t;
                        self.timers.push(Reverse((t, id)));
                    }
                    break;
                }
                Ok(Output::Transmit(t)) => {
                    self.counters.packets_out += 1;
                    self.counters.bytes_out += t.contents.len() as u64;
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
}
