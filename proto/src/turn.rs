//! Ephemeral TURN credentials in coturn's REST format (`use-auth-secret`): username
//! `<expiry unix time>:<user id>`, password `base64(HMAC-SHA1(secret, username))`. Signaling
//! hands them to clients; `kubectl convene doctor` mints one to test a relay.
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The username of a credential valid until `expiry` (Unix seconds) for `user`.
pub fn username(expiry: i64, user: &str) -> String {
    format!("{expiry}:{user}")
}

/// The password coturn expects for `username` under the shared `secret`.
pub fn credential(secret: &str, username: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // python3: base64.b64encode(hmac.new(b'north', b'1600000000:alice', hashlib.sha1).digest())
        assert_eq!(username(1_600_000_000, "alice"), "1600000000:alice");
        assert_eq!(credential("north", "1600000000:alice"), "gq98pTOhhHaAu0we9aV79kOVVv0=");
    }
}
