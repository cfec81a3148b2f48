//! Media to receivers, packet by packet (str0m's RTP mode: nothing is depacketized or
//! re-packetized). Each RTP packet a source sends goes to the receive slots listening to it
//! (the routes); a slot forwards one source layer at a time and rewrites sequence number, RTP
//! time and VP8 picture ids so its stream stays continuous across switches (`rewrite.rs`); a
//! video slot switches source or layer at the first packet of a keyframe of the new one. The
//! payload is shared by every receiver (`Arc<[u8]>`; str0m patches the VP8 descriptor while
//! serialising). Keyframe requests go back to the sender, rate-limited per layer. Audio feeds
//! the speaker detection and the conference's audible set.
use std::time::Instant;

use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};
use tracing::debug;

use super::codec::{starts_keyframe, vp8_keyframe_height, vp8_wide_picture_id};
use super::control;
use super::counters::DropReason;
use super::endpoint::{Feed, Track};
use super::rewrite::{self, Vp8Ids};
use super::router::{self, Decision};
use super::{EpId, Sfu};

/// Packets queued towards one receive slot at most (~3 s of the top simulcast layer).
pub const MAX_EGRESS_QUEUE: usize = 1000;

impl Sfu {
    pub(super) fn on_rtp(&mut self, id: EpId, pkt: RtpPacket, now: Instant) {
        let Some(p) = self.endpoints.get_mut(&id) else {
            return;
        };
        let Some((mid, rid)) = p.rtc.direct_api().stream_rx(&pkt.header.ssrc).map(|s| (s.mid(), s.rid()))
        else {
            return;
        };
        let pt_in = pkt.header.payload_type;
        let Some(params) = p.rtc.codec_config().find(|c| c.pt() == pt_in).copied() else {
            return;
        };
        let codec = params.spec().codec;
        let vp8 = (codec == Codec::Vp8).then(|| Vp8Descriptor::parse(&pkt.payload).ok()).flatten();
        let keyframe = starts_keyframe(codec, &pkt.payload, vp8.as_ref());
        let height = if keyframe && codec == Codec::Vp8 { vp8_keyframe_height(&pkt.payload) } else { None };
        let Some(track) = p.track_in(mid) else {
            return;
        };
        let kind = track.kind;
        let new_layer = track.observe(rid, pkt.payload.len(), height, now);
        if keyframe && kind == MediaKind::Video {
            track.keyframe_asks.keyframe(rid);
        }
        if new_layer && kind == MediaKind::Video {
            // Allocate before routing: receivers that want the source (or layer) now can start
            // on this very packet, often the keyframe it begins with, instead of the next one.
            self.allocate_for_new_video(id, mid, now);
        }
        let Some(p) = self.endpoints.get_mut(&id) else {
            return;
        };
        let mut kf_requests: Vec<(EpId, Mid, Option<Rid>)> = Vec::new();
        let Some(conf) = self.conferences.get_mut(&p.conference) else {
            return;
        };
        let mut speaker_changed = None;
        let mut audible_changed = false;
        let ext = &pkt.header.ext_vals;
        if kind == MediaKind::Audio {
            if let Some(level) = ext.audio_level {
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
        // What every receiver's copy carries over: the payload (shared), marker, audio level
        // and orientation. str0m adds the receiver's own mid, abs-send-time and TWCC number.
        let ext_out = ExtensionValues {
            audio_level: ext.audio_level,
            voice_activity: ext.voice_activity,
            video_orientation: ext.video_orientation,
            ..Default::default()
        };
        let rewrite_in = rewrite::In {
            seq: *pkt.seq_no,
            time: pkt.time.numer(),
            clock_rate: params.spec().clock_rate.get(),
            vp8: vp8.as_ref().map(|d| Vp8Ids {
                picture_id: d.picture_id().map(|id| (id, vp8_wide_picture_id(&pkt.payload))),
                tl0_pic_idx: d.tl0_pic_idx(),
            }),
        };
        let key = (id, mid);
        if let Some(subs) = self.routes.remove(&key) {
            let this = Feed { src: id, mid, rid };
            let mut moved: Vec<(EpId, usize, Vec<Track>)> = Vec::new();
            for &(rx, si) in &subs {
                let Some(r) = self.endpoints.get_mut(&rx) else {
                    continue;
                };
                let Some(slot) = r.slots.get_mut(si) else {
                    continue;
                };
                let Some(out_mid) = slot.open_mid() else { continue };
                // Nothing for a receiver that cannot take it now (str0m would queue it).
                if !r.connected || r.disconnected_since.is_some() {
                    continue;
                }
                let (d, cur) = router::decide(slot.current, slot.target, this, keyframe);
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
                        kf_requests.push((id, mid, rid));
                        continue;
                    }
                };
                let Some(out) = slot.rewrite.rewrite(rewrite_in, switched, now) else {
                    continue;
                };
                let pt_out = match slot.pt_map {
                    Some((src, i, o)) if src == id && i == pt_in => o,
                    _ => {
                        let Some(o) = r.rtc.codec_config().match_params(params).map(|p| p.pt()) else {
                            continue;
                        };
                        slot.pt_map = Some((id, pt_in, o));
                        o
                    }
                };
                let mut write =
                    RtpWrite::new(pt_out, out.seq.into(), out.time, pkt.timestamp, pkt.payload.clone())
                        .marker(pkt.header.marker)
                        .nackable(kind == MediaKind::Video)
                        .ext_vals(ext_out.clone());
                if let Some(d) = &vp8 {
                    let mut patch = d.patch();
                    if let Some(id) = out.picture_id {
                        patch = patch.picture_id(id);
                    }
                    if let Some(t) = out.tl0_pic_idx {
                        patch = patch.tl0_pic_idx(t);
                    }
                    match patch.build() {
                        Ok(p) => write = write.vp8_patch(p),
                        Err(e) => debug!("VP8 descriptor not rewritten: {e}"),
                    }
                }
                let mut api = r.rtc.direct_api();
                let Some(stream) = api.stream_tx_by_mid(out_mid, None) else {
                    continue;
                };
                // str0m's send queue is unbounded: a receiver that falls behind loses packets
                // here rather than growing the bridge's memory.
                if stream.queue_info().is_some_and(|q| q.packet_count() >= MAX_EGRESS_QUEUE) {
                    self.counters.count_drop(DropReason::EgressQueue);
                    continue;
                }
                stream.write_rtp(write);
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
        if !t.keyframe_asks.may_ask(rid, now, gap) {
            return;
        }
        // PLI: every WebRTC sender answers it (FIR is the older, heavier request).
        let mut api = e.rtc.direct_api();
        let Some(stream) = api.stream_rx_by_mid(mid, rid) else {
            debug!("keyframe request: no receive stream for {mid} {rid:?}");
            return;
        };
        stream.request_keyframe(KeyframeRequestKind::Pli);
        self.counters.keyframe_requests += 1;
        self.mark_dirty(ep);
    }
}
