//! Allocation per receiver: which sources' video it gets (last-N, pins, speech order) and
//! which simulcast layer of each (its constraints and bandwidth estimate); and, in large
//! conferences, whose audio is forwarded at all (the loudest few).
use std::collections::HashMap;
use std::time::Instant;

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Rid};

use super::{EpId, Sfu, lastn, simulcast};
use crate::control::{ReceiverConstraints, SourceKind};

/// (track index, layer infos, layer rids, max height) of one video source of a receiver.
type SourceLayers = (usize, Vec<simulcast::LayerInfo>, Vec<Option<Rid>>, u32);

impl Sfu {
    /// Re-decide which sources (last-N) and layers (constraints, BWE) a receiver gets.
    pub(super) fn allocate_layers(&mut self, id: EpId, now: Instant) {
        let Some(r) = self.endpoints.get(&id) else {
            return;
        };
        let Some(conf) = self.conferences.get(&r.conference) else {
            return;
        };
        let c = &r.constraints;
        let selected =
            lastn::select(&r.name, c.last_n, &c.pinned, conf.speaker.history(), &conf.member_names);
        let rank_of: HashMap<&str, usize> = selected.iter().enumerate().map(|(i, e)| (*e, i)).collect();
        // Video tracks in priority order: by selection rank, screens before cameras.
        let mut order: Vec<(usize, usize, u8)> = Vec::new(); // (track index, rank, kind rank)
        for (i, t) in r.tracks_out.iter().enumerate() {
            if t.kind != MediaKind::Video {
                continue;
            }
            if let Some(&rank) = rank_of.get(t.src_endpoint.as_str()) {
                order.push((i, rank, u8::from(t.source_kind != SourceKind::Screen)));
            }
        }
        order.sort_by_key(|(_, rank, k)| (*rank, *k));
        let infos: Vec<SourceLayers> = order
            .iter()
            .filter_map(|(i, _, _)| {
                let t = &r.tracks_out[*i];
                let src = self.endpoints.get(&t.src)?;
                let tin = src.tracks_in.iter().find(|x| x.mid == t.src_mid)?;
                let max_h = max_height_for(c, &t.name, &t.src_endpoint);
                Some((*i, tin.layer_infos(now), tin.layers.iter().map(|l| l.rid).collect(), max_h))
            })
            .collect();
        let sources: Vec<(&[simulcast::LayerInfo], u32)> =
            infos.iter().map(|(_, l, _, h)| (l.as_slice(), *h)).collect();
        let chosen = simulcast::allocate(&sources, r.estimate_bps);
        let desired: u64 =
            infos.iter().map(|(_, l, _, _)| l.iter().map(|x| x.bitrate_bps).max().unwrap_or(0)).sum();
        let mut targets: Vec<Option<Option<Rid>>> = vec![None; r.tracks_out.len()];
        for ((i, _, rids, _), ch) in infos.iter().zip(chosen) {
            targets[*i] = ch.map(|k| rids[k]);
        }
        let mut kf = Vec::new();
        let Some(r) = self.endpoints.get_mut(&id) else {
            return;
        };
        for (t, target) in r.tracks_out.iter_mut().zip(targets) {
            if t.kind != MediaKind::Video {
                continue;
            }
            if t.target != target {
                t.target = target;
            }
            if let Some(tg) = target
                && t.current != Some(tg)
                && t.open_mid().is_some()
            {
                kf.push((t.src, t.src_mid, tg));
            }
            if target.is_none() {
                t.current = None;
            }
        }
        if desired > 0 && self.cfg.initial_bwe.is_some() {
            // Ask the estimator to probe above what the best layers need (payload bitrate
            // excludes RTP/SRTP overhead), so a receiver that can take the top layer gets it.
            let want = (desired.saturating_mul(3) / 2).max(300_000);
            r.rtc.bwe().set_bitrate(Bitrate::kbps(300), Bitrate::bps(want));
        }
        for (src, mid, rid) in kf {
            self.request_keyframe(src, mid, rid, now);
        }
    }

    /// Re-pick the loudest speakers of conferences too large to forward every audio stream.
    pub(super) fn update_loudest(&mut self, now: Instant) {
        let (all_max, loudest) = (self.cfg.audio_all_max, self.cfg.audio_loudest);
        for c in self.conferences.values_mut().filter(|c| c.members.len() > all_max) {
            c.update_loudest(loudest, now);
        }
    }
}

fn max_height_for(c: &ReceiverConstraints, source_name: &str, endpoint: &str) -> u32 {
    c.max_height
        .get(source_name)
        .or_else(|| c.max_height.get(endpoint))
        .copied()
        .unwrap_or(c.default_max_height)
}
