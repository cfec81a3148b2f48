//! Joining: token and guest rules, room creation, password, then either the lobby or the room.
use std::sync::Arc;

use crate::auth::Identity;
use crate::protocol::{ErrorCode, PROTOCOL_VERSION, ParticipantInfo, ServerMsg};
use crate::room::{Participant, Room, RoomRef, Waiter, lobby, media, refuse};
use crate::state::{App, Tx, lock};

const MAX_NAME: usize = 64;

/// Name and avatar already cleaned ([`clean_name`], [`clean_avatar`]).
pub struct JoinRequest {
    pub display: Option<String>,
    pub avatar: Option<String>,
    pub token: Option<String>,
    pub password: Option<String>,
    pub audio_muted: bool,
    pub video_muted: bool,
    /// The participant's region from the edge's header (`routing.regionHeader`), if any.
    pub region: Option<String>,
}

pub fn clean_name(s: Option<String>) -> Option<String> {
    let s = s?;
    let s: String = s.trim().chars().filter(|c| !c.is_control()).take(MAX_NAME).collect();
    (!s.is_empty()).then_some(s)
}

pub fn clean_avatar(s: Option<String>) -> Option<String> {
    s.filter(|a| a.len() <= 1024 && (a.starts_with("https://") || a.starts_with("http://")))
}

enum Outcome {
    Joined { moderator: bool },
    Waiting,
    Refused,
}

/// Returns the room when the connection is now in it (joined or waiting in the lobby).
pub fn join_room(app: &Arc<App>, pid: &str, name: &str, tx: &Tx, req: JoinRequest) -> Option<RoomRef> {
    let s = &app.settings;
    let identity: Option<Identity> = match (&app.verifier, req.token.as_deref().filter(|t| !t.is_empty())) {
        (Some(v), Some(token)) => match v.verify(token, &s.domain, name) {
            Ok(id) => Some(id),
            Err(e) => {
                app.metrics.auth_failures.with_label_values(&[e.reason()]).inc();
                tracing::info!(room = %name, reason = e.reason(), "token refused");
                refuse(app, tx, ErrorCode::AuthFailed, format!("token refused: {}", e.reason()));
                return None;
            }
        },
        (Some(_), None) if !s.allow_guests => {
            app.metrics.auth_failures.with_label_values(&[crate::metrics::reason::GUEST_FORBIDDEN]).inc();
            refuse(app, tx, ErrorCode::AuthRequired, "this server requires a token");
            return None;
        }
        _ => None,
    };
    loop {
        let room = app.room_entry(name);
        let outcome = {
            let mut r = lock(&room);
            if r.closed {
                None
            } else {
                let outcome = enter_locked(app, &mut r, pid, tx, &req, identity.as_ref());
                // A refused first joiner leaves no room behind.
                let closed = r.close_if_empty();
                Some((outcome, closed))
            }
        };
        let Some((outcome, closed)) = outcome else {
            // Emptied and closed while we looked it up: take it out and try again.
            app.forget_room(name, &room);
            continue;
        };
        if closed {
            app.forget_room(name, &room);
        }
        return match outcome {
            Outcome::Joined { moderator } => {
                tracing::info!(room = %name, participant = %pid, token = identity.is_some(), moderator, "joined");
                media::spawn_setup(app, name, pid, false);
                Some(room)
            }
            Outcome::Waiting => Some(room),
            Outcome::Refused => None,
        };
    }
}

fn enter_locked(
    app: &Arc<App>,
    r: &mut Room,
    pid: &str,
    tx: &Tx,
    req: &JoinRequest,
    identity: Option<&Identity>,
) -> Outcome {
    let s = &app.settings;
    let exists = !r.participants.is_empty();
    if !exists && identity.is_none() && !s.allow_anonymous_room_creation {
        app.metrics.auth_failures.with_label_values(&[crate::metrics::reason::ROOM_CREATION]).inc();
        refuse(
            app,
            tx,
            ErrorCode::RoomCreationForbidden,
            "this room does not exist yet; a host with a token must open it",
        );
        return Outcome::Refused;
    }
    // Who moderates (as Jitsi with token auth, where authenticated users are owners): a token
    // holder is a moderator unless the token's `moderator` claim says otherwise; guests never
    // become moderators automatically on a JWT shard; on an open shard (no JWT) the first
    // joiner of a room is.
    let moderator = match identity {
        Some(i) => i.moderator.unwrap_or(true),
        None => app.verifier.is_none() && !exists,
    };
    // Token moderators skip the password and the lobby.
    let token_moderator = identity.is_some() && moderator;
    let fixed_identity = identity.is_some_and(|i| i.name.is_some());
    let claim = app.routing.as_ref().and_then(|r| r.region_claim.as_deref());
    let region = crate::select::participant_region(
        req.region.as_deref(),
        claim.and_then(|c| identity?.claims.get(c)?.as_str()),
        app.settings.region.as_deref(),
    );
    let display = identity
        .and_then(|i| i.name.clone())
        .or_else(|| req.display.clone())
        .unwrap_or_else(|| format!("Guest {}", &pid[..4]));
    let avatar = identity.and_then(|i| i.avatar.clone()).or_else(|| req.avatar.clone());
    let info = ParticipantInfo {
        id: pid.to_string(),
        name: display,
        avatar,
        moderator,
        audio_muted: req.audio_muted,
        video_muted: req.video_muted,
        screen: false,
        hand_raised: false,
        hand_order: None,
    };
    if exists {
        if let Some(pw) = &r.password
            && !token_moderator
        {
            match &req.password {
                None => {
                    refuse(app, tx, ErrorCode::PasswordRequired, "this room is locked with a password");
                    return Outcome::Refused;
                }
                Some(p) if !bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), pw.as_bytes())) => {
                    refuse(app, tx, ErrorCode::WrongPassword, "wrong password");
                    return Outcome::Refused;
                }
                _ => {}
            }
        }
        if r.lobby && !token_moderator {
            lobby::knock(app, r, pid, Waiter { info, tx: tx.clone(), fixed_identity, region });
            return Outcome::Waiting;
        }
    }
    admit(app, r, info, tx.clone(), fixed_identity, region);
    Outcome::Joined { moderator }
}

/// Put a participant in the room and tell everyone.
pub fn admit(
    app: &App,
    r: &mut Room,
    info: ParticipantInfo,
    tx: Tx,
    fixed_identity: bool,
    region: Option<String>,
) {
    r.seq += 1;
    let pid = info.id.clone();
    let _ = tx.send(ServerMsg::Joined {
        v: PROTOCOL_VERSION,
        you: info.clone(),
        room: r.info(),
        participants: r.list(),
        ice_servers: media::ice_servers(app, &pid),
        web: app.settings.web.clone(),
    });
    if info.moderator && !r.waiting.is_empty() {
        let _ = tx.send(ServerMsg::Lobby { waiting: r.waiting_list() });
    }
    if r.participants.is_empty() {
        app.metrics.rooms.inc();
    }
    let seq = r.seq;
    let joined = ServerMsg::ParticipantJoined { participant: info.clone() };
    app.metrics
        .participants_by_region
        .with_label_values(&[crate::select::region_label(region.as_deref())])
        .inc();
    r.participants
        .insert(pid.clone(), Participant { info, tx, seq, bridge: None, fixed_identity, region, ice_due: 0 });
    // After the insert: a recording's participant list includes them.
    r.broadcast(&joined, Some(&pid));
    app.metrics.joins.inc();
    app.metrics.participants.inc();
}
