//! One peer connection to a bridge, as the web app builds it: a str0m client (controlling,
//! not ICE-lite) with one UDP host candidate, offering audio, camera (simulcast q/h/f) and a
//! screen m-line, all sendonly. Dropped and rebuilt on migration.
use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind, Mid, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;

use super::publish::{PublishConfig, Publisher, RIDS};
use convene_proto::media::{SourceInfo, SourceKind};

/// Longest sleep between drives (str0m usually asks for much less).
const MAX_SLEEP: Duration = Duration::from_millis(500);
/// Shortest: a timeout already due is handled on the next millisecond tick, never spun on.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// What a drive produced that the participant accounts for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PeerEvent {
    Connected,
    Disconnected,
    /// A depacketized frame on a slot (`source`: the index [`Peer::map_source`] gave it).
    Media {
        source: Option<usize>,
        video: bool,
        bytes: usize,
    },
}

pub struct Peer {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    publisher: Publisher,
    pending: Option<SdpPendingOffer>,
    sources: HashMap<Mid, usize>,
    connected: bool,
    /// str0m's own deadline (its last `Output::Timeout`).
    rtc_deadline: Instant,
    next_wake: Instant,
    buf: Vec<u8>,
}

impl Peer {
    /// A new peer bound to `bind:0`; returns it with its offer and declared sources.
    pub fn new(
        bind: IpAddr,
        publish: &PublishConfig,
        now: Instant,
    ) -> std::io::Result<(Peer, String, Vec<SourceInfo>)> {
        crate::install_crypto();
        let std_socket = std::net::UdpSocket::bind(SocketAddr::new(bind, 0))?;
        std_socket.set_nonblocking(true)?;
        let socket = UdpSocket::from_std(std_socket)?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder().build(now);
        let cand = Candidate::host(local, "udp").map_err(|e| std::io::Error::other(e.to_string()))?;
        rtc.add_local_candidate(cand);
        let mut api = rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = publish.simulcast.then(|| {
            let mut s = Simulcast::new();
            for r in RIDS {
                s.add_send_layer(SimulcastLayer::new(r));
            }
            s
        });
        let camera = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        // Like the web app: a screen m-line up front, so sharing never renegotiates.
        let screen = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
        let Some((offer, pending)) = api.apply() else {
            return Err(std::io::Error::other("str0m produced no offer"));
        };
        let sources =
            [(audio, SourceKind::Audio), (camera, SourceKind::Camera), (screen, SourceKind::Screen)]
                .into_iter()
                .map(|(mid, kind)| SourceInfo { mid: mid.to_string(), kind, endpoint: None, name: None })
                .collect();
        let peer = Peer {
            rtc,
            socket,
            local,
            publisher: Publisher::new(publish.clone(), Some(audio), Some(camera), now),
            pending: Some(pending),
            sources: HashMap::new(),
            connected: false,
            rtc_deadline: now,
            next_wake: now,
            buf: vec![0u8; 2048],
        };
        Ok((peer, offer.to_sdp_string(), sources))
    }

    pub fn has_pending_offer(&self) -> bool {
        self.pending.is_some()
    }

    /// The bridge's answer to our offer.
    pub fn accept_answer(&mut self, sdp: &str) -> Result<(), String> {
        let pending = self.pending.take().ok_or("answer without a pending offer")?;
        let answer = SdpAnswer::from_sdp_string(sdp).map_err(|e| format!("answer does not parse: {e}"))?;
        self.rtc.sdp_api().accept_answer(pending, answer).map_err(|e| format!("answer refused: {e}"))?;
        self.rtc_deadline = Instant::now();
        Ok(())
    }

    /// A bridge offer (our receive slots, ICE restart); returns our answer.
    pub fn accept_offer(&mut self, sdp: &str) -> Result<String, String> {
        let offer = SdpOffer::from_sdp_string(sdp).map_err(|e| format!("offer does not parse: {e}"))?;
        let answer = self.rtc.sdp_api().accept_offer(offer).map_err(|e| format!("offer refused: {e}"))?;
        self.rtc_deadline = Instant::now();
        Ok(answer.to_sdp_string())
    }

    /// Account frames on slot `mid` to source `index` (`None`: the slot carries nothing).
    pub fn map_source(&mut self, mid: &str, index: Option<usize>) {
        match index {
            Some(i) => self.sources.insert(Mid::from(mid), i),
            None => self.sources.remove(&Mid::from(mid)),
        };
    }

    pub fn next_wake(&self) -> Instant {
        self.next_wake
    }

    /// Resolves when a datagram may be waiting.
    pub async fn readable(&self) {
        if self.socket.readable().await.is_err() {
            // Not expected on UDP; do not spin on it.
            tokio::time::sleep(MIN_SLEEP).await;
        }
    }

    /// Feed received datagrams and the time, write due media, send what str0m produced;
    /// events go to `on`. Afterwards `next_wake` is when to call again at the latest.
    pub fn drive(&mut self, now: Instant, on: &mut impl FnMut(PeerEvent)) -> Result<(), RtcError> {
        // Receives advance str0m's clock themselves; a timeout input only when one is due.
        if now >= self.rtc_deadline {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        if self.connected {
            self.publisher.write_due(&mut self.rtc, now);
        }
        let mut wake = self.drain(on)?;
        loop {
            match self.socket.try_recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    // Junk, or a packet str0m refuses, is dropped like a browser would; a
                    // connection that really broke shows up as a media gap.
                    if let Ok(r) = Receive::new(Protocol::Udp, src, self.local, &self.buf[..n])
                        && self.rtc.handle_input(Input::Receive(now, r)).is_ok()
                    {
                        wake = self.drain(on)?;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                // A socket error (ICMP after a bridge died) is reported once; readiness stays
                // set, so the next wake-up reads on.
                Err(_) => break,
            }
        }
        self.rtc_deadline = wake;
        if let Some(due) = self.publisher.next_due().filter(|_| self.connected) {
            wake = wake.min(due);
        }
        self.next_wake = wake.clamp(now + MIN_SLEEP, now + MAX_SLEEP);
        Ok(())
    }

    /// Poll str0m until it has nothing more; returns its timeout.
    fn drain(&mut self, on: &mut impl FnMut(PeerEvent)) -> Result<Instant, RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => return Ok(t),
                Output::Transmit(t) => {
                    // UDP: a full socket buffer loses the packet, as the network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Output::Event(e) => self.on_event(e, on),
            }
        }
    }

    fn on_event(&mut self, e: Event, on: &mut impl FnMut(PeerEvent)) {
        match e {
            Event::Connected => {
                self.connected = true;
                on(PeerEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.connected = false;
                on(PeerEvent::Disconnected);
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if !self.connected && self.rtc.is_connected() => {
                self.connected = true;
                on(PeerEvent::Connected);
            }
            Event::KeyframeRequest(req) => self.publisher.request_keyframe(req.rid.as_ref()),
            Event::MediaData(d) => on(PeerEvent::Media {
                source: self.sources.get(&d.mid).copied(),
                video: d.params.spec().codec.is_video(),
                bytes: d.data.len(),
            }),
            _ => {}
        }
    }
}
