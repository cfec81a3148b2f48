//! Media to receivers: each frame a source sends goes to the receive slots listening to it
//! (the routes), each slot forwarding one source layer at a time with RTP time kept continuous
//! across switches (str0m numbers the packets of a slot's stream itself, so sequence numbers
//! are continuous too); a video slot switches source or layer on a keyframe of the new one.
//! Keyframe requests go back to the sender, rate-limited per layer. Audio feeds the speaker
//! detection and the conference's audible set.
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use tracing::debug;

use super::control;
use super::endpoint::{Feed, Track, vp8_keyframe_height};
use super::router::{self, Decision};
use super::{EpId, Sfu};

impl Sfu {
    pub(super) fn on_media(&mut self, id: EpId, data: MediaData, now: Instant) {
        let Some(p) = self.endpoints.get_mut(&id) else {
            return;
        };
        let keyframe = data.is_keyframe();
        let height = if keyframe { vp8_keyframe_height(&data.data) } else { None };
        let Some(track) = p.track_in(data.mid) else {
            return;
        };
        let kind = track.kind;
        let new_layer = track.observe(data.rid, data.data.len(), height, now);
        if new_layer && kind == MediaKind::Video {
            // Allocate before routing: receivers that want the source (or layer) now can start
            // on this very frame, often the keyframe it begins with, instead of the next one.
            self.allocate_for_new_video(id, data.mid, now);
        }
        let Some(p) = self.endpoints.get_mut(&id) else {
            return;
        };
        let mut kf_requests: Vec<(EpId, Mid, Option<Rid>)> = Vec::new();
        if kind == MediaKind::Video && !data.contiguous {
            // Loss the sender could not repair: the decoder needs a fresh keyframe.
            kf_requests.push((id, data.mid, data.rid));
        }
        let Some(conf) = self.conferences.get_mut(&p.conference) else {
            return;
        };
        let mut speaker_changed = None;
        let mut audible_changed = false;
        let audio_level = data.ext_vals.audio_level;
        let voice = data.ext_vals.voice_activity.unwrap_or(false);
        if kind == MediaKind::Audio {
            if let Some(level) = audio_level {
                speaker_changed = conf.speaker.observe(&p.name, level, now);
            }
            if !conf.audible.contains(&p.name) {
                let score = conf.speaker.score(&p.name, now);
                let speaker = &conf.speaker;
                let capacity = self.cfg.audio_slots + 1;
                audible_changed =
                    conf.audible.consider(&p.name, score, capacity, now, |m| speaker.score(m, now));
            }
        }
        let conference =
            (speaker_changed.is_some() || audible_changed || new_layer).then(|| conf.name.clone());
        let key = (id, data.mid);
        if let Some(subs) = self.routes.remove(&key) {
            let this = Feed { src: id, mid: data.mid, rid: data.rid };
            // Any audio packet can start a stream; video needs a keyframe.
            let starts = keyframe || kind == MediaKind::Audio;
            let mut moved: Vec<(EpId, usize, Vec<Track>)> = Vec::new();
            for &(rx, si) in &subs {
                let Some(r) = self.endpoints.get_mut(&rx) else {
                    continue;
                };
                let Some(slot) = r.slots.get_mut(si) else {
                    continue;
                };
                let Some(mid) = slot.open_mid() else { continue };
                let (d, cur) = router::decide(slot.current, slot.target, this, starts);
                if cur != slot.current {
                    let same_track = cur.map(|f| f.track()) == slot.current.map(|f| f.track());
                    if same_track && kind == MediaKind::Video && cur.is_some() {
                        self.counters.layer_switches += 1;
                    }
                    let before: Vec<Track> = slot.tracks().collect();
                    slot.current = cur;
                    if !same_track && !r.slots_dirty {
                        r.slots_dirty = true;
                        self.slots_changed.push(rx);
                    }
                    moved.push((rx, si, before));
                }
                let switched = match d {
                    Decision::Forward { switched } => switched,
                    Decision::Drop => continue,
                    Decision::NeedKeyframe => {
                        kf_requests.push((id, data.mid, data.rid));
                        continue;
                    }
                };
                let Some(slot) = r.slots.get_mut(si) else { continue };
                let time = slot.rewrite_time(data.time, switched, now);
                let Some(mut writer) = r.rtc.writer(mid) else {
                    continue;
                };
                let Some(pt) = writer.match_params(data.params) else {
                    continue;
                };
                if let Some(level) = audio_level {
                    writer = writer.audio_level(level, voice);
                }
                if let Err(e) = writer.write(pt, data.network_time, time, data.data.clone()) {
                    debug!(endpoint = %r.name, "write failed: {e}");
                    continue;
                }
                if !r.dirty {
                    r.dirty = true;
                    self.dirty.push(rx);
                }
            }
            self.routes.insert(key, subs);
            for (rx, si, before) in moved {
                self.fix_routes(rx, si, &before);
            }
        }
        if let Some(conference) = conference {
            if let Some(speaker) = speaker_changed {
                self.control_out.push_back(control::dominant_speaker(conference.clone(), speaker));
                // Speech order changed: everyone's last-N may.
                self.allocate_video_all(&conference, now);
            }
            if audible_changed {
                self.allocate_audio_all(&conference, now);
            }
        }
        for (ep, mid, rid) in kf_requests {
            self.request_keyframe(ep, mid, rid, now);
        }
    }

    pub(super) fn request_keyframe(&mut self, ep: EpId, mid: Mid, rid: Option<Rid>, now: Instant) {
        let gap = self.cfg.keyframe_min_gap;
        let Some(e) = self.endpoints.get_mut(&ep) else {
            return;
        };
        let Some(t) = e.track_in(mid) else { return };
        if !t.may_request_keyframe(rid, now, gap) {
            return;
        }
        let Some(mut w) = e.rtc.writer(mid) else {
            return;
        };
        let kind = if w.is_request_keyframe_possible(KeyframeRequestKind::Pli) {
            KeyframeRequestKind::Pli
        } else {
            KeyframeRequestKind::Fir
        };
        match w.request_keyframe(rid, kind) {
            Ok(()) => {
                self.counters.keyframe_requests += 1;
                self.mark_dirty(ep);
            }
            Err(e) => debug!("keyframe request failed: {e}"),
        }
    }
}
