//! Target `jwt_verify`: signaling's JWT verification (`auth::Verifier::verify`).
//!
//! Input: a mode byte, then
//! - mode 0 (even): the token itself, verified by an HS256, an RS256 and an ES256 verifier
//!   (the keys of `signaling/src/testdata`), for room `standup` on [`DOMAIN`];
//! - mode 1 (odd): `<header JSON>\n<claims JSON>[\n<room>]`, base64url-encoded and signed
//!   with HS256 by the harness, so the fuzzer reaches the claim checks behind the signature; the
//!   same token signed with another secret is verified too.
//!
//! Checked: a token signed with a wrong secret is refused; an accepted token names HS256, has
//! the configured issuer and audience, an `exp` not past (within the leeway), a `sub` that is
//! `*`, the domain or the room's tenant, a `room` that is `*` or the room, and the identity is
//! the token's `context.user`.
use std::sync::OnceLock;

use base64::Engine;
use convene_signaling::auth::{LEEWAY_SECONDS, Verifier};
use convene_signaling::config::JwtSettings;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;

pub use crate::rooms::{AUDIENCE, DOMAIN, HS_SECRET, ISSUER};

pub const RSA_PUBLIC: &str = include_str!("../../signaling/src/testdata/rsa-public.pem");
pub const EC_PUBLIC: &str = include_str!("../../signaling/src/testdata/ec-public.pem");
pub const DEFAULT_ROOM: &str = "standup";

fn settings(algorithm: &str, key: &[u8]) -> JwtSettings {
    JwtSettings {
        algorithm: algorithm.into(),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        key: key.to_vec(),
    }
}

/// HS256, RS256 and ES256 verifiers, built once per process.
fn verifiers() -> &'static [Verifier; 3] {
    static V: OnceLock<[Verifier; 3]> = OnceLock::new();
    V.get_or_init(|| {
        let v = |alg: &str, key: &[u8]| Verifier::new(&settings(alg, key)).expect("test keys load");
        [v("HS256", HS_SECRET), v("RS256", RSA_PUBLIC.as_bytes()), v("ES256", EC_PUBLIC.as_bytes())]
    })
}

/// `header.claims.signature`, HS256 with `secret`.
pub fn sign_hs256(header: &[u8], claims: &[u8], secret: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signing_input = format!("{}.{}", b64.encode(header), b64.encode(claims));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", b64.encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    alg: Value,
}

#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Value,
    #[serde(default)]
    aud: Value,
    #[serde(default)]
    exp: Value,
    #[serde(default)]
    sub: Value,
    #[serde(default)]
    room: Value,
    /// Read as the verifier reads it: only an object counts (`Value`'s index gives null on an
    /// array or a string).
    #[serde(default)]
    context: Value,
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

pub fn run(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else { return };
    let [hs, rs, es] = verifiers();
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        for v in [hs, rs, es] {
            let _ = v.verify(&token, DOMAIN, DEFAULT_ROOM);
        }
        return;
    }
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let header = parts.next().unwrap_or_default();
    let claims = parts.next().unwrap_or_default();
    let room = parts.next().map(String::from_utf8_lossy).unwrap_or(DEFAULT_ROOM.into());
    let forged = sign_hs256(header, claims, b"not-the-secret");
    assert!(hs.verify(&forged, DOMAIN, &room).is_err(), "accepted a token signed with another secret");
    let token = sign_hs256(header, claims, HS_SECRET);
    let Ok(id) = hs.verify(&token, DOMAIN, &room) else { return };
    // Only the fields the rules name are read, as the verifier reads them: serde skips the
    // others unchecked, so a validly signed token may carry invalid UTF-8 or numbers beyond f64
    // in a claim nobody reads (both were the fuzzer's first findings: harness assumptions).
    let h: Header = serde_json::from_slice(header).expect("an accepted token has a JSON header");
    assert_eq!(h.alg, "HS256", "accepted a token naming another algorithm");
    let c: Claims = serde_json::from_slice(claims).expect("an accepted token has JSON claims");
    let c = serde_json::json!({
        "iss": c.iss, "aud": c.aud, "exp": c.exp, "sub": c.sub, "room": c.room,
        "context": { "user": c.context["user"].as_object().cloned().unwrap_or_default() },
    });
    assert_eq!(c["iss"], ISSUER, "issuer");
    let aud_ok = match &c["aud"] {
        Value::String(a) => a == AUDIENCE,
        Value::Array(a) => a.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "audience {}", c["aud"]);
    let exp = c["exp"].as_f64().expect("an accepted token has a numeric exp");
    assert!(exp + LEEWAY_SECONDS as f64 + 1.0 >= now(), "accepted an expired token (exp {exp})");
    let tenant = room.split_once('/').map(|(t, _)| t);
    let sub_ok = match c["sub"].as_str() {
        Some("*") => true,
        Some(s) => s.eq_ignore_ascii_case(DOMAIN) || Some(s) == tenant,
        None => false,
    };
    assert!(sub_ok, "subject {}", c["sub"]);
    let bare = room.rsplit('/').next().unwrap_or(&room);
    let room_ok = match c["room"].as_str() {
        Some("*") => true,
        Some(r) => r.eq_ignore_ascii_case(bare) || r.eq_ignore_ascii_case(&room),
        None => false,
    };
    assert!(room_ok, "room claim {} for room {room:?}", c["room"]);
    let user = &c["context"]["user"];
    assert_eq!(id.name.as_deref(), user["name"].as_str(), "name");
    assert_eq!(id.avatar.as_deref(), user["avatar"].as_str(), "avatar");
    assert_eq!(id.email.as_deref(), user["email"].as_str(), "email");
}
