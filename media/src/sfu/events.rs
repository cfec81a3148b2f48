//! What str0m tells about an endpoint: connection state, new tracks, media, keyframe
//! requests, bandwidth estimates and stats.
use std::time::Instant;

use str0m::bwe::BweKind;
use str0m::media::Direction;
use str0m::{Event, IceConnectionState};
use tracing::info;

use super::control;
use super::{EpId, Sfu};
use crate::control::EndpointState;

impl Sfu {
    pub(super) fn on_event(&mut self, id: EpId, event: Event, now: Instant) {
        match event {
            Event::RtpPacket(pkt) => self.on_rtp(id, pkt, now),
            Event::Connected => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    ep.connected = true;
                    ep.disconnected_since = None;
                    info!(conference = %ep.conference, endpoint = %ep.name, "endpoint connected");
                    self.control_out.push_back(control::endpoint_state(ep, EndpointState::Connected));
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
                    self.control_out.push_back(control::endpoint_state(ep, state));
                }
            }
            Event::MediaAdded(m) => {
                // A hidden endpoint never publishes: without a source track its media is
                // dropped on arrival and nobody can be given it.
                let hidden = self.endpoints.get(&id).is_some_and(|e| e.hidden);
                if !hidden && matches!(m.direction, Direction::RecvOnly | Direction::SendRecv) {
                    self.add_track_in(id, m.mid, m.kind);
                }
            }
            Event::KeyframeRequest(req) => {
                // A receiver asks for a keyframe: route it to the source's sender.
                let Some(ep) = self.endpoints.get(&id) else {
                    return;
                };
                let Some(feed) =
                    ep.slots.iter().find(|s| s.mid() == Some(req.mid)).and_then(|s| s.current.or(s.target))
                else {
                    return;
                };
                self.request_keyframe(feed.src, feed.mid, feed.rid, now);
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                if let Some(ep) = self.endpoints.get_mut(&id) {
                    tracing::debug!(endpoint = %ep.name, estimate = estimate.as_u64(), "egress estimate");
                    ep.estimate_bps = Some(estimate.as_u64());
                }
            }
            Event::PeerStats(s) => {
                if let Some(rtt) = s.rtt {
                    self.record_rtt(rtt);
                }
                let losses: Vec<f32> =
                    [s.ingress_loss_fraction, s.egress_loss_fraction].into_iter().flatten().collect();
                if !losses.is_empty() {
                    let mean = losses.iter().sum::<f32>() / losses.len() as f32;
                    self.counters.loss_ratio = f64::from(mean);
                }
            }
            Event::MediaEgressStats(s) => {
                let key = (id, s.mid, s.rid, true);
                let last = self.nack_totals.insert(key, s.nacks).unwrap_or(0);
                self.counters.nacks_received += s.nacks.saturating_sub(last);
            }
            Event::MediaIngressStats(s) => {
                let key = (id, s.mid, s.rid, false);
                let last = self.nack_totals.insert(key, s.nacks).unwrap_or(0);
                self.counters.nacks_sent += s.nacks.saturating_sub(last);
            }
            _ => {}
        }
    }
}
