//! A room: its participants, lobby and settings behind its own lock, so rooms never wait on
//! each other. Client frames for a joined connection land in [`on_message`], which takes the
//! room lock once, checks membership and moderator rights, and hands the frame to the module
//! that does the work: [`join`], [`lobby`], [`moderation`], [`chat`], [`presence`], [`media`].
//! Work that needs other locks or the network (bridge relay, endpoint expiry) happens after the
//! room lock is released.
pub mod chat;
pub mod join;
pub mod lobby;
pub mod media;
pub mod moderation;
pub mod presence;
pub mod reaction;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use convene_proto::control::ToBridge;

use crate::protocol::{
    ClientMsg, ErrorCode, ParticipantInfo, RecordingStopReason, RoomInfo, ServerMsg, WaitingInfo,
};
use crate::state::{App, Tx, lock};

pub type RoomRef = Arc<Mutex<Room>>;

pub struct Participant {
    pub info: ParticipantInfo,
    pub tx: Tx,
    pub seq: u64,
    /// Bridge holding this participant's endpoint.
    pub bridge: Option<String>,
    /// Whether the name/avatar came from a token (then they cannot be changed).
    pub fixed_identity: bool,
    /// Where the participant is (edge header, token claim, or the shard's region): the room's
    /// bridge is chosen in the region of the participant who starts its conference.
    pub region: Option<String>,
    /// `media` messages sent whose peer connection the client has not reported on yet
    /// (`ice_report`; at most [`crate::ice::MAX_DUE`]).
    pub ice_due: u8,
}

pub struct Waiter {
    pub info: ParticipantInfo,
    pub tx: Tx,
    pub fixed_identity: bool,
    pub region: Option<String>,
}

#[derive(Default)]
pub struct Room {
    pub name: String,
    pub participants: BTreeMap<String, Participant>,
    pub waiting: BTreeMap<String, Waiter>,
    pub bridge: Option<String>,
    pub password: Option<String>,
    pub lobby: bool,
    pub recording: Option<crate::recording::Recording>,
    pub dominant: Option<String>,
    pub seq: u64,
    /// The room emptied and left the index; a holder of a stale handle must look it up again.
    pub closed: bool,
    /// Per-participant reaction rate limits.
    pub reactions: reaction::Limits,
    /// Raised hands so far: the next one's place in the queue.
    pub hands_raised: u64,
    /// End-to-end encrypted (`set_e2ee`): recording is refused.
    pub e2ee: bool,
    /// The participant on everyone's stage (`spotlight`).
    pub spotlight: Option<String>,
}

impl Room {
    pub fn new(name: &str, lobby: bool) -> RoomRef {
        Arc::new(Mutex::new(Room { name: name.to_string(), lobby, ..Default::default() }))
    }

    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.clone(),
            locked: self.password.is_some(),
            lobby: self.lobby,
            recording: self.recording.as_ref().is_some_and(|x| x.running),
            recording_by: self.recording.as_ref().filter(|x| x.running).map(|x| x.by.clone()),
            dominant_speaker: self.dominant.clone(),
            e2ee: self.e2ee,
            spotlight: self.spotlight.clone(),
        }
    }

    pub fn broadcast(&self, msg: &ServerMsg, except: Option<&str>) {
        let text = msg.to_json();
        for (id, p) in &self.participants {
            if Some(id.as_str()) != except {
                // A recipient past its queue bound is marked slow: its own task takes it out
                // of the room (this lock is held here).
                let _ = p.tx.send_json(text.clone(), msg);
            }
        }
        crate::recording::observe(self, msg);
    }

    pub fn broadcast_room(&self) {
        self.broadcast(&ServerMsg::Room { room: self.info() }, None);
    }

    pub fn list(&self) -> Vec<ParticipantInfo> {
        let mut v: Vec<&Participant> = self.participants.values().collect();
        v.sort_by_key(|p| p.seq);
        v.into_iter().map(|p| p.info.clone()).collect()
    }

    pub fn waiting_list(&self) -> Vec<WaitingInfo> {
        self.waiting.iter().map(|(id, w)| WaitingInfo { id: id.clone(), name: w.info.name.clone() }).collect()
    }

    /// Tell the moderators who is waiting.
    pub fn notify_lobby(&self) {
        let msg = ServerMsg::Lobby { waiting: self.waiting_list() };
        for p in self.participants.values().filter(|p| p.info.moderator) {
            let _ = p.tx.send(msg.clone());
        }
    }

    /// Change a participant's info and tell everyone.
    pub fn update(&mut self, pid: &str, f: impl FnOnce(&mut ParticipantInfo)) {
        let Some(p) = self.participants.get_mut(pid) else { return };
        f(&mut p.info);
        let info = p.info.clone();
        self.broadcast(&ServerMsg::ParticipantUpdated { participant: info }, None);
    }

    /// Close an empty room (no participants, nobody waiting); returns whether it closed. The
    /// caller then takes it out of the index with [`App::forget_room`].
    fn close_if_empty(&mut self) -> bool {
        if self.participants.is_empty() && self.waiting.is_empty() {
            self.closed = true;
        }
        self.closed
    }
}

pub fn refuse(app: &App, tx: &Tx, code: ErrorCode, message: impl Into<String>) {
    app.metrics.refusals.with_label_values(&[code.as_str()]).inc();
    let _ = tx.send(ServerMsg::error(code, message));
}

/// What remains to do once the room lock is released.
#[must_use]
pub enum After {
    Nothing,
    /// Someone left (or was kicked): free their endpoint; forget the room if it closed.
    Left(Left),
    /// A media frame for the bridge holding the participant's endpoint.
    Relay {
        conference: String,
        bridge: Option<String>,
        msg: ClientMsg,
    },
}

#[must_use]
pub struct Left {
    name: String,
    pid: String,
    /// The bridge the participant's endpoint was on.
    bridge: Option<String>,
    closed: bool,
}

impl After {
    pub fn finish(self, app: &Arc<App>, room: &RoomRef, pid: &str, tx: &Tx) {
        match self {
            After::Nothing => {}
            After::Left(left) => left.finish(app, room),
            After::Relay { conference, bridge, msg } => media::relay(app, &conference, pid, tx, bridge, msg),
        }
    }
}

impl Left {
    pub fn finish(self, app: &App, room: &RoomRef) {
        if self.closed {
            app.forget_room(&self.name, room);
        }
        let Some(b) = self.bridge else { return };
        let Some(conn) = lock(&app.inner).bridges.get(&b).and_then(|b| b.conn.clone()) else { return };
        let msg = if self.closed {
            ToBridge::ExpireConference { id: app.next_id(), conference: self.name }
        } else {
            ToBridge::ExpireEndpoint { id: app.next_id(), conference: self.name, endpoint: self.pid }
        };
        conn.send(&msg);
    }
}

/// Take `pid` (participant or waiter) out of the room.
pub fn remove(app: &Arc<App>, r: &mut Room, pid: &str) -> Left {
    if r.waiting.remove(pid).is_some() {
        app.metrics.lobby_waiting.dec();
        r.notify_lobby();
    }
    let mut bridge = None;
    if let Some(p) = r.participants.remove(pid) {
        app.metrics.participants.dec();
        app.metrics
            .participants_by_region
            .with_label_values(&[crate::select::region_label(p.region.as_deref())])
            .dec();
        r.broadcast(&ServerMsg::ParticipantLeft { id: pid.to_string() }, None);
        bridge = p.bridge;
        if r.spotlight.as_deref() == Some(pid) {
            r.spotlight = None;
            r.broadcast_room();
        }
        // Keep a moderator on an open shard: promote the earliest participant. On a JWT shard
        // moderators come from tokens (or a grant), never automatically.
        if p.info.moderator
            && !r.participants.values().any(|p| p.info.moderator)
            && app.verifier.is_none()
            && let Some(first) = r.participants.values_mut().min_by_key(|p| p.seq)
        {
            first.info.moderator = true;
            let info = first.info.clone();
            r.broadcast(&ServerMsg::ParticipantUpdated { participant: info }, None);
            r.notify_lobby();
        }
        if r.participants.is_empty() {
            crate::recording::stop(app, r, None, RecordingStopReason::RoomEnded);
            // Nobody is left to admit the waiters.
            for w in std::mem::take(&mut r.waiting).into_values() {
                app.metrics.lobby_waiting.dec();
                let _ = w.tx.send(ServerMsg::LobbyDenied);
            }
            app.metrics.rooms.dec();
        }
    }
    let closed = !r.closed && r.close_if_empty();
    Left { name: r.name.clone(), pid: pid.to_string(), bridge, closed }
}

/// The connection closed or sent `leave`.
pub fn leave(app: &Arc<App>, room: &RoomRef, pid: &str) {
    let left = remove(app, &mut lock(room), pid);
    left.finish(app, room);
}

/// A frame from a connection that joined (or knocked on) `room`.
pub fn on_message(app: &Arc<App>, pid: &str, room: &RoomRef, tx: &Tx, msg: ClientMsg) {
    let after = in_room(app, pid, &mut lock(room), tx, msg);
    after.finish(app, room, pid, tx);
}

fn in_room(app: &Arc<App>, pid: &str, r: &mut Room, tx: &Tx, msg: ClientMsg) -> After {
    if r.closed {
        refuse(app, tx, ErrorCode::NotJoined, "not in a room");
        return After::Nothing;
    }
    let Some(me) = r.participants.get(pid) else {
        refuse(app, tx, ErrorCode::NotJoined, "waiting in the lobby");
        return After::Nothing;
    };
    let needs_moderator = matches!(
        msg,
        ClientMsg::Mute { .. }
            | ClientMsg::MuteAll { .. }
            | ClientMsg::Kick { .. }
            | ClientMsg::GrantModerator { .. }
            | ClientMsg::SetLobby { .. }
            | ClientMsg::LobbyAdmit { .. }
            | ClientMsg::LobbyDeny { .. }
            | ClientMsg::SetPassword { .. }
            | ClientMsg::SetRecording { .. }
            | ClientMsg::SetE2ee { .. }
            | ClientMsg::Spotlight { .. }
            | ClientMsg::EndMeeting
    );
    if needs_moderator && !me.info.moderator {
        refuse(app, tx, ErrorCode::NotModerator, "only moderators can do that");
        return After::Nothing;
    }
    let my_name = me.info.name.clone();
    match msg {
        msg @ (ClientMsg::Offer { .. }
        | ClientMsg::Answer { .. }
        | ClientMsg::Ice { .. }
        | ClientMsg::Constraints { .. }) => {
            return After::Relay { conference: r.name.clone(), bridge: me.bridge.clone(), msg };
        }
        ClientMsg::Chat { text, to } => chat::send(app, r, pid, my_name, tx, text, to),
        ClientMsg::MediaState { audio_muted, video_muted, screen } => {
            presence::media_state(r, pid, audio_muted, video_muted, screen)
        }
        ClientMsg::Profile { name, avatar } => presence::profile(r, pid, name, avatar),
        ClientMsg::RaiseHand { raised } => {
            let already = r.participants.get(pid).is_some_and(|p| p.info.hand_raised);
            if raised != already {
                r.hands_raised += 1;
                let order = raised.then_some(r.hands_raised);
                r.update(pid, |i| {
                    i.hand_raised = raised;
                    i.hand_order = order;
                });
            }
        }
        ClientMsg::Reaction { reaction } => reaction::send(r, pid, reaction),
        ClientMsg::EndMeeting => return reaction::end_meeting(app, r, my_name),
        ClientMsg::IceReport { bridge, outcome, candidate, turn_error } => {
            media::ice_report(app, r, pid, &bridge, outcome, candidate, turn_error)
        }
        ClientMsg::Mute { target, kind } => moderation::mute(app, r, tx, my_name, &target, kind),
        ClientMsg::MuteAll { kind } => moderation::mute_all(r, pid, my_name, kind),
        ClientMsg::Kick { target } => return moderation::kick(app, r, tx, my_name, &target),
        ClientMsg::GrantModerator { target } => moderation::grant_moderator(app, r, tx, &target),
        ClientMsg::SetPassword { password } => moderation::set_password(r, password),
        // The recorder cannot decode what the clients encrypt: no recording of an E2EE room.
        ClientMsg::SetRecording { recording: true } if r.e2ee => refuse(
            app,
            tx,
            ErrorCode::RecordingE2ee,
            "this room is end-to-end encrypted: it cannot be recorded",
        ),
        ClientMsg::SetRecording { recording } => crate::recording::set(app, r, pid, tx, my_name, recording),
        ClientMsg::SetE2ee { enabled } => moderation::set_e2ee(app, r, tx, enabled),
        ClientMsg::Spotlight { target } => moderation::spotlight(app, r, tx, target),
        ClientMsg::SetLobby { enabled } => lobby::set_enabled(app, r, enabled),
        ClientMsg::LobbyAdmit { id } => lobby::admit(app, r, tx, &id),
        ClientMsg::LobbyDeny { id } => lobby::deny(app, r, tx, &id),
        ClientMsg::Join { .. } | ClientMsg::Leave | ClientMsg::Ping => {}
    }
    After::Nothing
}
