//! Allocation per receiver: which source each of its receive slots carries — video by last-N
//! (pins, then speech order, then join order) over the sources sending now, screens before
//! cameras; audio from the conference's audible set (`slots::Audible`) — and which simulcast
//! layer of each video source (its constraints and bandwidth estimate). A hidden receiver
//! (a recorder) wants every source: all audio, in join order, and video by pins then join
//! order, on slots sized for a whole room. Sources keep their
//! slot while wanted (`slots::assign`); a video slot switches on the new source's keyframe.
use std::collections::HashSet;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Mid, Rid};

use super::endpoint::Feed;
use super::{EpId, Sfu, lastn, simulcast, slots};
use crate::control::{ReceiverConstraints, SourceKind};

/// One video source a receiver wants: (endpoint, m-line, layer infos, layer rids, max height).
type Wanted = (EpId, Mid, Vec<simulcast::LayerInfo>, Vec<Option<Rid>>, u32);

impl Sfu {
    /// Re-decide a receiver's video and audio slots.
    pub(super) fn allocate(&mut self, id: EpId, now: Instant) {
        self.allocate_video(id, now);
        self.allocate_audio(id, now);
    }

    /// Re-decide which video sources (last-N) and layers (constraints, BWE) a receiver gets,
    /// and open more video slots if it wants more than it has. Costs about the most video
    /// slots it may have, not the conference size (candidates are walked lazily and the walk
    /// stops when that many or last-N are found).
    pub(super) fn allocate_video(&mut self, id: EpId, now: Instant) {
        let Some(r) = self.endpoints.get(&id) else {
            return;
        };
        let Some(conf) = self.conferences.get(&r.conference) else {
            return;
        };
        let open: Vec<usize> = r
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.media == MediaKind::Video && s.open_mid().is_some())
            .map(|(i, _)| i)
            .collect();
        let total = r.slots.iter().filter(|s| s.media == MediaKind::Video).count();
        let cap = self.cfg.slot_cap(MediaKind::Video, r.hidden);
        let c = &r.constraints;
        let limit = if c.last_n < 0 { usize::MAX } else { c.last_n as usize };
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut endpoints = 0;
        let mut exhausted = true;
        let candidates =
            lastn::candidates(&r.name, &c.pinned, speech_order(r.hidden, conf), &conf.member_names, |e| {
                conf.by_name.contains_key(e)
            });
        for name in candidates {
            if endpoints >= limit || wanted.len() >= cap {
                exhausted = false;
                break;
            }
            let Some(src) = conf.by_name.get(name).and_then(|e| self.endpoints.get(e)) else {
                continue;
            };
            let before = wanted.len();
            for kind in [SourceKind::Screen, SourceKind::Camera] {
                for t in src.tracks_in.iter().filter(|t| t.source_kind == kind && t.is_active(now)) {
                    let max_h = max_height_for(c, &t.name, &src.name);
                    if max_h == 0 || wanted.len() >= cap {
                        continue;
                    }
                    let rids = t.layers.iter().map(|l| l.rid).collect();
                    wanted.push((src.id, t.mid, t.layer_infos(now), rids, max_h));
                }
            }
            if wanted.len() > before {
                endpoints += 1;
            }
        }
        let want_n = wanted.len();
        wanted.truncate(open.len());
        // Worth re-deciding when another source starts: a slot is free, or more can open.
        let hungry = exhausted && endpoints < limit && (want_n < open.len() || total < cap);
        let sources: Vec<(&[simulcast::LayerInfo], u32)> =
            wanted.iter().map(|(_, _, l, _, h)| (l.as_slice(), *h)).collect();
        let chosen = simulcast::allocate(&sources, r.estimate_bps);
        let desired: u64 =
            wanted.iter().map(|(_, _, l, _, _)| l.iter().map(|x| x.bitrate_bps).max().unwrap_or(0)).sum();
        let feeds: Vec<Feed> = wanted
            .iter()
            .zip(chosen)
            .filter_map(|((src, mid, _, rids, _), ch)| {
                ch.map(|k| Feed { src: *src, mid: *mid, rid: rids[k] })
            })
            .collect();
        let held: Vec<Option<(EpId, Mid)>> =
            open.iter().map(|&i| r.slots[i].target.map(|f| f.track())).collect();
        let tracks: Vec<(EpId, Mid)> = feeds.iter().map(Feed::track).collect();
        let placed = slots::assign(&held, &tracks);
        let conference = r.conference.clone();
        if let Some(conf) = self.conferences.get_mut(&conference) {
            if hungry {
                conf.hungry.insert(id);
            } else {
                conf.hungry.remove(&id);
            }
        }
        let mut kf = Vec::new();
        for (&i, t) in open.iter().zip(placed) {
            let target = t.and_then(|t| feeds.iter().find(|f| f.track() == t).copied());
            self.set_target(id, i, target);
            if let Some(s) = self.endpoints.get(&id).and_then(|r| r.slots.get(i))
                && let Some(tg) = s.target
                && s.current != Some(tg)
            {
                kf.push((tg.src, tg.mid, tg.rid));
            }
        }
        if desired > 0
            && self.cfg.initial_bwe.is_some()
            && let Some(r) = self.endpoints.get_mut(&id)
        {
            // Ask the estimator to probe above what the best layers need (payload bitrate
            // excludes RTP/SRTP overhead), so a receiver that can take the top layer gets it.
            let want = (desired.saturating_mul(3) / 2).max(300_000);
            r.rtc.bwe().set_bitrate(Bitrate::kbps(300), Bitrate::bps(want));
        }
        for (src, mid, rid) in kf {
            self.request_keyframe(src, mid, rid, now);
        }
        self.grow_slots(id, MediaKind::Video, want_n);
    }

    /// Re-decide whose audio a receiver's audio slots carry: the conference's audible set but
    /// itself (more slots open if it wants more than it has). A slot switches on the new
    /// source's next packet.
    pub(super) fn allocate_audio(&mut self, id: EpId, _now: Instant) {
        let Some(r) = self.endpoints.get(&id) else {
            return;
        };
        let Some(conf) = self.conferences.get(&r.conference) else {
            return;
        };
        let open: Vec<usize> = r
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.media == MediaKind::Audio && s.open_mid().is_some())
            .map(|(i, _)| i)
            .collect();
        let cap = self.cfg.slot_cap(MediaKind::Audio, r.hidden);
        let audio_of = |n: &str| {
            let e = self.endpoints.get(conf.by_name.get(n)?)?;
            let t = e.tracks_in.iter().find(|t| t.kind == MediaKind::Audio)?;
            Some((e.id, t.mid))
        };
        let names = slots::audio_wanted(&r.name, r.hidden, &conf.audible, &conf.member_names, cap, |n| {
            audio_of(n).is_some()
        });
        let mut wanted: Vec<(EpId, Mid)> = names.into_iter().filter_map(audio_of).collect();
        let want_n = wanted.len();
        wanted.truncate(open.len());
        let held: Vec<Option<(EpId, Mid)>> =
            open.iter().map(|&i| r.slots[i].target.map(|f| f.track())).collect();
        let placed = slots::assign(&held, &wanted);
        for (&i, t) in open.iter().zip(placed) {
            self.set_target(id, i, t.map(|(src, mid)| Feed { src, mid, rid: None }));
        }
        self.grow_slots(id, MediaKind::Audio, want_n);
    }

    /// Re-decide the audio of every member of a conference (its audible set changed).
    pub(super) fn allocate_audio_all(&mut self, conference: &str, now: Instant) {
        let members = self.conferences.get(conference).map(|c| c.receivers()).unwrap_or_default();
        for m in members {
            self.allocate_audio(m, now);
        }
    }

    /// Re-decide the video of every member of a conference (speech order changed).
    pub(super) fn allocate_video_all(&mut self, conference: &str, now: Instant) {
        let members = self.conferences.get(conference).map(|c| c.receivers()).unwrap_or_default();
        for m in members {
            self.allocate_video(m, now);
        }
    }

    /// A video source of `src` started (or resumed) sending: the receivers that may want it
    /// now are those already listening to it (for its layers) and the hungry ones (a free
    /// video slot and nobody else to show) — not the whole conference.
    pub(super) fn allocate_for_new_video(&mut self, src: EpId, mid: Mid, now: Instant) {
        let Some(conference) = self.endpoints.get(&src).map(|e| e.conference.clone()) else {
            return;
        };
        let mut ids: HashSet<EpId> =
            self.routes.get(&(src, mid)).map(|v| v.iter().map(|(r, _)| *r).collect()).unwrap_or_default();
        if let Some(c) = self.conferences.get(&conference) {
            ids.extend(c.hungry.iter().copied());
        }
        ids.remove(&src);
        for id in ids {
            self.allocate_video(id, now);
        }
    }

    /// Set what slot `i` of receiver `rx` should carry; with nothing, forwarding on it stops at
    /// once. Keeps the routes (source → slots) in step.
    pub(super) fn set_target(&mut self, rx: EpId, i: usize, target: Option<super::endpoint::Feed>) {
        let Some(slot) = self.endpoints.get_mut(&rx).and_then(|r| r.slots.get_mut(i)) else {
            return;
        };
        if slot.target == target {
            return;
        }
        let before: Vec<(EpId, Mid)> = slot.tracks().collect();
        slot.target = target;
        if target.is_none() && slot.current.is_some() {
            slot.current = None;
            self.slot_changed(rx);
        }
        self.fix_routes(rx, i, &before);
    }

    /// After slot `i` of `rx` changed its current or target: move it between route lists.
    pub(super) fn fix_routes(&mut self, rx: EpId, i: usize, before: &[(EpId, Mid)]) {
        let after: Vec<(EpId, Mid)> = self
            .endpoints
            .get(&rx)
            .and_then(|r| r.slots.get(i))
            .map(|s| s.tracks().collect())
            .unwrap_or_default();
        for t in before.iter().filter(|t| !after.contains(t)) {
            if let Some(v) = self.routes.get_mut(t) {
                v.retain(|x| *x != (rx, i));
                if v.is_empty() {
                    self.routes.remove(t);
                }
            }
        }
        for t in after.iter().filter(|t| !before.contains(t)) {
            self.routes.entry(*t).or_default().push((rx, i));
        }
    }

    /// A slot of `rx` changed what it carries: the client is told at the next flush.
    pub(super) fn slot_changed(&mut self, rx: EpId) {
        if let Some(r) = self.endpoints.get_mut(&rx)
            && !r.slots_dirty
        {
            r.slots_dirty = true;
            self.slots_changed.push(rx);
        }
    }
}

/// The speech order a receiver's last-N follows: none for a hidden one (a recorder wants
/// every source; its slots need not move when the speaker changes).
fn speech_order(hidden: bool, conf: &super::conference::Conference) -> &[String] {
    if hidden { &[] } else { conf.speaker.history() }
}

fn max_height_for(c: &ReceiverConstraints, source_name: &str, endpoint: &str) -> u32 {
    c.max_height
        .get(source_name)
        .or_else(|| c.max_height.get(endpoint))
        .copied()
        .unwrap_or(c.default_max_height)
}
