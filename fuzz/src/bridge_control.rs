//! Target `bridge_control`: control frames from signaling, decoded as the bridge's control
//! client decodes them (`control::parse::<ToBridge>`) and applied to the sans-IO core
//! (`Sfu::handle_control`) as the media thread applies them, with time driven through
//! `Sfu::handle_timeout` (endpoint expiry, housekeeping).
//!
//! Input, one line per step (`\n`): `><json>` a control text frame; `t<ms>` time passes (at
//! most 120 s a step; `t` alone: 100 ms); `d` the bridge starts draining, `u` it stops.
//!
//! Checked: every request gets exactly one reply, carrying its id, in the same step (the
//! protocol's rule); every message to signaling re-encodes to itself; the endpoints the bridge
//! reports (allocated, then expired) are exactly those its census counts, and no endpoint is
//! allocated twice; control messages alone never make the bridge send a datagram (ICE-lite: it
//! only answers, so signaling cannot aim it at an address).
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{self, Drain, EndpointState, FromBridge, ToBridge};
use convene_media::sfu::{Sfu, SfuConfig};
use str0m::Candidate;

pub const BRIDGE_ADDR: &str = "10.0.0.1:10000";
/// Small, so that the capacity refusal is reachable.
pub const MAX_ENDPOINTS: usize = 8;
const MAX_STEPS: usize = 256;
const MAX_STEP_MS: u64 = 120_000;

pub fn sfu_config() -> SfuConfig {
    let addr: SocketAddr = BRIDGE_ADDR.parse().expect("bridge address");
    SfuConfig {
        candidates: vec![Candidate::host(addr, "udp").expect("host candidate")],
        max_endpoints: MAX_ENDPOINTS,
        ..SfuConfig::default()
    }
}

/// The endpoints the bridge said it has (`allocated`, until `expired`).
#[derive(Default)]
pub struct Model {
    live: BTreeSet<(String, String)>,
}

impl Model {
    /// Follow one message to signaling; panics on what contradicts the protocol.
    pub fn follow(&mut self, m: &FromBridge) {
        let again = control::parse::<FromBridge>(&control::to_json(m));
        assert_eq!(again.as_ref(), Ok(m), "a message to signaling re-encodes to itself");
        match m {
            FromBridge::Allocated { conference, endpoint, .. } => {
                assert!(
                    self.live.insert((conference.clone(), endpoint.clone())),
                    "{conference}/{endpoint} allocated twice"
                );
            }
            FromBridge::EndpointState { conference, endpoint, state: EndpointState::Expired } => {
                assert!(
                    self.live.remove(&(conference.clone(), endpoint.clone())),
                    "{conference}/{endpoint} expired but was never allocated"
                );
            }
            _ => {}
        }
    }

    pub fn check(&self, sfu: &Sfu) {
        let census = sfu.census();
        assert_eq!(census.endpoints, self.live.len() as u64, "census endpoints vs allocated - expired");
        let conferences: BTreeSet<&String> = self.live.iter().map(|(c, _)| c).collect();
        assert_eq!(census.conferences, conferences.len() as u64, "census conferences");
        assert!(self.live.len() <= MAX_ENDPOINTS, "over capacity");
    }
}

pub fn run(data: &[u8]) {
    // The core's ICE credentials come from fastrand: the same input, the same run.
    fastrand::seed(7);
    let mut now = Instant::now();
    let mut sfu = Sfu::new(sfu_config(), now);
    let mut model = Model::default();
    for line in crate::lines(data).take(MAX_STEPS) {
        let mut request = None;
        match line {
            [b'>', json @ ..] => {
                let text = String::from_utf8_lossy(json);
                // A frame that does not decode is answered by the control client, not the core.
                let Ok(msg) = control::parse::<ToBridge>(&text) else { continue };
                request = msg.request_id();
                sfu.handle_control(msg, now);
            }
            [b't', ms @ ..] => {
                let ms =
                    std::str::from_utf8(ms).ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(100);
                now += Duration::from_millis(ms.min(MAX_STEP_MS));
                sfu.handle_timeout(now);
            }
            [b'd', ..] => sfu.set_draining(Some(Drain { elapsed_ms: 0, deadline_ms: 60_000 })),
            [b'u', ..] => sfu.set_draining(None),
            _ => continue,
        }
        if sfu.next_timeout() <= now {
            sfu.handle_timeout(now);
        }
        let mut replies = 0;
        while let Some(m) = sfu.poll_control() {
            if request.is_some() && m.reply_to() == request {
                replies += 1;
            }
            model.follow(&m);
        }
        if let Some(id) = request {
            assert_eq!(replies, 1, "request {id}: {replies} replies");
        }
        if let Some(t) = sfu.poll_transmit() {
            panic!("control alone made the bridge send a datagram to {}", t.destination);
        }
        model.check(&sfu);
    }
}
