//! Datagrams in: the per-source flood limit, one classification of each datagram (RFC 7983),
//! and the hand-off to the endpoint that owns it (STUN by the ufrag in its USERNAME, the rest
//! by the source address that endpoint did ICE from).
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::Input;
use str0m::net::{Protocol, Receive, Transmit};
use tracing::{debug, warn};

use super::counters::DropReason;
use super::demux::{self, Kind};
use super::ratelimit::TokenBucket;
use super::{EpId, Sfu};

/// Most flood buckets kept: a spoofed-source storm must not grow the table without bound.
const MAX_FLOOD_TABLE: usize = 100_000;
/// A source quiet this long loses its bucket.
const FLOOD_IDLE: Duration = Duration::from_secs(10);

impl Sfu {
    pub(super) fn receive(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        if self.floods.len() > MAX_FLOOD_TABLE {
            self.floods.clear();
        }
        let rate = self.cfg.per_source_pps;
        let bucket = self.floods.entry(source).or_insert_with(|| TokenBucket::new(rate, rate / 2.0, now));
        if !bucket.allow(now) {
            return self.log_drop(now, DropReason::Flood, source);
        }
        let kind = demux::classify(buf);
        let id: EpId = match kind {
            Kind::Unknown => return self.log_drop(now, DropReason::Unparseable, source),
            Kind::Stun => match demux::stun_local_ufrag(buf) {
                None => return self.answer_probe(now, proto, source, destination, buf),
                Some(u) => match self.by_ufrag.get(&u) {
                    Some(id) => *id,
                    None => return self.log_drop(now, DropReason::UnknownUfrag, source),
                },
            },
            Kind::Dtls | Kind::Rtp => match self.by_addr.get(&source) {
                Some(id) => *id,
                None => return self.log_drop(now, DropReason::UnknownSource, source),
            },
        };
        let Ok(recv) = Receive::new(proto, source, destination, buf) else {
            return self.log_drop(now, DropReason::Unparseable, source);
        };
        let Some(ep) = self.endpoints.get_mut(&id) else {
            return;
        };
        if let Err(e) = ep.rtc.handle_input(Input::Receive(now, recv)) {
            debug!(endpoint = %ep.name, "input refused: {e}");
            return self.log_drop(now, DropReason::Rejected, source);
        }
        // Learn the address from STUN: DTLS/RTP from it are routed to this endpoint by address.
        if kind == Kind::Stun && !ep.addrs.contains(&source) {
            ep.addrs.push(source);
            self.by_addr.insert(source, id);
            self.steer_change(super::SteerChange::Learned(source));
        }
        self.counters.packets_in += 1;
        self.counters.bytes_in += buf.len() as u64;
        // The source's own output now (str0m holds one received RTP packet until polled); the
        // receivers it wrote to are polled by the caller's `flush`, once for a whole batch.
        self.poll_endpoint(id, now);
    }

    /// A datagram without an ICE USERNAME: a plain Binding request (a reachability probe,
    /// see `probe`) is answered; anything else is dropped.
    fn answer_probe(
        &mut self,
        now: Instant,
        proto: Protocol,
        source: SocketAddr,
        destination: SocketAddr,
        buf: &[u8],
    ) {
        match super::probe::binding_answer(buf, source) {
            Some(answer) if proto == Protocol::Udp => {
                // Received and handled: every packet is counted once, in or dropped.
                self.counters.packets_in += 1;
                self.counters.bytes_in += buf.len() as u64;
                self.counters.packets_out += 1;
                self.counters.bytes_out += answer.len() as u64;
                let contents = answer.into();
                self.transmits.push_back(Transmit {
                    proto,
                    source: destination,
                    destination: source,
                    contents,
                });
            }
            _ => self.log_drop(now, DropReason::MalformedStun, source),
        }
    }

    fn log_drop(&mut self, now: Instant, reason: DropReason, source: SocketAddr) {
        self.counters.count_drop(reason);
        if self.log_limit.allow(now) {
            warn!(reason = reason.label(), %source, "dropped input (rate-limited log)");
        }
    }

    /// Forget the buckets of sources gone quiet (housekeeping).
    pub(super) fn prune_floods(&mut self, now: Instant) {
        self.floods.retain(|_, b| now.saturating_duration_since(b.last_used()) < FLOOD_IDLE);
        if self.floods.len() > MAX_FLOOD_TABLE / 2 {
            self.floods.clear();
        }
    }
}
