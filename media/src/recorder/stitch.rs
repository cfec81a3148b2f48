//! One file for a recording in several segments. When a recording is interrupted (its
//! recorder lost, its conference moved to another bridge) each segment's recorder writes its
//! tracks in the segment's own directory and composes nothing (a handoff); the recorder of the
//! last segment composes `recording.webm` in the recording's directory from every segment's
//! tracks on the recording's one timeline. A gap between segments is an empty picture and
//! silence; a track that a lost recorder left open ends where the next segment says the
//! media stopped.
//!
//! Earlier segments are read from this recorder's directory (one volume, or a shared one) or,
//! with S3, fetched from the bucket: each manifest is awaited until its segment finished
//! (bounded), then its tracks fetched; everything fetched is removed afterwards. When an
//! earlier segment is nowhere to be found (another pod's volume), the last segment is
//! composed alone, as a recording in one segment is, and the log names what is missing.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use convene_proto::recorder::Interruption;
use tracing::{info, warn};

use super::compose::{self, Clip, Composer, Composition, OUTPUT, plan};
use super::manifest::Manifest;
use super::upload::Storage;

const MANIFEST: &str = "manifest.json";
/// How long to wait for a segment whose recorder was lost to say it finished (a SIGKILLed
/// one never does; one that lost only its connection to signaling does within seconds).
const LOST_WAIT: Duration = Duration::from_secs(10);

/// A segment's directory relative to the recording's: the recording's own for the first,
/// `segment-<n>` after.
pub fn segment_rel(n: u32) -> PathBuf {
    if n <= 1 { PathBuf::new() } else { PathBuf::from(format!("segment-{n}")) }
}

/// Every segment's clips on the recording's timeline (files relative to the recording's
/// directory), and the recording's length. `segments` in order.
pub fn clips(segments: &[Manifest]) -> (Vec<Clip>, u64) {
    let mut out = Vec::new();
    let mut total = 0;
    for (i, m) in segments.iter().enumerate() {
        // Where the next segment says this one's media stopped: the end of a track left open.
        let cut = segments
            .get(i + 1)
            .filter(|n| n.segment == m.segment + 1)
            .and_then(|n| n.continues.as_ref())
            .map(|l| l.interrupted_ms);
        for mut c in plan::clips(m, &segment_rel(m.segment)) {
            if c.stop_ms.is_none() {
                c.stop_ms = cut.map(|t| t.max(c.start_ms));
            }
            out.push(c);
        }
        total = total.max(plan::span_ms(m));
    }
    (out, total)
}

/// Where this recorder finds earlier segments.
#[derive(Debug, Clone)]
pub struct Stitcher {
    /// The recorder's recordings directory.
    pub root: PathBuf,
    /// The bucket, when recordings go to S3.
    pub storage: Option<Storage>,
    /// At most this long for an earlier segment to finish.
    pub wait: Duration,
}

impl Stitcher {
    /// Compose the whole recording whose last segment (`n` ≥ 2) is in `dir`; the result is
    /// recorded in that segment's manifest.
    pub async fn compose(&self, composer: &Composer, dir: &Path, n: u32) -> Composition {
        let Some(top) = dir.parent().filter(|_| n > 1) else {
            return composer.compose_recording(dir).await;
        };
        let own = match read(&dir.join(MANIFEST)) {
            Some(m) => m,
            None => return composer.compose_recording(dir).await,
        };
        let mut fetched = Vec::new();
        let mut segments = vec![own];
        let mut missing = Vec::new();
        for k in (1..n).rev() {
            let next = segments.last().filter(|m| m.segment == k + 1).cloned();
            match self.earlier(top, k, next.as_ref(), &mut fetched).await {
                Some(m) => segments.push(m),
                None => missing.push(k),
            }
        }
        segments.reverse();
        let c = if missing.is_empty() {
            self.compose_all(composer, top, dir, &segments).await
        } else {
            warn!(dir = %top.display(), ?missing, "earlier segments are not here: composing the last segment alone");
            composer.compose_recording(dir).await
        };
        self.cleanup(top, &fetched);
        c
    }

    async fn compose_all(
        &self,
        composer: &Composer,
        top: &Path,
        dir: &Path,
        segments: &[Manifest],
    ) -> Composition {
        let (clips, total) = clips(segments);
        let (clips, absent): (Vec<Clip>, Vec<Clip>) =
            clips.into_iter().partition(|c| top.join(&c.file).is_file());
        if !absent.is_empty() {
            let files: Vec<_> = absent.iter().map(|c| c.file.display().to_string()).collect();
            warn!(dir = %top.display(), ?files, "track files of earlier segments are missing (a lost recorder's)");
        }
        let file = format!("../{OUTPUT}");
        let mut c = match composer.compose_clips(top, &clips, total).await {
            Ok(o) => compose::composed(top, file, total, &o),
            Err(e) => compose::failed(top, total, e.to_string()),
        };
        c.segments = segments.iter().map(|m| m.segment).collect();
        if let (Some(s), Some(_)) = (&self.storage, &c.file) {
            let key = format!("{}/{OUTPUT}", s.prefix(&self.root, top));
            match s.put_file(&top.join(OUTPUT), &key).await {
                Ok(()) => info!(%key, "the whole recording's file is in the bucket"),
                Err(e) => {
                    warn!("{e:#}");
                    c.error = Some(format!("{e:#}"));
                    c.file = None;
                }
            }
        }
        compose::record_in(dir, &c);
        c
    }

    /// Segment `k` of the recording in `top`, once finished (or after the wait), with its
    /// tracks here; `None` when neither this directory nor the bucket has it. `next`: the
    /// segment after it, which says whether its recorder was lost.
    async fn earlier(
        &self,
        top: &Path,
        k: u32,
        next: Option<&Manifest>,
        fetched: &mut Vec<PathBuf>,
    ) -> Option<Manifest> {
        let link = next.and_then(|m| m.continues.as_ref());
        let lost = link.is_some_and(|l| l.reason == Interruption::RecorderLost);
        let dir = top.join(segment_rel(k));
        let path = dir.join(MANIFEST);
        let deadline = Instant::now() + if lost { LOST_WAIT.min(self.wait) } else { self.wait };
        let local = path.is_file();
        let prefix = self.storage.as_ref().map(|s| s.prefix(&self.root, &dir));
        let m = loop {
            let m = match (&self.storage, &prefix, local) {
                (Some(s), Some(p), false) => match s.fetch(&format!("{p}/{MANIFEST}"), &path).await {
                    Ok(true) => read(&path),
                    Ok(false) => None,
                    Err(e) => {
                        warn!("{e:#}");
                        None
                    }
                },
                _ => read(&path),
            };
            if m.as_ref().is_some_and(|m| m.stopped_wall_ms.is_some()) || Instant::now() >= deadline {
                break m;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        if !local && path.is_file() {
            fetched.push(path.clone());
        }
        let m = m?;
        if let (Some(s), Some(p), false) = (&self.storage, &prefix, local) {
            if let (true, Some(next)) = (lost, next) {
                // A lost pod's parts: complete its uploads once it cannot any more.
                let began = next.started_wall_ms + link.map_or(0, |l| l.interrupted_ms + l.gap_ms);
                if let Err(e) = s.recover_abandoned(&self.root, &dir, abandoned_after(began, self.wait)).await
                {
                    warn!(dir = %dir.display(), "recovering the lost segment's uploads: {e:#}");
                }
            }
            for (_, t) in m.tracks() {
                let to = dir.join(&t.file);
                match s.fetch(&format!("{p}/{}", t.file), &to).await {
                    Ok(true) => fetched.push(to),
                    Ok(false) => {}
                    Err(e) => warn!("{e:#}"),
                }
            }
        }
        Some(m)
    }

    /// With S3, the local copies of what was fetched or composed go (the pod's scratch space).
    fn cleanup(&self, top: &Path, fetched: &[PathBuf]) {
        if self.storage.is_none() {
            return;
        }
        for f in fetched.iter().cloned().chain([top.join(OUTPUT)]) {
            let _ = std::fs::remove_file(&f);
            let mut d = f.parent();
            while let Some(p) = d.filter(|p| p.starts_with(&self.root) && *p != self.root) {
                if std::fs::remove_dir(p).is_err() {
                    break;
                }
                d = p.parent();
            }
        }
    }
}

/// When a segment's lost recorder, replaced at `began_wall_ms`, has had `wait` to finish its
/// uploads itself (as an instant of this clock).
pub fn abandoned_after(began_wall_ms: u64, wait: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let left = (began_wall_ms + wait.as_millis() as u64).saturating_sub(now_ms);
    Instant::now() + Duration::from_millis(left)
}

fn read(path: &Path) -> Option<Manifest> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::SourceKind;
    use crate::recorder::Codec;
    use crate::recorder::manifest::TrackStop;
    use convene_proto::recorder::Continuation;

    fn stop(wall_ms: u64) -> TrackStop {
        TrackStop { wall_ms, media_ms: 0, frames: 1, gaps: vec![] }
    }

    #[test]
    fn segments_share_one_timeline() {
        let t0 = 1_000_000;
        // Segment 1: its recorder was SIGKILLed at 10 s, alice's camera left open.
        let mut s1 = Manifest::new("room", "rec-1", t0);
        s1.start_track("alice", "alice-v0", SourceKind::Camera, Codec::Vp8, "alice-v0.webm", 1, t0 + 500);
        let a = s1.start_track("alice", "alice-a0", SourceKind::Audio, Codec::Opus, "alice-a0.webm", 2, t0);
        s1.stop_track(&a, stop(t0 + 4_000));
        // Segment 2 from 12 s (the media stopped at 10 s), stopped cleanly at 20 s.
        let mut s2 = Manifest::new("room", "rec-2", t0);
        let lost = Continuation { reason: Interruption::RecorderLost, interrupted_wall_ms: t0 + 10_000 };
        s2.continue_from(2, &lost, t0 + 12_000);
        let v = s2.start_track(
            "alice",
            "alice-v0",
            SourceKind::Camera,
            Codec::Vp8,
            "alice-v0.webm",
            3,
            t0 + 12_000,
        );
        s2.stop_track(&v, stop(t0 + 20_000));
        s2.stopped_wall_ms = Some(t0 + 20_000);

        let (c, total) = clips(&[s1.clone(), s2.clone()]);
        assert_eq!(total, 20_000);
        let mut spans: Vec<_> =
            c.iter().map(|c| (c.file.display().to_string(), c.start_ms, c.stop_ms)).collect();
        spans.sort();
        assert_eq!(
            spans,
            vec![
                ("alice-a0.webm".to_string(), 0, Some(4_000)),
                ("alice-v0.webm".to_string(), 500, Some(10_000)),
                ("segment-2/alice-v0.webm".to_string(), 12_000, Some(20_000)),
            ],
            "the open track ends where segment 2 says the media stopped; segment 2's files are in its directory"
        );
        // A last segment alone keeps an open track open (the planner runs it to the end).
        let (c, _) = clips(&[s1]);
        assert_eq!(c.iter().find(|c| c.file.ends_with("alice-v0.webm")).unwrap().stop_ms, None);
        assert_eq!(segment_rel(1), PathBuf::new());
        assert_eq!(segment_rel(3), PathBuf::from("segment-3"));
    }
}
