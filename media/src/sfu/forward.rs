//! Media to receivers: each frame a source sends is written to every receiver that gets that
//! source (and layer), with RTP time kept continuous across layer switches; keyframe requests
//! go back to the sender, rate-limited per layer.
use std::time::Instant;

use str0m::media::{KeyframeRequestKind, MediaData, MediaKind, Mid, Rid};
use tracing::debug;

use super::control;
use super::endpoint::vp8_keyframe_height;
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
        let mut kf_requests: Vec<(EpId, Mid, Option<Rid>)> = Vec::new();
        if kind == MediaKind::Video && !data.contiguous {
            // Loss the sender could not repair: the decoder needs a fresh keyframe.
            kf_requests.push((id, data.mid, data.rid));
        }
        let pname = p.name.clone();
        let Some(conf) = self.conferences.get_mut(&p.conference) else {
            return;
        };
        let mut speaker_changed = None;
        let audio_level = data.ext_vals.audio_level;
        let voice = data.ext_vals.voice_activity.unwrap_or(false);
        if kind == MediaKind::Audio
            && let Some(level) = audio_level
        {
            speaker_changed = conf.speaker.observe(&pname, level, now);
        }
        let audio_ok = conf.members.len() <= self.cfg.audio_all_max || conf.loudest.contains(&pname);
        for &rid in &conf.members {
            if rid == id {
                continue;
            }
            let Some(r) = self.endpoints.get_mut(&rid) else {
                continue;
            };
            let Some(t) = r.tracks_out.iter_mut().find(|t| t.src == id && t.src_mid == data.mid) else {
                continue;
            };
            let Some(mid) = t.open_mid() else { continue };
            let switched = if kind == MediaKind::Audio {
                if !audio_ok {
                    continue;
                }
                false
            } else {
                let (d, cur) = router::decide(t.current, t.target, data.rid, keyframe);
                if cur != t.current && cur.is_some() && t.current.is_some() {
                    self.counters.layer_switches += 1;
                }
                t.current = cur;
                match d {
                    Decision::Forward { switched } => switched,
                    Decision::Drop => continue,
                    Decision::NeedKeyframe => {
                        kf_requests.push((id, data.mid, data.rid));
                        continue;
                    }
                }
            };
            let time = t.rewrite_time(data.time, switched, now);
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
                self.dirty.push(rid);
            }
        }
        if let Some(speaker) = speaker_changed {
            let conference = conf.name.clone();
            let members = conf.members.clone();
            self.control_out.push_back(control::dominant_speaker(conference, speaker));
            for m in members {
                self.allocate_layers(m, now);
            }
        } else if new_layer {
            let members = conf.members.clone();
            for m in members {
                self.allocate_layers(m, now);
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
