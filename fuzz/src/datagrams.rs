//! Target `bridge_datagrams`: arbitrary datagrams on the bridge's shared media port. Each is
//! classified (`demux::classify`, RFC 7983), STUN is routed by the ufrag in its USERNAME
//! (`demux::stun_local_ufrag`), DTLS/RTP by the source address learnt from ICE, and what
//! routes is handed to the endpoint's str0m instance (`Sfu::handle_packet`).
//!
//! Each run sets up one conference with two endpoints, `a` and `b`, that have sent their offers
//! ([`setup`]), so their ICE credentials are known: the ones a client with [`CLIENT_UFRAG`] /
//! [`CLIENT_PWD`] uses. fastrand is seeded, so the bridge's credentials are the same in every
//! run (and in the seeds, recorded from a real str0m client by [`crate::seeds`]).
//!
//! Input: packets, each `[flags][len: u16 BE][len bytes]` (the last may be short). Flags:
//! bits 0-1 the source address ([`SOURCES`]); bit 2 ICE-TCP instead of UDP; bit 3 sign it: the
//! bytes become a STUN message whose MESSAGE-INTEGRITY and FINGERPRINT are computed with the
//! password of endpoint `a` (bit 4: `b`), after a USERNAME `<bridge ufrag>:<client ufrag>` if
//! bit 6; bit 5 20 ms pass first (str0m timers, housekeeping).
//!
//! Checked: classification agrees with RFC 7983's first-byte ranges; a USERNAME ufrag is
//! non-empty and holds no `:`; every packet is counted exactly once (received, or dropped
//! with one reason); the bridge sends only from its own address and only to addresses that
//! sent it something (no reflection to a third party).
use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{FromBridge, ToBridge};
use convene_media::sfu::demux::{self, Kind};
use convene_media::sfu::{DropReason, Sfu, SfuCounters};
use hmac::{Hmac, Mac};
use str0m::net::Protocol;

use crate::bridge_control::{BRIDGE_ADDR, sfu_config};

pub const SOURCES: [&str; 4] = ["10.0.0.2:5000", "10.0.0.3:6000", "[fd00::2]:5000", "10.0.0.2:5001"];
pub const CLIENT_UFRAG: &str = "fuzzclientufrag0";
pub const CLIENT_PWD: &str = "fuzzclientpassword000000";
pub const CONFERENCE: &str = "c";
const MAX_PACKETS: usize = 128;
const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];

/// What a run starts from: the core, the time, and the bridge's ICE credentials of `a`, `b`.
pub struct Setup {
    pub sfu: Sfu,
    pub now: Instant,
    pub creds: [(String, String); 2],
}

/// The client offers of `a` (audio and video) and `b` (a data channel only), made once per
/// process with [`CLIENT_UFRAG`]/[`CLIENT_PWD`] (their DTLS fingerprints differ per process,
/// which matters only once DTLS completes, and a fuzzer cannot get that far).
pub fn offers() -> &'static [String; 2] {
    static OFFERS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    OFFERS.get_or_init(|| {
        let now = Instant::now();
        [crate::seeds::client(true, now).1, crate::seeds::client(false, now).1]
    })
}

/// The control messages of [`setup`]: `a` and `b` allocated in [`CONFERENCE`], then their
/// offers.
pub fn setup_messages(offers: &[String; 2]) -> Vec<ToBridge> {
    let mut v = Vec::new();
    for (i, e) in ["a", "b"].into_iter().enumerate() {
        v.push(ToBridge::AllocateEndpoint {
            id: i as u64 + 1,
            conference: CONFERENCE.into(),
            endpoint: e.into(),
        });
    }
    for (i, e) in ["a", "b"].into_iter().enumerate() {
        let (conference, endpoint, sdp) = (CONFERENCE.into(), e.into(), offers[i].clone());
        v.push(ToBridge::Offer { id: i as u64 + 3, conference, endpoint, sdp, sources: vec![] });
    }
    v
}

/// The same steps in every run and in the seed recorder: seeded fastrand, a fresh core, then
/// [`setup_messages`]. Returns what the core said.
pub fn setup(offers: &[String; 2], now: Instant) -> (Setup, Vec<FromBridge>) {
    fastrand::seed(7);
    let mut sfu = Sfu::new(sfu_config(), now);
    let mut out = Vec::new();
    for m in setup_messages(offers) {
        sfu.handle_control(m, now);
    }
    let mut creds: [(String, String); 2] = Default::default();
    while let Some(m) = sfu.poll_control() {
        if let FromBridge::Answer { endpoint, sdp, .. } = &m {
            let i = usize::from(endpoint == "b");
            creds[i] = (attr(sdp, "a=ice-ufrag:"), attr(sdp, "a=ice-pwd:"));
        }
        out.push(m);
    }
    assert!(creds.iter().all(|(u, p)| !u.is_empty() && !p.is_empty()), "both endpoints answered");
    (Setup { sfu, now, creds }, out)
}

fn attr(sdp: &str, prefix: &str) -> String {
    sdp.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_default().trim().to_string()
}

/// RFC 5389 CRC-32 (FINGERPRINT), bitwise.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// `body` turned into a STUN message signed with `pwd` (short-term credentials), optionally
/// with a USERNAME first: header fixed up, the attributes kept (4-byte aligned), then
/// MESSAGE-INTEGRITY and FINGERPRINT.
pub fn sign_stun(body: &[u8], username: Option<&str>, pwd: &str) -> Vec<u8> {
    let mut m = body.to_vec();
    m.resize(m.len().max(20), 0);
    m[0] &= 0x3f;
    m[4..8].copy_from_slice(&MAGIC);
    let attrs = (m.len() - 20) / 4 * 4;
    m.truncate(20 + attrs);
    if let Some(u) = username {
        m.extend_from_slice(&0x0006u16.to_be_bytes());
        m.extend_from_slice(&(u.len() as u16).to_be_bytes());
        m.extend_from_slice(u.as_bytes());
        m.resize(m.len().div_ceil(4) * 4, 0);
    }
    let set_len = |m: &mut Vec<u8>, extra: usize| {
        let len = (m.len() - 20 + extra) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
    };
    set_len(&mut m, 24);
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(pwd.as_bytes()).expect("any key length");
    mac.update(&m);
    let tag = mac.finalize().into_bytes();
    m.extend_from_slice(&[0x00, 0x08, 0x00, 0x14]);
    m.extend_from_slice(&tag);
    set_len(&mut m, 8);
    let fp = crc32(&m) ^ 0x5354_554e;
    m.extend_from_slice(&[0x80, 0x28, 0x00, 0x04]);
    m.extend_from_slice(&fp.to_be_bytes());
    m
}

fn accounted(c: &SfuCounters) -> u64 {
    let ingress = [
        DropReason::Unparseable,
        DropReason::UnknownUfrag,
        DropReason::MalformedStun,
        DropReason::UnknownSource,
        DropReason::Flood,
        DropReason::Rejected,
    ];
    c.packets_in + ingress.iter().map(|r| c.dropped(*r)).sum::<u64>()
}

/// RFC 7983 §7, independently of `demux::classify`.
fn expected_kind(buf: &[u8]) -> Kind {
    match (buf.first(), buf.len()) {
        (Some(b), n) if *b <= 3 && n >= 20 => Kind::Stun,
        (Some(b), n) if (20..=63).contains(b) && n >= 13 => Kind::Dtls,
        (Some(b), n) if (128..=191).contains(b) && n >= 8 => Kind::Rtp,
        _ => Kind::Unknown,
    }
}

pub fn run(data: &[u8]) {
    let (mut s, _) = setup(offers(), Instant::now());
    let bridge: SocketAddr = BRIDGE_ADDR.parse().expect("bridge address");
    let sources: Vec<SocketAddr> = SOURCES.iter().map(|a| a.parse().expect("source address")).collect();
    let mut heard: HashSet<SocketAddr> = HashSet::new();
    // Offers and answers are done: nothing may have been sent yet.
    drain(&mut s.sfu, &heard, bridge);
    let mut rest = data;
    for _ in 0..MAX_PACKETS {
        let [flags, hi, lo, tail @ ..] = rest else { break };
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let source = sources[usize::from(flags & 3)];
        let proto = if flags & 4 != 0 { Protocol::Tcp } else { Protocol::Udp };
        if flags & 32 != 0 {
            s.now += Duration::from_millis(20);
            s.sfu.handle_timeout(s.now);
        }
        let signed;
        let buf = if flags & 8 != 0 {
            let (ufrag, pwd) = &s.creds[usize::from(flags & 16 != 0)];
            let username = format!("{ufrag}:{CLIENT_UFRAG}");
            signed = sign_stun(payload, (flags & 64 != 0).then_some(username.as_str()), pwd);
            &signed[..]
        } else {
            payload
        };
        let kind = demux::classify(buf);
        assert_eq!(kind, expected_kind(buf), "classification of {buf:02x?}");
        if let Some(u) = demux::stun_local_ufrag(buf) {
            assert!(!u.is_empty() && !u.contains(':'), "ufrag {u:?}");
        }
        let before = accounted(s.sfu.counters());
        heard.insert(source);
        s.sfu.handle_packet(s.now, proto, source, bridge, buf);
        let after = accounted(s.sfu.counters());
        assert_eq!(after, before + 1, "a packet is counted once: received or dropped with one reason");
        drain(&mut s.sfu, &heard, bridge);
    }
    s.now += Duration::from_millis(300);
    s.sfu.handle_timeout(s.now);
    drain(&mut s.sfu, &heard, bridge);
}

fn drain(sfu: &mut Sfu, heard: &HashSet<SocketAddr>, bridge: SocketAddr) {
    while let Some(t) = sfu.poll_transmit() {
        assert_eq!(t.source, bridge, "sent from an address not the bridge's");
        assert!(heard.contains(&t.destination), "sent to {} which never sent anything", t.destination);
    }
    while sfu.poll_control().is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn signed_stun_is_classified_and_routed_by_ufrag() {
        let m = sign_stun(
            &[0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
            Some("abc:def"),
            "pw",
        );
        assert_eq!(demux::classify(&m), Kind::Stun);
        assert_eq!(demux::stun_local_ufrag(&m).as_deref(), Some("abc"));
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len() - 20);
    }
}
