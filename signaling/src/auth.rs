//! JWT verification with the claims Jitsi deployments already issue: `aud`, `iss`, `sub`
//! (domain or tenant, `*` for any), `room` (name or `*`), `exp`/`nbf` (small leeway),
//! `context.user` {name, avatar, email, id, moderator} and top-level `moderator`.
//! The algorithm is pinned by configuration; `alg: none` and algorithm confusion are refused
//! by jsonwebtoken itself. Tokens are never logged.
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;

use crate::config::JwtSettings;

/// Leeway for `exp`/`nbf`, seconds.
pub const LEEWAY_SECONDS: u64 = 10;

/// Why a token was refused (also the `reason` label of the auth failure metric).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Malformed,
    Expired,
    NotYetValid,
    Audience,
    Issuer,
    Subject,
    Room,
    Signature,
    Algorithm,
}

impl AuthError {
    /// Every variant, in declaration order (its metric label series start at 0).
    pub const ALL: [AuthError; 9] = [
        AuthError::Malformed,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::Audience,
        AuthError::Issuer,
        AuthError::Subject,
        AuthError::Room,
        AuthError::Signature,
        AuthError::Algorithm,
    ];

    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Malformed => "malformed",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Audience => "audience",
            AuthError::Issuer => "issuer",
            AuthError::Subject => "subject",
            AuthError::Room => "room",
            AuthError::Signature => "signature",
            AuthError::Algorithm => "algorithm",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identity {
    pub id: Option<String>,
    pub name: Option<String>,
    pub avatar: Option<String>,
    pub email: Option<String>,
    /// The token's `moderator` claim (top level or `context.user`), when it has one.
    pub moderator: Option<bool>,
    /// Top-level claims not read above.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    moderator: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "object")]
    context: Option<Context>,
    /// Every other top-level claim (e.g. the participant's region, `routing.regionClaim`).
    #[serde(flatten)]
    other: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct Context {
    #[serde(default, deserialize_with = "object")]
    user: Option<User>,
}

/// `context` and `context.user` are read only from JSON objects: serde would also fill a
/// struct from an array, by position (`"user": ["u1", "Ada"]` naming someone). Anything else
/// counts as absent, like a missing claim.
fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = serde_json::Value::deserialize(d)?;
    if !v.is_object() {
        return Ok(None);
    }
    serde_json::from_value(v).map(Some).map_err(serde::de::Error::custom)
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    avatar: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    moderator: Option<serde_json::Value>,
}

/// A boolean-like claim: `true`, `"true"`, `1`, `"1"` are true; anything else (`false`, `0`,
/// `"no"`, `null`, …) is false. Never a reason to refuse the whole token.
fn truthy(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64() == Some(1.0),
        serde_json::Value::String(s) => s.trim().eq_ignore_ascii_case("true") || s.trim() == "1",
        _ => false,
    }
}

pub struct Verifier {
    algorithm: Algorithm,
    keys: Vec<DecodingKey>,
    validation: Validation,
}

impl Verifier {
    pub fn new(s: &JwtSettings) -> anyhow::Result<Verifier> {
        let algorithm = match s.algorithm.as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            other => anyhow::bail!("unsupported JWT algorithm {other:?} (HS256, RS256 or ES256)"),
        };
        let keys = match algorithm {
            Algorithm::HS256 => {
                if s.key.is_empty() {
                    anyhow::bail!("empty HS256 secret");
                }
                vec![DecodingKey::from_secret(&s.key)]
            }
            _ => {
                let text = String::from_utf8_lossy(&s.key);
                let mut keys = Vec::new();
                for pem in split_pems(&text) {
                    let k = if algorithm == Algorithm::RS256 {
                        DecodingKey::from_rsa_pem(pem.as_bytes())
                    } else {
                        DecodingKey::from_ec_pem(pem.as_bytes())
                    };
                    keys.push(k.map_err(|e| anyhow::anyhow!("invalid public key: {e}"))?);
                }
                if keys.is_empty() {
                    anyhow::bail!("no PEM public key in the key file");
                }
                keys
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.set_audience(&[s.audience.as_str()]);
        validation.set_issuer(&[s.issuer.as_str()]);
        Ok(Verifier { algorithm, keys, validation })
    }

    /// Verify `token` for `room` (the room name as the user typed it, lower-cased) on `domain`.
    pub fn verify(&self, token: &str, domain: &str, room: &str) -> Result<Identity, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| header_error(token))?;
        if header.alg != self.algorithm {
            return Err(AuthError::Algorithm);
        }
        let mut last = AuthError::Signature;
        for key in &self.keys {
            match decode::<Claims>(token, key, &self.validation) {
                Ok(data) => return check_claims(data.claims, domain, room),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => AuthError::Expired,
                        K::ImmatureSignature => AuthError::NotYetValid,
                        K::InvalidAudience => AuthError::Audience,
                        K::InvalidIssuer => AuthError::Issuer,
                        K::InvalidSignature => AuthError::Signature,
                        K::InvalidAlgorithm | K::InvalidAlgorithmName => AuthError::Algorithm,
                        K::MissingRequiredClaim(c) if c == "aud" => AuthError::Audience,
                        K::MissingRequiredClaim(c) if c == "iss" => AuthError::Issuer,
                        K::MissingRequiredClaim(_) => AuthError::Malformed,
                        _ => AuthError::Malformed,
                    };
                    if last != AuthError::Signature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// Why jsonwebtoken could not read a token's header: a readable header naming an algorithm it
/// does not know (`none`, `HS1024`, …) is an `algorithm` refusal, anything else `malformed`.
fn header_error(token: &str) -> AuthError {
    use base64::Engine;
    let Some(h) = token.split('.').next() else { return AuthError::Malformed };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim_end_matches('=')) else {
        return AuthError::Malformed;
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v.get("alg").is_some() => AuthError::Algorithm,
        _ => AuthError::Malformed,
    }
}

fn split_pems(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if line.starts_with("-----BEGIN") {
            cur.clear();
        }
        cur.push_str(line);
        cur.push('\n');
        if line.starts_with("-----END") {
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

fn check_claims(c: Claims, domain: &str, room: &str) -> Result<Identity, AuthError> {
    // `sub`: the domain (or the tenant: the first path segment of a `tenant/room` name), or `*`.
    let tenant = room.split_once('/').map(|(t, _)| t);
    match c.sub.as_deref() {
        Some("*") => {}
        Some(s) if s.eq_ignore_ascii_case(domain) || Some(s) == tenant => {}
        _ => return Err(AuthError::Subject),
    }
    let bare_room = room.rsplit('/').next().unwrap_or(room);
    match c.room.as_deref() {
        Some("*") => {}
        Some(r) if r.eq_ignore_ascii_case(bare_room) || r.eq_ignore_ascii_case(room) => {}
        _ => return Err(AuthError::Room),
    }
    let user = c.context.and_then(|c| c.user).unwrap_or_default();
    let claims: Vec<&serde_json::Value> = [c.moderator.as_ref(), user.moderator.as_ref()]
        .into_iter()
        .flatten()
        .filter(|v| !v.is_null())
        .collect();
    let moderator = (!claims.is_empty()).then(|| claims.iter().any(|v| truthy(v)));
    Ok(Identity {
        id: user.id.map(|v| match v {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
        name: user.name,
        avatar: user.avatar,
        email: user.email,
        moderator,
        claims: c.other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"hs-shared-secret-for-tests";
    const RSA_PRIV: &str = include_str!("testdata/rsa-private.pem");
    const RSA_PUB: &str = include_str!("testdata/rsa-public.pem");
    const EC_PRIV: &str = include_str!("testdata/ec-private.pem");
    const EC_PUB: &str = include_str!("testdata/ec-public.pem");

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn settings(alg: &str, key: &[u8]) -> JwtSettings {
        JwtSettings {
            algorithm: alg.into(),
            issuer: "my-app".into(),
            audience: "convene".into(),
            key: key.to_vec(),
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "aud": "convene", "iss": "my-app", "sub": "meet.example.org", "room": "standup",
            "exp": now() + 600, "nbf": now() - 10,
            "context": {"user": {"name": "Ada", "avatar": "https://a/x.png", "email": "ada@x", "id": "u1", "moderator": "true"}}
        })
    }

    fn hs(c: &serde_json::Value) -> String {
        encode(&Header::new(Algorithm::HS256), c, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn hs_verifier() -> Verifier {
        Verifier::new(&settings("HS256", SECRET)).unwrap()
    }

    #[test]
    fn valid_hs256_token_gives_identity() {
        let id = hs_verifier().verify(&hs(&claims()), "meet.example.org", "standup").unwrap();
        assert_eq!(id.name.as_deref(), Some("Ada"));
        assert_eq!(id.avatar.as_deref(), Some("https://a/x.png"));
        assert_eq!(id.id.as_deref(), Some("u1"));
        assert_eq!(id.moderator, Some(true));
    }

    #[test]
    fn context_and_user_are_read_only_from_objects() {
        // Found by fuzz/ (jwt_verify): an array was read by position into the user's fields.
        for odd in [json!(["u1", "Mallory", "https://a/x.png", "m@x", true]), json!("Mallory"), json!(7)] {
            let mut c = claims();
            c["context"]["user"] = odd.clone();
            let id = hs_verifier().verify(&hs(&c), "meet.example.org", "standup").unwrap();
            assert_eq!((id.id, id.name, id.moderator), (None, None, None), "user {odd}");
            let mut c = claims();
            c["context"] = json!([odd.clone()]);
            let id = hs_verifier().verify(&hs(&c), "meet.example.org", "standup").unwrap();
            assert_eq!((id.id, id.name, id.moderator), (None, None, None), "context [{odd}]");
        }
    }

    #[test]
    fn wildcard_room_and_sub() {
        let mut c = claims();
        c["room"] = json!("*");
        c["sub"] = json!("*");
        c["context"]["user"]["moderator"] = json!(false);
        let id = hs_verifier().verify(&hs(&c), "meet.example.org", "anything").unwrap();
        assert_eq!(id.moderator, Some(false));
    }

    #[test]
    fn expired_refused() {
        let mut c = claims();
        c["exp"] = json!(now() - 60);
        assert_eq!(hs_verifier().verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::Expired));
    }

    #[test]
    fn expired_within_leeway_accepted() {
        let mut c = claims();
        c["exp"] = json!(now() - 2);
        assert!(hs_verifier().verify(&hs(&c), "meet.example.org", "standup").is_ok());
    }

    #[test]
    fn not_yet_valid_refused() {
        let mut c = claims();
        c["nbf"] = json!(now() + 120);
        assert_eq!(hs_verifier().verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::NotYetValid));
    }

    #[test]
    fn wrong_audience_issuer_room_subject_refused() {
        let v = hs_verifier();
        let mut c = claims();
        c["aud"] = json!("other");
        assert_eq!(v.verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::Audience));
        let mut c = claims();
        c["iss"] = json!("evil");
        assert_eq!(v.verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::Issuer));
        assert_eq!(v.verify(&hs(&claims()), "meet.example.org", "other-room"), Err(AuthError::Room));
        let mut c = claims();
        c["sub"] = json!("other.org");
        assert_eq!(v.verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::Subject));
        let mut c = claims();
        c.as_object_mut().unwrap().remove("aud");
        assert_eq!(v.verify(&hs(&c), "meet.example.org", "standup"), Err(AuthError::Audience));
    }

    #[test]
    fn alg_none_refused() {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(claims().to_string());
        for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
            // Reported as what it is (issue 12: it used to say `malformed`).
            assert_eq!(
                hs_verifier().verify(&token, "meet.example.org", "standup"),
                Err(AuthError::Algorithm)
            );
        }
        let other = b64.encode(br#"{"alg":"HS1024","typ":"JWT"}"#);
        let token = format!("{other}.{payload}.c2ln");
        assert_eq!(hs_verifier().verify(&token, "meet.example.org", "standup"), Err(AuthError::Algorithm));
        assert_eq!(
            hs_verifier().verify("bm90IGpzb24.e30.x", "meet.example.org", "standup"),
            Err(AuthError::Malformed)
        );
    }

    /// Issue 12: `moderator: 1` made the whole token fail. Boolean-like claims are accepted.
    #[test]
    fn boolean_like_moderator_claims() {
        let v = hs_verifier();
        let with = |top: Option<serde_json::Value>, user: Option<serde_json::Value>| {
            let mut c = claims();
            c["context"]["user"].as_object_mut().unwrap().remove("moderator");
            if let Some(t) = top {
                c["moderator"] = t;
            }
            if let Some(u) = user {
                c["context"]["user"]["moderator"] = u;
            }
            v.verify(&hs(&c), "meet.example.org", "standup").map(|i| i.moderator)
        };
        for yes in [json!(true), json!("true"), json!("TRUE"), json!(1), json!("1")] {
            assert_eq!(with(Some(yes.clone()), None), Ok(Some(true)), "top-level {yes}");
            assert_eq!(with(None, Some(yes.clone())), Ok(Some(true)), "context.user {yes}");
        }
        for no in [json!(false), json!("false"), json!(0), json!("0"), json!("no")] {
            assert_eq!(with(Some(no.clone()), None), Ok(Some(false)), "{no}");
        }
        assert_eq!(with(None, None), Ok(None), "no claim");
        assert_eq!(with(Some(json!(false)), Some(json!(1))), Ok(Some(true)));
    }

    #[test]
    fn tampered_signature_and_payload_refused() {
        let token = hs(&claims());
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut c = claims();
        c["room"] = json!("*");
        parts[1] = b64.encode(c.to_string());
        let forged = parts.join(".");
        assert_eq!(hs_verifier().verify(&forged, "meet.example.org", "x"), Err(AuthError::Signature));
        let mut sig = token.clone();
        let last = sig.pop().unwrap();
        sig.push(if last == 'A' { 'B' } else { 'A' });
        assert!(hs_verifier().verify(&sig, "meet.example.org", "standup").is_err());
        // Signed with another secret.
        let other =
            encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(b"nope")).unwrap();
        assert_eq!(hs_verifier().verify(&other, "meet.example.org", "standup"), Err(AuthError::Signature));
    }

    #[test]
    fn rs256_works_and_hs_rs_confusion_refused() {
        let v = Verifier::new(&settings("RS256", RSA_PUB.as_bytes())).unwrap();
        let token = encode(
            &Header::new(Algorithm::RS256),
            &claims(),
            &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(v.verify(&token, "meet.example.org", "standup").is_ok());
        // The classic attack: HS256 with the public key as the shared secret.
        let forged =
            encode(&Header::new(Algorithm::HS256), &claims(), &EncodingKey::from_secret(RSA_PUB.as_bytes()))
                .unwrap();
        assert_eq!(v.verify(&forged, "meet.example.org", "standup"), Err(AuthError::Algorithm));
        // And an RS256 token presented to an HS256 verifier.
        assert_eq!(hs_verifier().verify(&token, "meet.example.org", "standup"), Err(AuthError::Algorithm));
    }

    #[test]
    fn es256_with_several_keys() {
        let keys = format!("{EC_PUB}\n{EC_PUB}");
        let v = Verifier::new(&settings("ES256", keys.as_bytes())).unwrap();
        let token = encode(
            &Header::new(Algorithm::ES256),
            &claims(),
            &EncodingKey::from_ec_pem(EC_PRIV.as_bytes()).unwrap(),
        )
        .unwrap();
        assert!(v.verify(&token, "meet.example.org", "standup").is_ok());
        assert!(v.verify("garbage", "meet.example.org", "standup").is_err());
    }

    #[test]
    fn bad_settings_refused() {
        assert!(Verifier::new(&settings("none", SECRET)).is_err());
        assert!(Verifier::new(&settings("HS512", SECRET)).is_err());
        assert!(Verifier::new(&settings("HS256", b"")).is_err());
        assert!(Verifier::new(&settings("RS256", b"not a pem")).is_err());
    }
}
