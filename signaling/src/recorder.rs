//! `/recorder`: recorders dial in (the bridge-control secret, like bridges), register their
//! capacity and report their load; signaling picks one per recording ([`pick`]) and relays
//! between it and the room's bridge (see [`crate::recording`] for the flows).
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocket;
use convene_proto::recorder::{self, ErrorCode, FromRecorder, Interruption, ToRecorder};

use crate::control_socket::ControlSocket;
use crate::state::{App, RecorderConn, lock};

/// At most this many recorders are registered at once; more are refused (a recorder holds a
/// queue and a registry entry, so the registry is bounded like every other input).
pub const MAX_RECORDERS: usize = 1024;

/// A recorder as the registry knows it.
pub struct RegisteredRecorder {
    pub id: String,
    pub version: String,
    pub capacity: u32,
    /// Recordings it reported running (its own count, including leftovers after a reconnect).
    pub active: u32,
    pub draining: bool,
    /// Camera height it records.
    pub video_height: u32,
    pub conn: RecorderConn,
    /// Recordings signaling gave it and that have not ended: recording id → room.
    pub recordings: HashMap<String, String>,
}

impl RegisteredRecorder {
    /// Recordings it holds: what it reported, or what we gave it since, whichever is more.
    pub fn load(&self) -> u32 {
        self.active.max(self.recordings.len() as u32)
    }
}

/// What [`pick`] weighs of one recorder.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    pub id: &'a str,
    pub capacity: u32,
    pub load: u32,
    pub draining: bool,
}

/// The least-loaded recorder (by the share of its capacity in use, then the fewest
/// recordings, then the id) that has room and is not draining.
pub fn pick<'a>(candidates: &[Candidate<'a>]) -> Option<&'a str> {
    candidates
        .iter()
        .filter(|c| !c.draining && c.load < c.capacity)
        .min_by(|a, b| {
            let share = |c: &Candidate| c.load as f64 / c.capacity as f64;
            share(a).total_cmp(&share(b)).then(a.load.cmp(&b.load)).then(a.id.cmp(b.id))
        })
        .map(|c| c.id)
}

/// Choose a recorder for `recording` of `room` and count it there at once (so two rooms
/// starting together do not both take its last place). Returns its id and connection.
pub fn assign(app: &App, recording: &str, room: &str) -> Option<(String, RecorderConn)> {
    let mut inner = app.lock();
    let candidates: Vec<Candidate> = inner
        .recorders
        .values()
        .map(|r| Candidate { id: &r.id, capacity: r.capacity, load: r.load(), draining: r.draining })
        .collect();
    let id = pick(&candidates)?.to_string();
    let r = inner.recorders.get_mut(&id)?;
    r.recordings.insert(recording.to_string(), room.to_string());
    Some((id, r.conn.clone()))
}

/// The recording ended: the recorder's place is free again.
pub fn release(app: &App, recorder: &str, recording: &str) {
    if let Some(r) = app.lock().recorders.get_mut(recorder) {
        r.recordings.remove(recording);
    }
}

pub fn conn(app: &App, recorder: &str) -> Option<RecorderConn> {
    app.lock().recorders.get(recorder).map(|r| r.conn.clone())
}

pub async fn handle(app: Arc<App>, socket: WebSocket) {
    let Some((mut socket, first)) = ControlSocket::first(socket).await else { return };
    let refuse = |why: &str| recorder::to_json(&FromRecorder::error(None, ErrorCode::BadRequest, why));
    let Ok(FromRecorder::Register {
        protocol_version,
        recorder_id,
        version,
        capacity,
        active,
        draining,
        video_height,
    }) = recorder::parse::<FromRecorder>(&first)
    else {
        socket.refuse(refuse("expected register")).await;
        return;
    };
    if protocol_version != recorder::PROTOCOL_VERSION || recorder_id.is_empty() || recorder_id.len() > 128 {
        socket.refuse(refuse("unsupported protocol version or bad recorder id")).await;
        return;
    }
    let (tx, rx) = ControlSocket::queue(&app, "recorder");
    let conn = RecorderConn::new(tx.clone());
    let replaced = {
        let mut inner = app.lock();
        if inner.recorders.len() >= MAX_RECORDERS && !inner.recorders.contains_key(&recorder_id) {
            None
        } else {
            let old = inner.recorders.insert(
                recorder_id.clone(),
                RegisteredRecorder {
                    id: recorder_id.clone(),
                    version: version.clone(),
                    capacity,
                    active,
                    draining,
                    video_height,
                    conn: conn.clone(),
                    recordings: HashMap::new(),
                },
            );
            Some(old)
        }
    };
    let Some(replaced) = replaced else {
        socket.refuse(refuse("too many recorders registered")).await;
        return;
    };
    // A recorder that registers again lost its connection: what it was recording for us
    // stopped with it (it finishes its files when the socket drops).
    if let Some(old) = replaced {
        lost(&app, old.recordings);
    }
    tracing::info!(recorder = %recorder_id, %version, capacity, active, draining, "recorder registered");
    socket
        .run(&app, &tx, rx, &recorder_id, |t| match recorder::parse::<FromRecorder>(t) {
            Ok(m) => on_message(&app, &recorder_id, &conn, m),
            Err(e) => tracing::warn!(recorder = %recorder_id, error = %e, "bad recorder frame"),
        })
        .await;
    tracing::warn!(recorder = %recorder_id, "recorder control connection closed");
    lock(&conn.pending).clear();
    let gone = {
        let mut inner = app.lock();
        match inner.recorders.get(&recorder_id) {
            Some(r) if r.conn.generation == conn.generation => inner.recorders.remove(&recorder_id),
            _ => None,
        }
    };
    if let Some(r) = gone {
        lost(&app, r.recordings);
    }
}

/// The recordings of a recorder whose connection is gone continue on another one.
fn lost(app: &Arc<App>, recordings: HashMap<String, String>) {
    for (id, room) in recordings {
        tracing::warn!(recording = %id, %room, "recorder lost mid-recording");
        crate::recording::interrupted(app, &room, &id, Interruption::RecorderLost);
    }
}

pub fn on_message(app: &Arc<App>, recorder_id: &str, conn: &RecorderConn, msg: FromRecorder) {
    match msg {
        FromRecorder::Status { active, draining } => {
            if let Some(r) = app.lock().recorders.get_mut(recorder_id) {
                r.active = active;
                r.draining = draining;
            }
        }
        FromRecorder::Offer { id, .. } | FromRecorder::Ok { id } => {
            conn.complete(id, msg);
        }
        FromRecorder::Error { id, code, ref message } => {
            if let Some(id) = id
                && conn.complete(id, msg.clone())
            {
                return;
            }
            tracing::warn!(recorder = %recorder_id, ?code, %message, "recorder error");
        }
        FromRecorder::Answer { recording, offer_id, sdp } => {
            crate::recording::relay_answer(app, recorder_id, &recording, offer_id, sdp);
        }
        FromRecorder::Finished { recording, conference, location, files, error } => {
            let room =
                app.lock().recorders.get_mut(recorder_id).and_then(|r| r.recordings.remove(&recording));
            tracing::info!(recorder = %recorder_id, %recording, %location, files, error = ?error, "recording finished");
            match (room, error) {
                // It ended on its own while the room still records it (the recorder is shutting
                // down): the recording continues on another recorder.
                (Some(room), None) => {
                    crate::recording::interrupted(app, &room, &recording, Interruption::RecorderLost)
                }
                // Ours while it ran; after a stop (an upload's failure) the room the recorder names.
                (room, Some(error)) => {
                    let room = room.unwrap_or(conference);
                    crate::recording::finished(app, &room, &recording, &location, &error);
                }
                (None, None) => {}
            }
        }
        FromRecorder::Register { .. } => tracing::warn!(recorder = %recorder_id, "second register ignored"),
    }
}

/// A request to a recorder that is not registered gets no reply.
pub fn send(app: &App, recorder: &str, msg: &ToRecorder) {
    if let Some(c) = conn(app, recorder) {
        c.send(msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, capacity: u32, load: u32, draining: bool) -> Candidate<'_> {
        Candidate { id, capacity, load, draining }
    }

    #[test]
    fn least_loaded_with_room_never_draining() {
        assert_eq!(pick(&[]), None);
        assert_eq!(pick(&[c("a", 2, 2, false)]), None, "full");
        assert_eq!(pick(&[c("a", 2, 0, true)]), None, "draining");
        assert_eq!(pick(&[c("a", 0, 0, false)]), None, "no capacity");
        // By share of capacity: 3/10 beats 1/2.
        assert_eq!(pick(&[c("a", 2, 1, false), c("b", 10, 3, false)]), Some("b"));
        assert_eq!(pick(&[c("b", 4, 1, false), c("a", 4, 1, false)]), Some("a"), "ties by id");
        assert_eq!(pick(&[c("a", 4, 0, true), c("b", 4, 3, false)]), Some("b"));
    }
}
