//! Reachability probes on the media port: a plain STUN Binding request (no USERNAME, no
//! MESSAGE-INTEGRITY, as `kubectl convene doctor` or any STUN client sends) is answered with
//! the source address it came from, so an admin can prove the port is exposed and the
//! advertised address right. ICE checks (with USERNAME) never come here; the per-source flood
//! limit runs before, and the answer (32 or 44 bytes) is built only for a well-formed request.
use std::net::SocketAddr;

use stun_types::attribute::{
    AttributeStaticType, MessageIntegrity, MessageIntegritySha256, Username, XorMappedAddress,
};
use stun_types::message::{BINDING, Message, MessageClass, MessageWrite, MessageWriteExt, MessageWriteVec};

/// The Binding success answer to `buf` from `source`, or None when `buf` is not a plain,
/// well-formed Binding request.
pub fn binding_answer(buf: &[u8], source: SocketAddr) -> Option<Vec<u8>> {
    let msg = Message::from_bytes(buf).ok()?;
    if !msg.has_class(MessageClass::Request) || !msg.has_method(BINDING) {
        return None;
    }
    for t in [Username::TYPE, MessageIntegrity::TYPE, MessageIntegritySha256::TYPE] {
        if msg.has_attribute(t) {
            return None;
        }
    }
    let mut out = Message::builder_success(&msg, MessageWriteVec::new());
    out.add_attribute(&XorMappedAddress::new(source, msg.transaction_id())).ok()?;
    Some(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_plain_binding_request_with_the_source_address() {
        let req = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
        let from: SocketAddr = "127.0.6.2:40000".parse().unwrap();
        let answer = binding_answer(&req, from).expect("answered");
        let msg = Message::from_bytes(&answer).unwrap();
        assert!(msg.has_class(MessageClass::Success) && msg.has_method(BINDING));
        assert_eq!(msg.transaction_id(), Message::from_bytes(&req).unwrap().transaction_id());
        let mapped = msg.attribute::<XorMappedAddress>().unwrap();
        assert_eq!(mapped.addr(msg.transaction_id()), from);
        assert!(answer.len() <= 32);
    }

    #[test]
    fn ice_checks_responses_and_garbage_are_not_answered() {
        let from: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut ice = Message::builder_request(BINDING, MessageWriteVec::new());
        ice.add_attribute(&Username::new("bridge:client").unwrap()).unwrap();
        assert_eq!(binding_answer(&ice.finish(), from), None);
        let req = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
        let reply = binding_answer(&req, from).unwrap();
        assert_eq!(binding_answer(&reply, from), None, "a response is never answered");
        let mut truncated = req.clone();
        truncated.truncate(19);
        assert_eq!(binding_answer(&truncated, from), None);
        assert_eq!(binding_answer(&[0u8; 20], from), None);
    }

    #[test]
    fn the_bridge_answers_a_probe_on_udp_and_drops_it_on_tcp() {
        use crate::sfu::{Sfu, SfuConfig};
        use std::time::Instant;
        use str0m::net::Protocol;
        let now = Instant::now();
        let mut sfu = Sfu::new(SfuConfig::default(), now);
        let (bridge, client): (SocketAddr, SocketAddr) =
            ("127.0.6.2:10500".parse().unwrap(), "127.0.0.1:40000".parse().unwrap());
        let req = Message::builder_request(BINDING, MessageWriteVec::new()).finish();
        sfu.handle_packet(now, Protocol::Udp, client, bridge, &req);
        let t = sfu.poll_transmit().expect("an answer");
        assert_eq!((t.source, t.destination), (bridge, client));
        assert!(Message::from_bytes(&t.contents).unwrap().has_class(MessageClass::Success));
        sfu.handle_packet(now, Protocol::Tcp, client, bridge, &req);
        assert!(sfu.poll_transmit().is_none());
    }
}
