//! Seed inputs, from what the tests use: the room tests' scenarios (`signaling/src/room_tests.rs`
//! and friends) as frame sequences, tokens made like `signaling/src/auth.rs`'s tests (with its
//! `testdata` keys), the config test's YAML, and for the bridge a real exchange between str0m
//! clients and the core, recorded as control frames and datagrams (as `media/tests/sans_io.rs`
//! runs one). `cargo run -p convene-fuzz --bin gen-corpus` writes them to `fuzz/corpus/`.
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use convene_media::control::{self, ToBridge};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, IceCreds, Input, Output, Rtc};

use crate::datagrams::{self, CLIENT_PWD, CLIENT_UFRAG, SOURCES};
use crate::jwt::sign_hs256;
use crate::rooms::{AUDIENCE, HS_SECRET, ISSUER};

/// Far in the future (2100-01-01), so that seeded tokens stay valid.
pub const EXP: u64 = 4_102_444_800;

/// The seeds of `target`: (file name, contents).
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let named =
        |v: Vec<(&str, String)>| v.into_iter().map(|(n, s)| (n.to_string(), s.into_bytes())).collect();
    match target {
        "signaling_rooms" => named(rooms()),
        "bridge_control" => named(bridge_control()),
        "bridge_datagrams" => bridge_datagrams(),
        "jwt_verify" => jwt(),
        "signaling_config" => named(config()),
        _ => Vec::new(),
    }
}

/// A client's str0m instance with the fixed ICE credentials of `datagrams`, and its offer:
/// audio and video to publish, or only a data channel.
pub fn client(publish: bool, now: Instant) -> (Rtc, String, SdpPendingOffer) {
    convene_media::install_crypto();
    let addr: SocketAddr = SOURCES[usize::from(!publish)].parse().expect("client address");
    let creds = IceCreds { ufrag: CLIENT_UFRAG.into(), pass: CLIENT_PWD.into() };
    let mut rtc = Rtc::builder().set_local_ice_credentials(creds).build(now);
    rtc.add_local_candidate(Candidate::host(addr, "udp").expect("host candidate"));
    let mut api = rtc.sdp_api();
    if publish {
        api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        api.add_media(MediaKind::Video, Direction::SendOnly, None, None, None);
    } else {
        api.add_channel("x".into());
    }
    let (offer, pending) = api.apply().expect("an offer");
    (rtc, offer.to_sdp_string(), pending)
}

/// What signaling sent the core and what the clients sent it, in order, in a real exchange:
/// `a` publishes, `b` receives (its answer to the bridge's offer included), ICE and DTLS run.
pub struct Exchange {
    pub control: Vec<ToBridge>,
    pub datagrams: Vec<(usize, Vec<u8>)>,
}

pub fn exchange() -> Exchange {
    let mut now = Instant::now();
    let (ra, offer_a, pa) = client(true, now);
    let (rb, offer_b, pb) = client(false, now);
    let offers = [offer_a, offer_b];
    let (mut s, replies) = datagrams::setup(&offers, now);
    let mut control = datagrams::setup_messages(&offers);
    let mut peers = [(ra, Some(pa)), (rb, Some(pb))];
    let addrs: Vec<SocketAddr> = SOURCES[..2].iter().map(|a| a.parse().expect("address")).collect();
    let bridge: SocketAddr = crate::bridge_control::BRIDGE_ADDR.parse().expect("bridge address");
    let mut pending_control = replies;
    let mut recorded = Vec::new();
    for _ in 0..2000 {
        for m in std::mem::take(&mut pending_control) {
            match m {
                control::FromBridge::Answer { endpoint, sdp, .. } => {
                    let p = &mut peers[usize::from(endpoint == "b")];
                    let answer = SdpAnswer::from_sdp_string(&sdp).expect("bridge answer parses");
                    if let Some(pending) = p.1.take() {
                        p.0.sdp_api().accept_answer(pending, answer).expect("client accepts the answer");
                    }
                }
                control::FromBridge::Offer { offer_id, conference, endpoint, sdp, .. } => {
                    let p = &mut peers[usize::from(endpoint == "b")];
                    let offer = SdpOffer::from_sdp_string(&sdp).expect("bridge offer parses");
                    let answer = p.0.sdp_api().accept_offer(offer).expect("client accepts the offer");
                    let msg =
                        ToBridge::Answer { offer_id, conference, endpoint, sdp: answer.to_sdp_string() };
                    control.push(msg.clone());
                    s.sfu.handle_control(msg, now);
                }
                _ => {}
            }
        }
        now += Duration::from_millis(2);
        for (i, (rtc, _)) in peers.iter_mut().enumerate() {
            let _ = rtc.handle_input(Input::Timeout(now));
            while let Ok(o) = rtc.poll_output() {
                match o {
                    Output::Timeout(_) => break,
                    Output::Transmit(t) => {
                        if recorded.len() < 48 {
                            recorded.push((i, t.contents.to_vec()));
                        }
                        s.sfu.handle_packet(now, Protocol::Udp, t.source, bridge, &t.contents);
                    }
                    Output::Event(_) => {}
                }
            }
        }
        if s.sfu.next_timeout() <= now {
            s.sfu.handle_timeout(now);
        }
        while let Some(t) = s.sfu.poll_transmit() {
            if let Some(i) = addrs.iter().position(|a| *a == t.destination)
                && let Ok(r) = Receive::new(Protocol::Udp, t.source, t.destination, &t.contents)
            {
                let _ = peers[i].0.handle_input(Input::Receive(now, r));
            }
        }
        while let Some(m) = s.sfu.poll_control() {
            pending_control.push(m);
        }
    }
    Exchange { control, datagrams: recorded }
}

fn token(claims: &serde_json::Value) -> String {
    sign_hs256(br#"{"alg":"HS256","typ":"JWT"}"#, claims.to_string().as_bytes(), HS_SECRET)
}

fn claims(room: &str, name: &str, moderator: Option<bool>) -> serde_json::Value {
    let mut user =
        serde_json::json!({"name": name, "avatar": "https://a/x.png", "email": "x@example.org", "id": "u1"});
    if let Some(m) = moderator {
        user["moderator"] = m.into();
    }
    serde_json::json!({
        "aud": AUDIENCE, "iss": ISSUER, "sub": "meet.example.org", "room": room,
        "exp": EXP, "nbf": 1_600_000_000u64, "context": {"user": user}
    })
}

fn join(c: u8, room: &str, name: &str, extra: &str) -> String {
    format!(r#"{c}>{{"type":"join","v":1,"room":"{room}","name":"{name}"{extra}}}"#)
}

fn rooms() -> Vec<(&'static str, String)> {
    let host_token = token(&claims("*", "Host", None));
    let guest_token = token(&claims("standup", "Ann", Some(false)));
    let wrong_room = token(&claims("elsewhere", "Eve", Some(true)));
    let lines = |v: &[&str]| v.join("\n") + "\n";
    vec![
        (
            "lobby",
            lines(&[
                "B",
                &join(0, "lobby", "Host", ""),
                r#"0>{"type":"set_lobby","enabled":true}"#,
                &join(1, "lobby", "Ann", ""),
                r#"1>{"type":"chat","text":"let me in"}"#,
                r#"0>{"type":"lobby_admit","id":"p1000002"}"#,
                r#"1>{"type":"lobby_admit","id":"nobody"}"#,
                r#"0>{"type":"lobby_deny","id":"nobody"}"#,
                &join(2, "lobby", "Bob", ""),
                r#"0>{"type":"lobby_deny","id":"p2000003"}"#,
                &join(3, "lobby", "Cy", ""),
                r#"0>{"type":"set_lobby","enabled":false}"#,
                &join(4, "lobby", "Di", ""),
                "0x",
            ]),
        ),
        (
            "lobby-default-host-leaves",
            lines(&[
                "L",
                &join(0, "l2", "Host", ""),
                &join(1, "l2", "Ann", ""),
                &join(2, "l2", "Bob", ""),
                r#"0>{"type":"leave"}"#,
                &join(0, "l2", "Back", ""),
            ]),
        ),
        (
            "password-moderation",
            lines(&[
                "B",
                &join(0, "team", "Host", r#","audio_muted":true"#),
                r#"0>{"type":"set_password","password":"pw"}"#,
                &join(1, "team", "Ann", ""),
                &join(1, "team", "Ann", r#","password":"bad""#),
                &join(1, "team", "Ann", r#","password":"pw""#),
                r#"1>{"type":"mute","target":"p0000001"}"#,
                r#"0>{"type":"mute","target":"p1000002","kind":"audio"}"#,
                r#"0>{"type":"mute","target":"nobody","kind":"video"}"#,
                r#"0>{"type":"mute_all","kind":"video"}"#,
                r#"0>{"type":"grant_moderator","target":"p1000002"}"#,
                r#"0>{"type":"set_recording","recording":true}"#,
                r#"1>{"type":"kick","target":"p0000001"}"#,
                &join(0, "team", "Host again", r#","password":"pw""#),
                r#"1>{"type":"set_password"}"#,
                r#"1>{"type":"end_meeting"}"#,
                r#"0>{"type":"ping"}"#,
            ]),
        ),
        (
            "chat-presence",
            lines(&[
                "",
                &join(0, "chat", "A", ""),
                &join(1, "chat", "B", r#","avatar":"https://x/a.png","video_muted":true"#),
                r#"0>{"type":"chat","text":"hello"}"#,
                r#"1>{"type":"chat","text":"psst","to":"p0000001"}"#,
                r#"1>{"type":"chat","text":"nobody","to":"zzzz"}"#,
                r#"0>{"type":"media_state","audio_muted":true,"video_muted":false,"screen":true}"#,
                r#"1>{"type":"profile","name":"Bee","avatar":"http://y/b.png"}"#,
                r#"0>{"type":"raise_hand","raised":true}"#,
                r#"1>{"type":"raise_hand","raised":true}"#,
                r#"0>{"type":"raise_hand","raised":false}"#,
                r#"0>{"type":"raise_hand","raised":true}"#,
                r#"1>{"type":"reaction","reaction":"clap"}"#,
                r#"1>{"type":"reaction","reaction":"party"}"#,
                r#"1>{"type":"reaction","reaction":"love"}"#,
                r#"1>{"type":"reaction","reaction":"laugh"}"#,
                r#"1>{"type":"reaction","reaction":"like"}"#,
                r#"1>{"type":"reaction","reaction":"surprise"}"#,
                r#"1>{"type":"leave"}"#,
                "0x",
            ]),
        ),
        (
            "media-bridge",
            lines(&[
                "B",
                &join(0, "media", "A", ""),
                &join(1, "media", "B", ""),
                r#"0>{"type":"offer","sdp":"v=0\r\n","sources":[{"mid":"0","kind":"camera"},{"mid":"1","kind":"audio"}]}"#,
                r#"0>{"type":"ice","candidate":"candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host"}"#,
                r#"0>{"type":"ice","candidate":""}"#,
                r#"0>{"type":"constraints","constraints":{"last_n":2,"default_max_height":360,"max_height":{"p1000002":180},"pinned":["p1000002"]}}"#,
                r#"b{"type":"offer","offer_id":1,"conference":"media","endpoint":"p1000002","sdp":"v=0","sources":[{"mid":"2","kind":"camera","endpoint":"p0000001","name":"p0000001-v0"}]}"#,
                r#"1>{"type":"answer","id":1,"sdp":"v=0"}"#,
                r#"b{"type":"dominant_speaker","conference":"media","endpoint":"p0000001"}"#,
                r#"b{"type":"endpoint_state","conference":"media","endpoint":"p0000001","state":"connected"}"#,
                r#"b{"type":"error","id":null,"code":"internal","message":"x"}"#,
                r#"b{"type":"load","endpoints":2,"conferences":1,"largest_conference":2,"bitrate_in_bps":1,"bitrate_out_bps":2,"packets_in_per_s":3,"packets_out_per_s":4,"stress":0.1}"#,
                r#"b{"type":"draining","drain":{"elapsed_ms":0,"deadline_ms":1000}}"#,
                "=",
                "-",
                "+",
                r#"0>{"type":"end_meeting"}"#,
            ]),
        ),
        (
            "no-bridge",
            lines(&[
                "",
                &join(0, "nb", "A", ""),
                r#"0>{"type":"offer","sdp":"v=0"}"#,
                r#"0>{"type":"answer","id":3,"sdp":"v=0"}"#,
                "+",
                &join(1, "nb", "B", ""),
                "-",
            ]),
        ),
        (
            "jwt",
            lines(&[
                "J",
                &join(0, "standup", "", &format!(r#","token":"{guest_token}""#)),
                &join(1, "standup", "Guest", ""),
                &join(2, "standup", "Host", &format!(r#","token":"{host_token}""#)),
                &join(3, "standup", "Eve", &format!(r#","token":"{wrong_room}""#)),
                &join(3, "standup", "Eve", r#","token":"not.a.token""#),
                r#"2>{"type":"set_lobby","enabled":true}"#,
                &join(4, "standup", "Late", ""),
                r#"2>{"type":"grant_moderator","target":"p1000002"}"#,
                "2x",
                r#"1>{"type":"profile","name":"Renamed"}"#,
                r#"0>{"type":"profile","name":"Renamed"}"#,
            ]),
        ),
        (
            "jwt-no-guests",
            lines(&[
                "Jg",
                &join(0, "standup", "Guest", ""),
                &join(1, "standup", "Host", &format!(r#","token":"{host_token}""#)),
                &join(0, "standup", "Guest", ""),
            ]),
        ),
        ("jwt-anonymous-creation", lines(&["Ja", &join(0, "open", "A", ""), &join(1, "open", "B", "")])),
        (
            "slow-consumer",
            lines(&[
                "qT",
                &join(0, "slow", "A", ""),
                &join(1, "slow", "B", ""),
                r#"0>{"type":"chat","text":"one"}"#,
                r#"0>{"type":"chat","text":"two"}"#,
                r#"0>{"type":"chat","text":"three"}"#,
                r#"0>{"type":"chat","text":"four"}"#,
                r#"0>{"type":"chat","text":"five five five five five five five five five five five five five five five"}"#,
                r#"0>{"type":"chat","text":"six"}"#,
            ]),
        ),
        (
            "errors",
            lines(&[
                "",
                r#"0>{"type":"chat","text":"not joined"}"#,
                "0>{nope",
                r#"0>{"type":"launch_missiles"}"#,
                "0#",
                r#"0>{"type":"join","v":2,"room":"x"}"#,
                r#"0>{"type":"join","v":1,"room":"Bad Room!"}"#,
                r#"0>{"type":"join","v":1,"room":"metrics"}"#,
                r#"0>{"type":"join","v":1,"room":"tenant/room","name":"  \u0007 spaced  "}"#,
                r#"0>{"type":"join","v":1,"room":"tenant/room"}"#,
                r#"0>{"type":"kick","target":"p0000001"}"#,
                r#"0>{"type":"lobby_admit","id":"p0000001"}"#,
                "1x",
                "9>ignored",
            ]),
        ),
    ]
}

fn bridge_control() -> Vec<(&'static str, String)> {
    let ex = exchange();
    let mut recorded: Vec<String> = ex.control.iter().map(|m| format!(">{}", control::to_json(m))).collect();
    recorded.push(String::from("t1000"));
    let more = [
        r#">{"type":"receiver_constraints","id":10,"conference":"c","endpoint":"b","constraints":{"last_n":1,"default_max_height":180,"max_height":{"a-v0":90},"pinned":["a"]}}"#,
        r#">{"type":"ice_candidate","id":11,"conference":"c","endpoint":"a","candidate":"candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host"}"#,
        r#">{"type":"ice_candidate","id":12,"conference":"c","endpoint":"a","candidate":"1 1 tcp 2130706431 10.0.0.2 9 typ host tcptype active"}"#,
        r#">{"type":"ice_candidate","id":13,"conference":"c","endpoint":"a","candidate":"garbage"}"#,
        "d",
        r#">{"type":"allocate_endpoint","id":14,"conference":"new","endpoint":"x"}"#,
        r#">{"type":"allocate_endpoint","id":15,"conference":"c","endpoint":"late"}"#,
        "u",
        r#">{"type":"expire_endpoint","id":16,"conference":"c","endpoint":"a"}"#,
        r#">{"type":"expire_endpoint","id":17,"conference":"c","endpoint":"a"}"#,
        "t70000",
        r#">{"type":"expire_conference","id":18,"conference":"c"}"#,
        r#">{"type":"expire_conference","id":19,"conference":"c"}"#,
    ];
    recorded.extend(more.iter().map(|s| s.to_string()));
    let capacity: Vec<String> = (0..10)
        .map(|i| {
            format!(r#">{{"type":"allocate_endpoint","id":{i},"conference":"c{}","endpoint":"e{i}"}}"#, i % 3)
        })
        .collect();
    let lines = |v: &[String]| v.join("\n") + "\n";
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        ("exchange", lines(&recorded)),
        ("capacity", lines(&capacity)),
        (
            "refusals",
            lines(&s(&[
                r#">{"type":"allocate_endpoint","id":1,"conference":"","endpoint":"x"}"#,
                r#">{"type":"allocate_endpoint","id":2,"conference":"c","endpoint":"x"}"#,
                r#">{"type":"allocate_endpoint","id":3,"conference":"c","endpoint":"x"}"#,
                r#">{"type":"offer","id":4,"conference":"c","endpoint":"x","sdp":"v=0"}"#,
                r#">{"type":"offer","id":5,"conference":"c","endpoint":"nobody","sdp":"v=0"}"#,
                r#">{"type":"answer","offer_id":9,"conference":"c","endpoint":"x","sdp":"v=0"}"#,
                r#">{"type":"receiver_constraints","id":6,"conference":"c","endpoint":"x","constraints":{}}"#,
                r#">{"type":"expire_conference","id":7,"conference":"nope"}"#,
                ">{nope",
                "t",
            ])),
        ),
    ]
}

/// `[flags][len: u16 BE][bytes]`, as `datagrams::run` reads packets.
fn packet(flags: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![flags];
    v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    v.extend_from_slice(bytes);
    v
}

fn bridge_datagrams() -> Vec<(String, Vec<u8>)> {
    let ex = exchange();
    let recorded: Vec<u8> = ex.datagrams.iter().flat_map(|(i, d)| packet(*i as u8, d)).collect();
    // A binding request body: header, PRIORITY, USE-CANDIDATE, ICE-CONTROLLING; signed with
    // USERNAME by the harness (flags 8 | 64; 16 for endpoint b).
    let mut binding = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    binding.extend_from_slice(b"fuzztransact");
    binding.extend_from_slice(&[0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff]);
    binding.extend_from_slice(&[0x00, 0x25, 0x00, 0x00]);
    binding.extend_from_slice(&[0x80, 0x2a, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
    let mut rtp = vec![0x80, 0x60, 0x00, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef];
    rtp.extend_from_slice(&[0u8; 20]);
    let mut dtls = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12];
    dtls.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let signed: Vec<u8> = [
        packet(8 | 64, &binding),
        packet(8 | 16 | 64 | 1, &binding),
        packet(0, &rtp),
        packet(1, &dtls),
        packet(32, &[0xbf; 40]),
        packet(8 | 64 | 2, &binding),
        packet(2, &rtp),
    ]
    .concat();
    let junk: Vec<u8> = [
        packet(0, &binding),
        packet(0, &[0x00, 0x01, 0x00, 0x08, 1, 2, 3, 4]),
        packet(0, &[0u8; 20]),
        packet(4, &rtp),
        packet(3, &dtls),
        packet(0, &[64; 30]),
        packet(0, &[]),
    ]
    .concat();
    vec![("exchange".into(), recorded), ("signed-stun-then-media".into(), signed), ("junk".into(), junk)]
}

fn jwt() -> Vec<(String, Vec<u8>)> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    const RSA_PRIV: &str = include_str!("../../signaling/src/testdata/rsa-private.pem");
    const EC_PRIV: &str = include_str!("../../signaling/src/testdata/ec-private.pem");
    let c = claims("standup", "Ada", Some(true));
    let rs =
        encode(&Header::new(Algorithm::RS256), &c, &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap())
            .expect("RS256 token");
    let es =
        encode(&Header::new(Algorithm::ES256), &c, &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap())
            .expect("ES256 token");
    let raw = |t: &str| [&[0u8][..], t.as_bytes()].concat();
    let signed = |h: &str, c: &str, room: Option<&str>| {
        let mut v = vec![1u8];
        v.extend_from_slice(h.as_bytes());
        v.push(b'\n');
        v.extend_from_slice(c.as_bytes());
        if let Some(r) = room {
            v.push(b'\n');
            v.extend_from_slice(r.as_bytes());
        }
        v
    };
    let hdr = r#"{"alg":"HS256","typ":"JWT"}"#;
    let wild = serde_json::json!({
        "aud": [AUDIENCE, "other"], "iss": ISSUER, "sub": "*", "room": "*", "exp": EXP,
        "moderator": 1, "context": {"user": {"id": 42, "name": "Bo", "moderator": "true"}}
    });
    let tenant =
        serde_json::json!({"aud": AUDIENCE, "iss": ISSUER, "sub": "acme", "room": "daily", "exp": EXP});
    let expired = serde_json::json!({"aud": AUDIENCE, "iss": ISSUER, "sub": "*", "room": "*", "exp": 1});
    vec![
        ("hs256".into(), raw(&token(&c))),
        ("rs256".into(), raw(&rs)),
        ("es256".into(), raw(&es)),
        ("alg-none".into(), raw("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIqIn0.")),
        ("garbage".into(), raw("bm90IGpzb24.e30.x")),
        ("signed-claims".into(), signed(hdr, &c.to_string(), None)),
        ("signed-wildcards".into(), signed(hdr, &wild.to_string(), Some("anything"))),
        ("signed-tenant".into(), signed(hdr, &tenant.to_string(), Some("acme/daily"))),
        ("signed-expired".into(), signed(hdr, &expired.to_string(), None)),
        ("signed-other-alg".into(), signed(r#"{"alg":"RS256"}"#, &c.to_string(), None)),
    ]
}

fn config() -> Vec<(&'static str, String)> {
    // The config test's file (signaling/src/config.rs `parses_operator_rendering`).
    let full = include_str!("../../signaling/src/testdata/config-full.yaml");
    let limits = r#"domain: x
bridgeSecretFile: /s
bridgeCapacity: 10
bridgeStaleSeconds: 3
joinTimeoutSeconds: 5
idleTimeoutSeconds: 30
maxUnauthenticatedPerAddress: 0
maxQueuedFrames: 16
maxQueuedBytes: 65536
trustedProxies: ["10.0.0.0/8", "192.168.1.1", "::1/128"]
tls:
  certFile: /tls/cert.pem
  keyFile: /tls/key.pem
"#;
    let rs = "bridgeSecretFile: /s\nauth:\n  jwt:\n    algorithm: RS256\n    issuer: i\n    audience: a\n    keyFile: /k\n";
    let es = "bridgeSecretFile: /s\nauth:\n  jwt: {algorithm: ES256, keyFile: /k}\n  allowGuests: false\n";
    vec![
        ("operator-rendering", full.to_string()),
        ("limits-tls", limits.to_string()),
        ("rs256", rs.to_string()),
        ("es256-flow", es.to_string()),
        ("null-auth", "domain: x\nauth:\n  jwt: null\n  allowGuests: true\n  allowAnonymousRoomCreation: true\nturn: null\n".into()),
        ("bad-proxy", "bridgeSecretFile: /s\ntrustedProxies: [\"not a cidr\"]\n".into()),
        ("empty", String::new()),
    ]
}
