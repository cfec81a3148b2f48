//! Classifying datagrams on the shared port (RFC 7983) and finding the endpoint of a STUN
//! request by its USERNAME, without trusting anything in the packet.

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

const MAGIC: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
const USERNAME: u16 = 0x0006;

/// The local (bridge) ufrag of a STUN message's USERNAME (`local:remote`), if the message is
/// well-formed enough to carry one.
pub fn stun_local_ufrag(buf: &[u8]) -> Option<&str> {
    if buf.len() < 20 || buf[4..8] != MAGIC {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let body = buf.get(20..20 + len)?;
    let mut at = 0;
    while at + 4 <= body.len() {
        let typ = u16::from_be_bytes([body[at], body[at + 1]]);
        let alen = u16::from_be_bytes([body[at + 2], body[at + 3]]) as usize;
        let value = body.get(at + 4..at + 4 + alen)?;
        if typ == USERNAME {
            let s = std::str::from_utf8(value).ok()?;
            return s.split(':').next().filter(|u| !u.is_empty());
        }
        at += 4 + alen.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun_with_username(u: &[u8]) -> Vec<u8> {
        let mut v = vec![0x00, 0x01, 0, 0];
        v.extend_from_slice(&MAGIC);
        v.extend_from_slice(&[7; 12]);
        let mut attr = vec![0x00, 0x06];
        attr.extend_from_slice(&(u.len() as u16).to_be_bytes());
        attr.extend_from_slice(u);
        while attr.len() % 4 != 0 {
            attr.push(0);
        }
        let len = attr.len() as u16;
        v[2..4].copy_from_slice(&len.to_be_bytes());
        v.extend(attr);
        v
    }

    #[test]
    fn username_parsing() {
        assert_eq!(stun_local_ufrag(&stun_with_username(b"abc:def")), Some("abc"));
        assert_eq!(stun_local_ufrag(&stun_with_username(b":def")), None);
        let mut truncated = stun_with_username(b"abcdefgh:x");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
        let mut bad_len = stun_with_username(b"abc:def");
        bad_len[23] = 200; // attribute length past the end
        assert_eq!(stun_local_ufrag(&bad_len), None);
        assert_eq!(stun_local_ufrag(&[0u8; 3]), None);
    }

    #[test]
    fn classification() {
        assert_eq!(classify(&stun_with_username(b"a:b")), Kind::Stun);
        assert_eq!(classify(&[22; 20]), Kind::Dtls);
        assert_eq!(classify(&[0x80; 20]), Kind::Rtp);
        assert_eq!(classify(&[0xff; 20]), Kind::Unknown);
        assert_eq!(classify(&[]), Kind::Unknown);
        assert_eq!(classify(&[0x80]), Kind::Unknown);
    }
}
