//! Chat: to the whole room, or privately to one participant (the sender gets a copy).
use crate::protocol::{ErrorCode, ServerMsg};
use crate::room::{Room, refuse};
use crate::state::{App, Tx};

const MAX_CHAT: usize = 4096;

pub fn send(app: &App, r: &Room, pid: &str, my_name: String, tx: &Tx, text: String, to: Option<String>) {
    // Refused, not cut: a truncated message would say something its sender did not.
    if text.chars().nth(MAX_CHAT).is_some() {
        return refuse(
            app,
            tx,
            ErrorCode::TooLong,
            format!("chat messages are at most {MAX_CHAT} characters"),
        );
    }
    if text.trim().is_empty() {
        return;
    }
    let private = to.is_some();
    let msg = ServerMsg::Chat { from: pid.to_string(), name: my_name, text, private, to: to.clone() };
    match to {
        Some(t) => match r.participants.get(&t) {
            Some(p) => {
                let _ = p.tx.send(msg.clone());
                let _ = tx.send(msg);
            }
            None => refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant"),
        },
        None => r.broadcast(&msg, None),
    }
}
