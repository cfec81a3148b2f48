//! `/ws`: one task per browser. The first frame must be `join`; afterwards every frame is
//! checked against the room state (joined, waiting in the lobby, or gone).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use convene_proto::control::{self, FromBridge, ToBridge};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::auth::Identity;
use crate::protocol::{self, ClientMsg, ErrorCode, MuteKind, PROTOCOL_VERSION, ParticipantInfo, ServerMsg};
use crate::state::{App, Inner, Participant, Room, Tx, Waiter};
use crate::turn::{self, IceServer};

const MAX_NAME: usize = 64;
const MAX_CHAT: usize = 4096;
/// Messages queued for one client beyond which it is disconnected (slow consumer).
const MAX_QUEUED: usize = 2048;
const RATE: f64 = 50.0;
const BURST: f64 = 200.0;

pub async fn handle(app: Arc<App>, socket: WebSocket) {
    app.metrics.ws_connections.inc();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if rx.len() > MAX_QUEUED {
                // A client this far behind cannot keep up: close; the app reconnects and rejoins.
                tracing::warn!(queued = rx.len(), "slow client: closing its connection");
                let _ = sink.close().await;
                break;
            }
            let last = matches!(m, ServerMsg::Kicked { .. } | ServerMsg::LobbyDenied);
            if sink.send(WsMessage::text(m.to_json())).await.is_err() {
                break;
            }
            if last {
                let _ = sink.close().await;
                break;
            }
        }
    });
    let _ = tx.send(ServerMsg::Hello { v: PROTOCOL_VERSION });
    let pid = new_id();
    let mut room: Option<String> = None;
    // Token bucket: RATE messages per second, bursts of BURST.
    let mut budget = BURST;
    let mut refilled = std::time::Instant::now();
    while let Some(Ok(frame)) = stream.next().await {
        let now = std::time::Instant::now();
        budget = (budget + now.duration_since(refilled).as_secs_f64() * RATE).min(BURST);
        refilled = now;
        if budget < 1.0 {
            refuse(&app, &tx, ErrorCode::RateLimited, "too many messages; slow down");
            continue;
        }
        budget -= 1.0;
        match frame {
            WsMessage::Text(t) => match protocol::parse(t.as_str()) {
                Ok(ClientMsg::Leave) => break,
                Ok(m) => on_message(&app, &pid, &mut room, &tx, m),
                Err(e) => refuse(&app, &tx, ErrorCode::BadRequest, e),
            },
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
    if let Some(r) = room {
        leave(&app, &r, &pid);
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    app.metrics.ws_connections.dec();
}

fn new_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

fn refuse(app: &App, tx: &Tx, code: ErrorCode, message: impl Into<String>) {
    app.metrics.refusals.with_label_values(&[code.as_str()]).inc();
    let _ = tx.send(ServerMsg::error(code, message));
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn ice_servers(app: &App, user: &str) -> Vec<IceServer> {
    match &app.settings.turn {
        Some(t) => turn::ice_servers(t, user, now_unix()),
        None => Vec::new(),
    }
}

fn clean_name(s: Option<String>) -> Option<String> {
    let s = s?;
    let s: String = s.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    (!s.is_empty()).then_some(s)
}

fn clean_avatar(s: Option<String>) -> Option<String> {
    s.filter(|a| a.len() <= 1024 && (a.starts_with("https://") || a.starts_with("http://")))
}

fn on_message(app: &Arc<App>, pid: &str, room: &mut Option<String>, tx: &Tx, msg: ClientMsg) {
    match msg {
        ClientMsg::Join {
            v,
            room: name,
            name: display,
            avatar,
            token,
            password,
            audio_muted,
            video_muted,
        } => {
            if room.is_some() {
                return refuse(app, tx, ErrorCode::AlreadyJoined, "already joined");
            }
            if v != PROTOCOL_VERSION {
                return refuse(
                    app,
                    tx,
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {v} is not supported (1)"),
                );
            }
            let Some(name) = protocol::normalize_room(&name) else {
                return refuse(app, tx, ErrorCode::InvalidRoom, "room names are 1-64 of a-z 0-9 - _ .");
            };
            let join = JoinRequest {
                display: clean_name(display),
                avatar: clean_avatar(avatar),
                token,
                password,
                audio_muted,
                video_muted,
            };
            if join_room(app, pid, &name, tx, join) {
                *room = Some(name);
            }
        }
        ClientMsg::Ping => {
            let _ = tx.send(ServerMsg::Pong);
        }
        ClientMsg::Leave => {}
        other => {
            let Some(name) = room.clone() else {
                return refuse(app, tx, ErrorCode::NotJoined, "join a room first");
            };
            in_room(app, pid, &name, tx, other);
        }
    }
}

struct JoinRequest {
    display: Option<String>,
    avatar: Option<String>,
    token: Option<String>,
    password: Option<String>,
    audio_muted: bool,
    video_muted: bool,
}

/// Returns whether the connection is now in the room (joined or waiting in the lobby).
fn join_room(app: &Arc<App>, pid: &str, name: &str, tx: &Tx, req: JoinRequest) -> bool {
    let s = &app.settings;
    let identity: Option<Identity> = match (&app.verifier, req.token.as_deref().filter(|t| !t.is_empty())) {
        (Some(v), Some(token)) => match v.verify(token, &s.domain, name) {
            Ok(id) => Some(id),
            Err(e) => {
                app.metrics.auth_failures.with_label_values(&[e.reason()]).inc();
                tracing::info!(room = %name, reason = e.reason(), "token refused");
                refuse(app, tx, ErrorCode::AuthFailed, format!("token refused: {}", e.reason()));
                return false;
            }
        },
        (Some(_), None) if !s.allow_guests => {
            app.metrics.auth_failures.with_label_values(&["guest_forbidden"]).inc();
            refuse(app, tx, ErrorCode::AuthRequired, "this server requires a token");
            return false;
        }
        _ => None,
    };
    let mut inner = app.lock();
    let exists = inner.rooms.get(name).is_some_and(|r| !r.participants.is_empty());
    if !exists && identity.is_none() && !s.allow_anonymous_room_creation {
        drop(inner);
        app.metrics.auth_failures.with_label_values(&["room_creation"]).inc();
        refuse(
            app,
            tx,
            ErrorCode::RoomCreationForbidden,
            "this room does not exist yet; a host with a token must open it",
        );
        return false;
    }
    let token_moderator = identity.as_ref().is_some_and(|i| i.moderator);
    let fixed_identity = identity.as_ref().is_some_and(|i| i.name.is_some());
    let display = identity
        .as_ref()
        .and_then(|i| i.name.clone())
        .or(req.display)
        .unwrap_or_else(|| format!("Guest {}", &pid[..4]));
    let avatar = identity.as_ref().and_then(|i| i.avatar.clone()).or(req.avatar);
    let first_joiner_moderator = !exists && (identity.is_some() || s.allow_anonymous_room_creation);
    let moderator = token_moderator
        || (first_joiner_moderator
            && identity.as_ref().is_none_or(|i| i.moderator || app.verifier.is_none()));
    let info = ParticipantInfo {
        id: pid.to_string(),
        name: display,
        avatar,
        moderator,
        audio_muted: req.audio_muted,
        video_muted: req.video_muted,
        screen: false,
        hand_raised: false,
    };
    if exists {
        let r = inner.rooms.get_mut(name).expect("checked above");
        if let Some(pw) = &r.password
            && !token_moderator
        {
            match &req.password {
                None => {
                    drop(inner);
                    refuse(app, tx, ErrorCode::PasswordRequired, "this room is locked with a password");
                    return false;
                }
                Some(p) if !bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), pw.as_bytes())) => {
                    drop(inner);
                    refuse(app, tx, ErrorCode::WrongPassword, "wrong password");
                    return false;
                }
                _ => {}
            }
        }
        if r.lobby && !token_moderator {
            r.waiting.insert(pid.to_string(), Waiter { info, tx: tx.clone(), fixed_identity });
            r.notify_lobby();
            let _ = tx.send(ServerMsg::LobbyWaiting);
            app.update_gauges(&inner);
            return true;
        }
    }
    admit(app, &mut inner, name, info, tx.clone(), fixed_identity);
    drop(inner);
    tracing::info!(room = %name, participant = %pid, token = identity.is_some(), moderator, "joined");
    spawn_media(app, name, pid, false);
    true
}

/// Put a participant in the room (creating it) and tell everyone.
fn admit(app: &Arc<App>, inner: &mut Inner, name: &str, info: ParticipantInfo, tx: Tx, fixed_identity: bool) {
    let lobby_default = app.settings.lobby_by_default;
    let r = inner.rooms.entry(name.to_string()).or_insert_with(|| Room {
        name: name.to_string(),
        lobby: lobby_default,
        ..Default::default()
    });
    r.seq += 1;
    let pid = info.id.clone();
    let _ = tx.send(ServerMsg::Joined {
        v: PROTOCOL_VERSION,
        you: info.clone(),
        room: r.info(),
        participants: r.list(),
        ice_servers: ice_servers(app, &pid),
        web: app.settings.web.clone(),
    });
    r.broadcast(&ServerMsg::ParticipantJoined { participant: info.clone() }, None);
    if info.moderator && !r.waiting.is_empty() {
        let _ = tx.send(ServerMsg::Lobby { waiting: r.waiting_list() });
    }
    let seq = r.seq;
    r.participants.insert(pid, Participant { info, tx, seq, bridge: None, fixed_identity });
    app.metrics.joins.inc();
    app.update_gauges(inner);
}

fn spawn_media(app: &Arc<App>, room: &str, pid: &str, migration: bool) {
    tokio::spawn(setup_media(app.clone(), room.to_string(), pid.to_string(), migration));
}

/// Allocate the participant's endpoint on the conference's bridge (choosing one if needed)
/// and tell the client to (re)negotiate.
pub async fn setup_media(app: Arc<App>, room: String, pid: String, migration: bool) {
    for attempt in 0..20u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let chosen = {
            let mut inner = app.lock();
            let Some(r) = inner.rooms.get(&room) else { return };
            if !r.participants.contains_key(&pid) {
                return;
            }
            let chosen = app.bridge_for(&mut inner, &room);
            if let Some((b, _)) = &chosen
                && let Some(br) = inner.bridges.get_mut(b)
            {
                br.recent += 1;
            }
            chosen
        };
        let Some((bridge, conn)) = chosen else {
            app.metrics.allocation_failures.inc();
            if attempt == 0 || attempt == 19 {
                send_to(
                    &app,
                    &room,
                    &pid,
                    ServerMsg::error(ErrorCode::NoBridge, "no media bridge is available; retrying"),
                );
            }
            continue;
        };
        let req =
            ToBridge::AllocateEndpoint { id: app.next_id(), conference: room.clone(), endpoint: pid.clone() };
        match conn.request(req).await {
            Some(FromBridge::Allocated { .. }) => {
                let mut inner = app.lock();
                let Some(p) = inner.rooms.get_mut(&room).and_then(|r| r.participants.get_mut(&pid)) else {
                    drop(inner);
                    conn.send(&ToBridge::ExpireEndpoint {
                        id: app.next_id(),
                        conference: room,
                        endpoint: pid,
                    });
                    return;
                };
                p.bridge = Some(bridge.clone());
                let _ =
                    p.tx.send(ServerMsg::Media { bridge, migration, ice_servers: ice_servers(&app, &pid) });
                return;
            }
            Some(FromBridge::Error { code: control::ErrorCode::Conflict, .. }) => {
                // A stale endpoint of ours (e.g. after a control reconnect): free it and retry.
                conn.request(ToBridge::ExpireEndpoint {
                    id: app.next_id(),
                    conference: room.clone(),
                    endpoint: pid.clone(),
                })
                .await;
            }
            other => {
                app.metrics.allocation_failures.inc();
                tracing::warn!(%room, %bridge, reply = ?other.as_ref().map(control::to_json), "allocation failed");
                let mut inner = app.lock();
                if let Some(r) = inner.rooms.get_mut(&room)
                    && r.bridge.as_deref() == Some(bridge.as_str())
                    && r.participants.values().all(|p| p.bridge.as_deref() != Some(bridge.as_str()))
                {
                    r.bridge = None;
                }
            }
        }
    }
    send_to(&app, &room, &pid, ServerMsg::error(ErrorCode::NoBridge, "could not allocate media"));
}

fn send_to(app: &App, room: &str, pid: &str, msg: ServerMsg) {
    let inner = app.lock();
    if let Some(p) = inner.rooms.get(room).and_then(|r| r.participants.get(pid)) {
        let _ = p.tx.send(msg);
    }
}

pub fn leave(app: &Arc<App>, name: &str, pid: &str) {
    let mut inner = app.lock();
    let bridges = &inner.bridges;
    let _ = bridges;
    let Some(r) = inner.rooms.get_mut(name) else { return };
    if r.waiting.remove(pid).is_some() {
        r.notify_lobby();
    }
    let mut expire = None;
    if let Some(p) = r.participants.remove(pid) {
        r.broadcast(&ServerMsg::ParticipantLeft { id: pid.to_string() }, None);
        expire = p.bridge.clone();
        // Keep a moderator in open rooms: promote the earliest participant.
        if p.info.moderator
            && !r.participants.values().any(|p| p.info.moderator)
            && (app.verifier.is_none() || app.settings.allow_anonymous_room_creation)
            && let Some(first) = r.participants.values_mut().min_by_key(|p| p.seq)
        {
            first.info.moderator = true;
            let info = first.info.clone();
            r.broadcast(&ServerMsg::ParticipantUpdated { participant: info }, None);
            r.notify_lobby();
        }
    }
    let empty = r.participants.is_empty();
    if empty {
        for w in r.waiting.values() {
            let _ = w.tx.send(ServerMsg::LobbyDenied);
        }
        inner.rooms.remove(name);
    }
    if let Some(b) = expire
        && let Some(conn) = inner.bridges.get(&b).and_then(|b| b.conn.clone())
    {
        let msg = if empty {
            ToBridge::ExpireConference { id: app.next_id(), conference: name.to_string() }
        } else {
            ToBridge::ExpireEndpoint {
                id: app.next_id(),
                conference: name.to_string(),
                endpoint: pid.to_string(),
            }
        };
        conn.send(&msg);
    }
    app.update_gauges(&inner);
}

fn in_room(app: &Arc<App>, pid: &str, name: &str, tx: &Tx, msg: ClientMsg) {
    let mut inner = app.lock();
    let Some(r) = inner.rooms.get_mut(name) else {
        drop(inner);
        return refuse(app, tx, ErrorCode::NotJoined, "not in a room");
    };
    let Some(me) = r.participants.get(pid) else {
        drop(inner);
        return refuse(app, tx, ErrorCode::NotJoined, "waiting in the lobby");
    };
    let moderator = me.info.moderator;
    let my_name = me.info.name.clone();
    let bridge_conn = |inner: &Inner| {
        let b = inner.rooms.get(name)?.participants.get(pid)?.bridge.clone()?;
        inner.bridges.get(&b)?.conn.clone()
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
    );
    if needs_moderator && !moderator {
        drop(inner);
        return refuse(app, tx, ErrorCode::NotModerator, "only moderators can do that");
    }
    match msg {
        ClientMsg::Offer { sdp, sources } => {
            let Some(conn) = bridge_conn(&inner) else {
                drop(inner);
                return refuse(app, tx, ErrorCode::MediaError, "no bridge yet: wait for the media message");
            };
            drop(inner);
            let id = app.next_id();
            let req =
                ToBridge::Offer { id, conference: name.to_string(), endpoint: pid.to_string(), sdp, sources };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(FromBridge::Error { message, .. }) = conn.request(req).await {
                    let _ = tx.send(ServerMsg::error(
                        ErrorCode::MediaError,
                        format!("bridge refused the offer: {message}"),
                    ));
                }
            });
        }
        ClientMsg::Answer { id, sdp } => {
            if let Some(conn) = bridge_conn(&inner) {
                conn.send(&ToBridge::Answer {
                    offer_id: id,
                    conference: name.to_string(),
                    endpoint: pid.to_string(),
                    sdp,
                });
            }
        }
        ClientMsg::Ice { candidate } => {
            if let Some(conn) = bridge_conn(&inner)
                && !candidate.is_empty()
                && candidate.len() < 1024
            {
                conn.send(&ToBridge::IceCandidate {
                    id: app.next_id(),
                    conference: name.to_string(),
                    endpoint: pid.to_string(),
                    candidate,
                });
            }
        }
        ClientMsg::Constraints { constraints } => {
            if let Some(conn) = bridge_conn(&inner) {
                conn.send(&ToBridge::ReceiverConstraints {
                    id: app.next_id(),
                    conference: name.to_string(),
                    endpoint: pid.to_string(),
                    constraints,
                });
            }
        }
        ClientMsg::Chat { text, to } => {
            let text: String = text.chars().take(MAX_CHAT).collect();
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
                    None => {
                        drop(inner);
                        refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
                    }
                },
                None => r.broadcast(&msg, None),
            }
        }
        ClientMsg::MediaState { audio_muted, video_muted, screen } => {
            update(r, pid, |i| {
                i.audio_muted = audio_muted;
                i.video_muted = video_muted;
                i.screen = screen;
            });
        }
        ClientMsg::Profile { name: n, avatar } => {
            if r.participants.get(pid).is_some_and(|p| !p.fixed_identity) {
                let n = clean_name(n);
                let avatar = clean_avatar(avatar);
                update(r, pid, |i| {
                    if let Some(n) = n {
                        i.name = n;
                    }
                    i.avatar = avatar;
                });
            }
        }
        ClientMsg::RaiseHand { raised } => update(r, pid, |i| i.hand_raised = raised),
        ClientMsg::Mute { target, kind } => match r.participants.get(&target) {
            Some(p) => {
                let _ = p.tx.send(ServerMsg::MutedBy { by: my_name, kind });
                update(r, &target, |i| set_muted(i, kind));
            }
            None => {
                drop(inner);
                refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
            }
        },
        ClientMsg::MuteAll { kind } => {
            let others: Vec<String> = r.participants.keys().filter(|k| k.as_str() != pid).cloned().collect();
            for t in others {
                if let Some(p) = r.participants.get(&t) {
                    let _ = p.tx.send(ServerMsg::MutedBy { by: my_name.clone(), kind });
                }
                update(r, &t, |i| set_muted(i, kind));
            }
        }
        ClientMsg::Kick { target } => {
            let Some(p) = r.participants.get(&target) else {
                drop(inner);
                return refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
            };
            let _ = p.tx.send(ServerMsg::Kicked { by: my_name });
            drop(inner);
            leave(app, name, &target);
        }
        ClientMsg::GrantModerator { target } => {
            if !r.participants.contains_key(&target) {
                drop(inner);
                return refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
            }
            update(r, &target, |i| i.moderator = true);
            r.notify_lobby();
        }
        ClientMsg::SetLobby { enabled } => {
            r.lobby = enabled;
            let info = r.info();
            r.broadcast(&ServerMsg::Room { room: info }, None);
            if !enabled {
                let waiting: Vec<String> = r.waiting.keys().cloned().collect();
                for w in waiting {
                    admit_waiter(app, &mut inner, name, &w);
                }
            }
        }
        ClientMsg::LobbyAdmit { id } => {
            if !r.waiting.contains_key(&id) {
                drop(inner);
                return refuse(app, tx, ErrorCode::UnknownParticipant, "nobody with that id is waiting");
            }
            admit_waiter(app, &mut inner, name, &id);
        }
        ClientMsg::LobbyDeny { id } => match r.waiting.remove(&id) {
            Some(w) => {
                let _ = w.tx.send(ServerMsg::LobbyDenied);
                r.notify_lobby();
                app.update_gauges(&inner);
            }
            None => {
                drop(inner);
                refuse(app, tx, ErrorCode::UnknownParticipant, "nobody with that id is waiting");
            }
        },
        ClientMsg::SetPassword { password } => {
            r.password = password.filter(|p| !p.is_empty()).map(|p| p.chars().take(128).collect());
            let info = r.info();
            r.broadcast(&ServerMsg::Room { room: info }, None);
        }
        ClientMsg::SetRecording { recording } => {
            r.recording = recording;
            let info = r.info();
            r.broadcast(&ServerMsg::Room { room: info }, None);
        }
        ClientMsg::Join { .. } | ClientMsg::Leave | ClientMsg::Ping => {}
    }
}

fn set_muted(i: &mut ParticipantInfo, kind: MuteKind) {
    match kind {
        MuteKind::Video => i.video_muted = true,
        MuteKind::Audio => i.audio_muted = true,
    }
}

fn update(r: &mut Room, pid: &str, f: impl FnOnce(&mut ParticipantInfo)) {
    let Some(p) = r.participants.get_mut(pid) else { return };
    f(&mut p.info);
    let info = p.info.clone();
    r.broadcast(&ServerMsg::ParticipantUpdated { participant: info }, None);
}

fn admit_waiter(app: &Arc<App>, inner: &mut Inner, name: &str, id: &str) {
    let Some(w) = inner.rooms.get_mut(name).and_then(|r| r.waiting.remove(id)) else { return };
    admit(app, inner, name, w.info, w.tx, w.fixed_identity);
    if let Some(r) = inner.rooms.get(name) {
        r.notify_lobby();
    }
    spawn_media(app, name, id, false);
}
