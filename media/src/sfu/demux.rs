//! Classifying datagrams on the shared port (RFC 7983) and finding the endpoint of a STUN
//! request by its USERNAME, without trusting anything in the packet.
use stun_types::attribute::Username;
use stun_types::message::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stun,
    Dtls,
    Rtp,
    Unknown,
}

/// First-byte demultiplexing (RFC 7983 §7).
pub fn classify(buf: &[u8]) -> Kind {
    match buf.first() {
        Some(0..=3) if buf.len() >= 20 => Kind::Stun,
        Some(20..=63) if buf.len() >= 13 => Kind::Dtls,
        Some(128..=191) if buf.len() >= 8 => Kind::Rtp,
        _ => Kind::Unknown,
    }
}

/// The local (bridge) ufrag of a STUN message's USERNAME (`local:remote`), if the message
/// parses (stun-types: lengths, cookie, FINGERPRINT when present) and carries one. Only
/// routing: str0m checks MESSAGE-INTEGRITY with the endpoint's password.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<String> {
    let msg = Message::from_bytes(buf).ok()?;
    let user = msg.attribute::<Username>().ok()?;
    user.username().split(':').next().filter(|u| !u.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_types::message::{BINDING, MessageWrite, MessageWriteExt, MessageWriteVec};

    fn stun_with_username(u: &str) -> Vec<u8> {
        let mut m = Message::builder_request(BINDING, MessageWriteVec::new());
        m.add_attribute(&Username::new(u).unwrap()).unwrap();
        m.finish()
    }

    #[test]
    fn username_parsing() {
        assert_eq!(stun_local_ufrag(&stun_with_username("abc:def")).as_deref(), Some("abc"));
        assert_eq!(stun_local_ufrag(&stun_with_username(":def")), None);
        let mut truncated = stun_with_username("abcdefgh:x");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
        let mut bad_len = stun_with_username("abc:def");
        bad_len[23] = 200; // attribute length past the end
        assert_eq!(stun_local_ufrag(&bad_len), None);
        let mut bad_fingerprint = Message::builder_request(BINDING, MessageWriteVec::new());
        bad_fingerprint.add_attribute(&Username::new("abc:def").unwrap()).unwrap();
        bad_fingerprint.add_fingerprint().unwrap();
        let mut bad_fingerprint = bad_fingerprint.finish();
        assert_eq!(stun_local_ufrag(&bad_fingerprint).as_deref(), Some("abc"));
        *bad_fingerprint.last_mut().unwrap() ^= 1;
        assert_eq!(stun_local_ufrag(&bad_fingerprint), None);
        assert_eq!(
            stun_local_ufrag(&Message::builder_request(BINDING, MessageWriteVec::new()).finish()),
            None
        );
        assert_eq!(stun_local_ufrag(&[0u8; 3]), None);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(&stun_with_username("a:b")), Kind::Stun);
        assert_eq!(classify(&[22; 20]), Kind::Dtls);
        assert_eq!(classify(&[0x80; 20]), Kind::Rtp);
        assert_eq!(classify(&[0xff; 20]), Kind::Unknown);
        assert_eq!(classify(&[]), Kind::Unknown);
        assert_eq!(classify(&[0x80]), Kind::Unknown);
    }
}
