//! The lobby: knocking, the moderators' waiting list, admit and deny.
use std::sync::Arc;

use crate::protocol::{ErrorCode, ServerMsg};
use crate::room::join::admit as enter;
use crate::room::{Room, Waiter, media, refuse};
use crate::state::{App, Tx};

/// A non-moderator asked to join a room with the lobby on.
pub fn knock(app: &App, r: &mut Room, pid: &str, waiter: Waiter) {
    let tx = waiter.tx.clone();
    r.waiting.insert(pid.to_string(), waiter);
    app.metrics.lobby_waiting.inc();
    r.notify_lobby();
    let _ = tx.send(ServerMsg::LobbyWaiting);
}

/// Turning the lobby off admits everyone waiting.
pub fn set_enabled(app: &Arc<App>, r: &mut Room, enabled: bool) {
    r.lobby = enabled;
    r.broadcast_room();
    if !enabled {
        let waiting: Vec<String> = r.waiting.keys().cloned().collect();
        for w in waiting {
            admit_waiter(app, r, &w);
        }
    }
}

pub fn admit(app: &Arc<App>, r: &mut Room, tx: &Tx, id: &str) {
    if !r.waiting.contains_key(id) {
        return refuse(app, tx, ErrorCode::UnknownParticipant, "nobody with that id is waiting");
    }
    admit_waiter(app, r, id);
}

pub fn deny(app: &App, r: &mut Room, tx: &Tx, id: &str) {
    match r.waiting.remove(id) {
        Some(w) => {
            app.metrics.lobby_waiting.dec();
            let _ = w.tx.send(ServerMsg::LobbyDenied);
            r.notify_lobby();
        }
        None => refuse(app, tx, ErrorCode::UnknownParticipant, "nobody with that id is waiting"),
    }
}

fn admit_waiter(app: &Arc<App>, r: &mut Room, id: &str) {
    let Some(w) = r.waiting.remove(id) else { return };
    app.metrics.lobby_waiting.dec();
    enter(app, r, w.info, w.tx, w.fixed_identity, w.region);
    r.notify_lobby();
    media::spawn_setup(app, &r.name, id, false);
}
