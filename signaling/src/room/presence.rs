//! Presence a participant sets about themselves: mute/screen state, name and avatar.
use crate::room::Room;
use crate::room::join::{clean_avatar, clean_name};

pub fn media_state(r: &mut Room, pid: &str, audio_muted: bool, video_muted: bool, screen: bool) {
    r.update(pid, |i| {
        i.audio_muted = audio_muted;
        i.video_muted = video_muted;
        i.screen = screen;
    });
}

/// Ignored when the token fixed the identity.
pub fn profile(r: &mut Room, pid: &str, name: Option<String>, avatar: Option<String>) {
    if r.participants.get(pid).is_some_and(|p| !p.fixed_identity) {
        let name = clean_name(name);
        let avatar = clean_avatar(avatar);
        r.update(pid, |i| {
            if let Some(n) = name {
                i.name = n;
            }
            i.avatar = avatar;
        });
    }
}
