//! Ephemeral TURN credentials in coturn's REST format (`use-auth-secret`): username
//! `<expiry unix time>:<user id>`, password `base64(HMAC-SHA1(secret, username))`, minted by
//! convene_proto::turn (the doctor mints them too).
use crate::config::TurnSettings;
pub use crate::protocol::IceServer;
pub use convene_proto::turn::credential;

pub fn ice_servers(turn: &TurnSettings, user: &str, now_unix: i64) -> Vec<IceServer> {
    if turn.uris.is_empty() {
        return Vec::new();
    }
    let username = convene_proto::turn::username(now_unix + turn.lifetime_seconds, user);
    let credential = credential(&turn.secret, &username);
    vec![IceServer { urls: turn.uris.clone(), username, credential }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // python3: base64.b64encode(hmac.new(b'north', b'1600000000:alice', hashlib.sha1).digest())
        assert_eq!(credential("north", "1600000000:alice"), "gq98pTOhhHaAu0we9aV79kOVVv0=");
    }

    #[test]
    fn username_format() {
        let t = TurnSettings {
            uris: vec!["turn:127.0.0.1:3478".into()],
            secret: "north".into(),
            lifetime_seconds: 600,
        };
        let s = ice_servers(&t, "alice", 1_599_999_400);
        assert_eq!(s[0].username, "1600000000:alice");
        assert_eq!(s[0].credential, "gq98pTOhhHaAu0we9aV79kOVVv0=");
        assert!(ice_servers(&TurnSettings { uris: vec![], ..t }, "a", 0).is_empty());
    }
}
