//! Moderator actions: mute one or all, kick, grant moderator, password lock, end-to-end
//! encryption flag, spotlight (recording: `crate::recording`).
//! The caller has checked that the sender is a moderator.
use crate::protocol::{ErrorCode, MuteKind, ParticipantInfo, ServerMsg};
use crate::room::{After, Room, refuse, remove};
use std::sync::Arc;

use crate::state::{App, Tx};

fn set_muted(i: &mut ParticipantInfo, kind: MuteKind) {
    match kind {
        MuteKind::Video => i.video_muted = true,
        MuteKind::Audio => i.audio_muted = true,
    }
}

pub fn mute(app: &App, r: &mut Room, tx: &Tx, by: String, target: &str, kind: MuteKind) {
    match r.participants.get(target) {
        Some(p) => {
            let _ = p.tx.send(ServerMsg::MutedBy { by, kind });
            r.update(target, |i| set_muted(i, kind));
        }
        None => refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant"),
    }
}

/// Everyone but the sender.
pub fn mute_all(r: &mut Room, pid: &str, by: String, kind: MuteKind) {
    let others: Vec<String> = r.participants.keys().filter(|k| k.as_str() != pid).cloned().collect();
    for t in others {
        if let Some(p) = r.participants.get(&t) {
            let _ = p.tx.send(ServerMsg::MutedBy { by: by.clone(), kind });
        }
        r.update(&t, |i| set_muted(i, kind));
    }
}

/// The target is told, then removed; their connection closes after `kicked`.
pub fn kick(app: &Arc<App>, r: &mut Room, tx: &Tx, by: String, target: &str) -> After {
    let Some(p) = r.participants.get(target) else {
        refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
        return After::Nothing;
    };
    let _ = p.tx.send(ServerMsg::Kicked { by });
    After::Left(remove(app, r, target))
}

pub fn grant_moderator(app: &App, r: &mut Room, tx: &Tx, target: &str) {
    if !r.participants.contains_key(target) {
        return refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
    }
    r.update(target, |i| i.moderator = true);
    r.notify_lobby();
}

/// `None` or empty unlocks.
pub fn set_password(r: &mut Room, password: Option<String>) {
    r.password = password.filter(|p| !p.is_empty()).map(|p| p.chars().take(128).collect());
    r.broadcast_room();
}

/// Mark the room end-to-end encrypted (or not); refused while a recording runs, which could
/// not decode the media from then on.
pub fn set_e2ee(app: &App, r: &mut Room, tx: &Tx, enabled: bool) {
    if enabled && r.recording.is_some() {
        refuse(
            app,
            tx,
            ErrorCode::RecordingE2ee,
            "stop the recording before turning on end-to-end encryption",
        );
        return;
    }
    if r.e2ee != enabled {
        r.e2ee = enabled;
        r.broadcast_room();
    }
}

/// Put a participant on everyone's stage, or nobody.
pub fn spotlight(app: &App, r: &mut Room, tx: &Tx, target: Option<String>) {
    if let Some(t) = &target
        && !r.participants.contains_key(t)
    {
        refuse(app, tx, ErrorCode::UnknownParticipant, "no such participant");
        return;
    }
    if r.spotlight != target {
        r.spotlight = target;
        r.broadcast_room();
    }
}
