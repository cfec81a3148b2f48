//! The pure half of composition: track clips on the recording's timeline → one ffmpeg
//! invocation as data (inputs, the `-filter_complex` graph, output options, and the label
//! files it reads). No I/O, no clock: unit-tested without ffmpeg.
//!
//! The layout is recomputed at every instant a track starts or stops (the timeline is cut into
//! intervals at those instants): the people present (anyone with an audio or camera track
//! running) share a grid of 16:9 tiles that reflows with their count; while a screen share
//! runs, it takes the stage (the frame minus a bottom strip) and the tiles move to the strip.
//! Each tile is the participant's camera, or a plain tile while the camera is off; every tile
//! carries the participant's name (or endpoint id). A camera input is decoded once and scaled
//! once per tile size it ever needs; its position and visibility over time are `t`
//! expressions of one overlay per size (sums of half-open `gte(t,a)*lt(t,b)` windows, flat so
//! hours of joins and leaves do not nest), so every branch of the graph consumes frames in
//! step and nothing is buffered ahead.
//!
//! Timeline: a clip's file starts at 0 at its `start_ms` (absolute recording time, so clips of
//! several segments can be handed over together). Video is shifted with `setpts`, audio with
//! `aresample=async=1` (fills the file's own holes with silence, so its gaps stay gaps) then
//! `adelay`; all audio is summed by `amix` with `normalize=0` (a voice is as loud as in its
//! track, whatever the number of tracks) over a silent bed as long as the recording, which
//! also fixes the output's length.
//!
//! Nothing a user typed reaches the graph: names are written to label files (named by index)
//! that `drawtext` reads with `expansion=none` (no `%{…}` expansion); the font path is config
//! and must be plain ([`check_font_path`]); input files are `-i` arguments, not graph text.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::control::SourceKind;
use crate::recorder::manifest::Manifest;

/// One track file on the recording's timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// Whose (endpoint id): tiles are per participant.
    pub participant: String,
    /// Display name; the endpoint id is shown without one.
    pub name: Option<String>,
    /// As ffmpeg opens it (relative to the directory ffmpeg runs in).
    pub file: PathBuf,
    pub kind: SourceKind,
    /// Absolute recording time (ms) of the file's time zero.
    pub start_ms: u64,
    /// Absolute recording time the track stopped; `None`: unknown (a crash), to the end.
    pub stop_ms: Option<u64>,
}

impl Clip {
    fn end_ms(&self, total_ms: u64) -> u64 {
        self.stop_ms.unwrap_or(total_ms).min(total_ms)
    }
}

/// Every track of a manifest as clips, files relative to the manifest's directory joined to
/// `prefix` (empty for ffmpeg running in that directory; `segment-2` and the like when
/// segments are stitched).
pub fn clips(m: &Manifest, prefix: &std::path::Path) -> Vec<Clip> {
    let mut out = Vec::new();
    for (id, p) in &m.participants {
        for t in &p.tracks {
            let stop_ms = t.stop_ms.or(t.media_ms.map(|d| t.start_ms + d));
            out.push(Clip {
                participant: id.clone(),
                name: p.name.clone(),
                file: prefix.join(&t.file),
                kind: t.kind,
                start_ms: t.start_ms,
                stop_ms,
            });
        }
    }
    out
}

/// The recording's length: start to the clean stop, or to the last track's end (a crash, or a
/// track stopping after the stop was stamped).
pub fn span_ms(m: &Manifest) -> u64 {
    let stopped = m.stopped_wall_ms.map(|s| s.saturating_sub(m.started_wall_ms)).unwrap_or(0);
    let last = m
        .tracks()
        .map(|(_, t)| t.stop_ms.or(t.media_ms.map(|d| t.start_ms + d)).unwrap_or(t.start_ms))
        .max()
        .unwrap_or(0);
    stopped.max(last)
}

/// How the output looks and is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanOptions {
    /// Output height; the width is 16:9 of it.
    pub height: u32,
    pub fps: u32,
    /// A TrueType font (checked by [`check_font_path`]).
    pub font: PathBuf,
    /// Threads for each decoder, the filter graph and the encoder.
    pub threads: u32,
    /// Where the label files go, relative to ffmpeg's directory (plain characters).
    pub label_dir: String,
    /// The output file, relative to ffmpeg's directory.
    pub output: String,
}

/// One ffmpeg run as data.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Input files in order (input `i` of the graph is `inputs[i]`).
    pub inputs: Vec<PathBuf>,
    pub filter: String,
    /// Label files to write before the run: (path relative to ffmpeg's directory, text).
    pub labels: Vec<(String, String)>,
    pub duration_ms: u64,
    pub width: u32,
    pub height: u32,
    opts: PlanOptions,
}

impl Plan {
    /// The output file, relative to ffmpeg's directory.
    pub fn output(&self) -> &str {
        &self.opts.output
    }

    /// ffmpeg's arguments (after the program name).
    pub fn args(&self) -> Vec<String> {
        self.args_with_output(&self.opts.output)
    }

    /// ffmpeg's arguments, writing to `output` instead.
    pub fn args_with_output(&self, output: &str) -> Vec<String> {
        let threads = self.opts.threads.max(1).to_string();
        let mut a: Vec<String> = ["-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for f in &self.inputs {
            // A camera switching simulcast layers changes size mid-file: the scalers follow it
            // (reinitialising the whole graph would restart its sources).
            a.extend(["-threads".into(), threads.clone(), "-reinit_filter".into(), "0".into()]);
            a.extend(["-i".into(), f.to_string_lossy().into_owned()]);
        }
        let secs = seconds(self.duration_ms);
        let kbps = video_kbps(self.height);
        let gop = (self.opts.fps * 4).to_string();
        let rest = [
            "-filter_complex_threads",
            &threads,
            "-filter_complex",
            &self.filter,
            "-map",
            "[vout]",
            "-map",
            "[aout]",
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            &format!("{kbps}k"),
            "-maxrate",
            &format!("{}k", kbps * 3 / 2),
            "-bufsize",
            &format!("{}k", kbps * 2),
            "-g",
            &gop,
            "-auto-alt-ref",
            "0",
            "-lag-in-frames",
            "0",
            "-threads",
            &threads,
            "-c:a",
            "libopus",
            "-b:a",
            "96k",
            "-t",
            &secs,
            "-f",
            "webm",
            output,
        ];
        a.extend(rest.iter().map(|s| s.to_string()));
        a
    }
}

/// VP8 bitrate for a height: 1.5 Mbit/s at 720p, by pixel count, at least 300 kbit/s.
pub fn video_kbps(height: u32) -> u32 {
    let h = u64::from(height);
    ((1500 * h * h / (720 * 720)) as u32).max(300)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("font path {0:?}: only letters, digits and / _ . + - are accepted in a font path")]
    Font(PathBuf),
    #[error("nothing to compose: the recording has no tracks")]
    Empty,
}

/// The font path goes into the graph text: plain characters only, so no escaping is needed
/// (Debian's `/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf` is).
pub fn check_font_path(p: &std::path::Path) -> Result<(), PlanError> {
    let s = p.to_str().ok_or_else(|| PlanError::Font(p.into()))?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "/_.+-".contains(c);
    if s.is_empty() || !s.chars().all(plain) {
        return Err(PlanError::Font(p.into()));
    }
    Ok(())
}

/// A label as drawn: control characters (newlines, tabs) become spaces, runs of spaces one,
/// at most `max_chars` characters (an ellipsis marks the cut); empty → `fallback`.
pub fn label_text(name: Option<&str>, fallback: &str, max_chars: usize) -> String {
    let clean = |s: &str| {
        let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let mut s = name.map(clean).filter(|s| !s.is_empty()).unwrap_or_else(|| clean(fallback));
    let max_chars = max_chars.max(2);
    if s.chars().count() > max_chars {
        s = s.chars().take(max_chars - 1).collect::<String>() + "…";
    }
    s
}

/// A rectangle of the output, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

const MARGIN: u32 = 4;

fn even(v: u32) -> u32 {
    v & !1
}

/// Largest even 16:9 tile within `w`×`h`.
fn fit_16_9(w: u32, h: u32) -> (u32, u32) {
    let tw = w.min(h * 16 / 9);
    (even(tw), even(tw * 9 / 16))
}

/// `n` tiles in rows of `cols`, each `tw`×`th`, centred in `area` (the last row centred too).
fn rows_of(n: usize, cols: usize, tw: u32, th: u32, area: Rect) -> Vec<Rect> {
    let rows = n.div_ceil(cols);
    let (cw, ch) = (tw + MARGIN, th + MARGIN);
    let y0 = area.y + (area.h.saturating_sub(rows as u32 * ch)) / 2 + MARGIN / 2;
    (0..n)
        .map(|i| {
            let (r, c) = (i / cols, i % cols);
            let in_row = (n - r * cols).min(cols) as u32;
            let x0 = area.x + (area.w.saturating_sub(in_row * cw)) / 2 + MARGIN / 2;
            Rect { x: even(x0 + c as u32 * cw), y: even(y0 + r as u32 * ch), w: tw, h: th }
        })
        .collect()
}

/// `n` tiles filling a `w`×`h` frame: the squarest grid of 16:9 tiles.
pub fn grid(n: usize, w: u32, h: u32) -> Vec<Rect> {
    if n == 0 {
        return Vec::new();
    }
    let cols = (1..=n).find(|c| c * c >= n).unwrap_or(n);
    let rows = n.div_ceil(cols);
    let (tw, th) = fit_16_9(w / cols as u32 - MARGIN, h / rows as u32 - MARGIN);
    rows_of(n, cols, tw, th, Rect { x: 0, y: 0, w, h })
}

/// The stage (where a screen share goes) and `n` tiles in the strip below it.
pub fn stage(n: usize, w: u32, h: u32) -> (Rect, Vec<Rect>) {
    let strip_h = even(h / 5);
    let stage = Rect { x: 0, y: 0, w, h: h - strip_h };
    if n == 0 {
        return (stage, Vec::new());
    }
    let (mut tw, mut th) = fit_16_9(w, strip_h - MARGIN);
    if n as u32 * (tw + MARGIN) > w {
        (tw, th) = fit_16_9(w / n as u32 - MARGIN, strip_h - MARGIN);
    }
    (stage, rows_of(n, n, tw, th, Rect { x: 0, y: h - strip_h, w, h: strip_h }))
}

/// Where something is during `[a, b)` (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    a: u64,
    b: u64,
    rect: Rect,
}

/// Append a window, merging it into the previous one when contiguous and in the same place.
fn push_window(ws: &mut Vec<Window>, w: Window) {
    match ws.last_mut() {
        Some(last) if last.b == w.a && last.rect == w.rect => last.b = w.b,
        _ => ws.push(w),
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `1` during any of the windows, else `0`: a flat sum of half-open windows.
fn enable_expr(ws: &[Window]) -> String {
    let terms: Vec<String> =
        ws.iter().map(|w| format!("gte(t,{})*lt(t,{})", seconds(w.a), seconds(w.b))).collect();
    terms.join("+")
}

/// `f(rect)` during each window (0 outside them).
fn place_expr(ws: &[Window], f: impl Fn(&Rect) -> u32) -> String {
    let terms: Vec<String> =
        ws.iter().map(|w| format!("gte(t,{})*lt(t,{})*{}", seconds(w.a), seconds(w.b), f(&w.rect))).collect();
    terms.join("+")
}

/// Plan the composition of `clips` over `[0, total_ms)`.
pub fn plan(clips: &[Clip], total_ms: u64, opts: &PlanOptions) -> Result<Plan, PlanError> {
    check_font_path(&opts.font)?;
    let clips: Vec<&Clip> = clips.iter().filter(|c| c.start_ms < total_ms).collect();
    if clips.is_empty() {
        return Err(PlanError::Empty);
    }
    let height = even(opts.height.max(90));
    let width = even(height * 16 / 9);
    let fps = opts.fps.max(1);
    let fontsize = (height / 32).max(10);

    // Participants in order of first appearance (then id): tiles keep their order as others
    // come and go.
    let mut first: BTreeMap<&str, u64> = BTreeMap::new();
    for c in clips.iter().filter(|c| c.kind != SourceKind::Screen) {
        let e = first.entry(&c.participant).or_insert(c.start_ms);
        *e = (*e).min(c.start_ms);
    }
    let mut people: Vec<&str> = first.keys().copied().collect();
    people.sort_by_key(|p| (first[p], *p));

    // Cut the timeline wherever a clip starts or stops.
    let mut cuts: Vec<u64> = vec![0, total_ms];
    for c in &clips {
        cuts.push(c.start_ms);
        cuts.push(c.end_ms(total_ms));
    }
    cuts.sort_unstable();
    cuts.dedup();

    // Per camera clip (index into `clips`): windows; per participant: tile windows and windows
    // without a camera; per screen clip: stage windows.
    let mut cam_windows: BTreeMap<usize, Vec<Window>> = BTreeMap::new();
    let mut tile_windows: BTreeMap<&str, Vec<Window>> = BTreeMap::new();
    let mut plain_windows: BTreeMap<&str, Vec<Window>> = BTreeMap::new();
    let mut screen_windows: BTreeMap<usize, Vec<Window>> = BTreeMap::new();
    for pair in cuts.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let active = |i: &usize| clips[*i].start_ms <= a && clips[*i].end_ms(total_ms) > a;
        let running: Vec<usize> = (0..clips.len()).filter(active).collect();
        // The latest screen share takes the stage.
        let screen = running
            .iter()
            .copied()
            .filter(|i| clips[*i].kind == SourceKind::Screen)
            .max_by_key(|i| (clips[*i].start_ms, *i));
        let here: Vec<&str> = people
            .iter()
            .copied()
            .filter(|p| {
                running.iter().any(|i| clips[*i].participant == *p && clips[*i].kind != SourceKind::Screen)
            })
            .collect();
        let tiles = match screen {
            Some(s) => {
                let (st, tiles) = stage(here.len(), width, height);
                push_window(screen_windows.entry(s).or_default(), Window { a, b, rect: st });
                tiles
            }
            None => grid(here.len(), width, height),
        };
        for (p, rect) in here.iter().zip(tiles) {
            let w = Window { a, b, rect };
            push_window(tile_windows.entry(p).or_default(), w);
            // The participant's latest camera fills the tile.
            let cam = running
                .iter()
                .copied()
                .filter(|i| clips[*i].participant == *p && clips[*i].kind == SourceKind::Camera)
                .max_by_key(|i| (clips[*i].start_ms, *i));
            match cam {
                Some(i) => push_window(cam_windows.entry(i).or_default(), w),
                None => push_window(plain_windows.entry(p).or_default(), w),
            }
        }
    }

    let mut g = String::new();
    let mut inputs = Vec::new();
    let mut labels = Vec::new();
    let mut main = "bg".to_string();
    let mut n = 0usize;
    let mut next = |g: &mut String| {
        n += 1;
        let _ = writeln!(g, "[v{n}];");
        format!("v{n}")
    };
    let _ = writeln!(
        g,
        "color=c=0x181818:s={width}x{height}:r={fps}:d={},format=yuv420p[bg];",
        seconds(total_ms)
    );
    // Plain tiles (camera off), under everything.
    for ws in plain_windows.values() {
        for w in ws {
            let r = w.rect;
            let _ = write!(
                g,
                "[{main}]drawbox=x={}:y={}:w={}:h={}:color=0x383838:t=fill:enable='{}'",
                r.x,
                r.y,
                r.w,
                r.h,
                enable_expr(std::slice::from_ref(w))
            );
            main = next(&mut g);
        }
    }
    // Video: screens on the stage, cameras in their tiles.
    for (i, c) in clips.iter().enumerate() {
        let shift = format!("setpts=PTS+{}/TB", seconds(c.start_ms));
        if let Some(ws) = screen_windows.get(&i) {
            let k = inputs.len();
            inputs.push(c.file.clone());
            let st = ws[0].rect;
            let _ = writeln!(
                g,
                "[{k}:v]{shift},scale=w={}:h={}:force_original_aspect_ratio=decrease:flags=fast_bilinear,setsar=1[s{k}];",
                st.w, st.h
            );
            let _ = write!(
                g,
                "[{main}][s{k}]overlay=x='{}+({}-overlay_w)/2':y='{}+({}-overlay_h)/2':eof_action=pass:enable='{}'",
                st.x,
                st.w,
                st.y,
                st.h,
                enable_expr(ws)
            );
            main = next(&mut g);
        }
        if let Some(ws) = cam_windows.get(&i) {
            let k = inputs.len();
            inputs.push(c.file.clone());
            // One scaled copy per tile size the camera ever has.
            let mut sizes: Vec<(u32, u32)> = ws.iter().map(|w| (w.rect.w, w.rect.h)).collect();
            sizes.sort_unstable();
            sizes.dedup();
            let _ = write!(g, "[{k}:v]{shift}");
            if sizes.len() > 1 {
                let _ = write!(g, ",split={}", sizes.len());
                for j in 0..sizes.len() {
                    let _ = write!(g, "[c{k}_{j}]");
                }
                g.push_str(";\n");
            } else {
                let _ = writeln!(g, "[c{k}_0];");
            }
            for (j, (w, h)) in sizes.iter().enumerate() {
                let _ = writeln!(g, "[c{k}_{j}]scale={w}:{h}:flags=fast_bilinear,setsar=1[t{k}_{j}];");
                let these: Vec<Window> =
                    ws.iter().copied().filter(|x| (x.rect.w, x.rect.h) == (*w, *h)).collect();
                let _ = write!(
                    g,
                    "[{main}][t{k}_{j}]overlay=x='{}':y='{}':eof_action=pass:enable='{}'",
                    place_expr(&these, |r| r.x),
                    place_expr(&these, |r| r.y),
                    enable_expr(&these)
                );
                main = next(&mut g);
            }
        }
    }
    // Names, over everything; cut to fit the tile (one label file per cut a name needs).
    let font = opts.font.to_string_lossy();
    for (li, p) in people.iter().enumerate() {
        let Some(ws) = tile_windows.get(p) else { continue };
        let name = clips.iter().find(|c| c.participant == *p).and_then(|c| c.name.as_deref());
        let fits = |w: &Window| {
            let chars = (w.rect.w.saturating_sub(16) / (fontsize * 6 / 10).max(1)) as usize;
            label_text(name, p, chars)
        };
        let mut texts: Vec<String> = ws.iter().map(fits).collect();
        texts.dedup();
        texts.sort();
        texts.dedup();
        for (j, text) in texts.into_iter().enumerate() {
            let these: Vec<Window> = ws.iter().copied().filter(|w| fits(w) == text).collect();
            let file = format!("{}/label-{li}-{j}.txt", opts.label_dir);
            let _ = write!(
                g,
                "[{main}]drawtext=fontfile='{font}':textfile='{file}':expansion=none:fontsize={fontsize}:fontcolor=white:box=1:boxcolor=black@0.55:boxborderw=4:x='{}':y='{}':enable='{}'",
                place_expr(&these, |r| r.x + 8),
                place_expr(&these, |r| (r.y + r.h).saturating_sub(fontsize + 10)),
                enable_expr(&these)
            );
            main = next(&mut g);
            labels.push((file, text));
        }
    }
    let _ = writeln!(g, "[{main}]null[vout];");

    // Audio: each track shifted to its start, its own holes kept as silence, summed as is.
    let bed = format!("anullsrc=r=48000:cl=stereo:d={}", seconds(total_ms));
    let _ = writeln!(g, "{bed}[bed];");
    let mut mix = vec!["[bed]".to_string()];
    for c in clips.iter().filter(|c| c.kind == SourceKind::Audio) {
        let k = inputs.len();
        inputs.push(c.file.clone());
        let _ = writeln!(
            g,
            "[{k}:a]aresample=48000:async=1:first_pts=0,aformat=channel_layouts=stereo,adelay=delays={}:all=1[a{k}];",
            c.start_ms
        );
        mix.push(format!("[a{k}]"));
    }
    let _ = write!(
        g,
        "{}amix=inputs={}:duration=first:dropout_transition=0:normalize=0[aout]",
        mix.concat(),
        mix.len()
    );
    Ok(Plan { inputs, filter: g, labels, duration_ms: total_ms, width, height, opts: opts.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> PlanOptions {
        PlanOptions {
            height: 720,
            fps: 25,
            font: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
            threads: 1,
            label_dir: ".compose".into(),
            output: "recording.webm".into(),
        }
    }

    fn clip(p: &str, kind: SourceKind, file: &str, start_ms: u64, stop_ms: u64) -> Clip {
        Clip { participant: p.into(), name: None, file: file.into(), kind, start_ms, stop_ms: Some(stop_ms) }
    }

    /// The graph's chain that reads input `k`.
    fn chain(p: &Plan, k: usize) -> &str {
        let head = format!("[{k}:");
        p.filter.lines().find(|l| l.starts_with(&head)).unwrap()
    }

    #[test]
    fn grid_reflows_and_tiles_stay_in_the_frame() {
        for n in 1..=12 {
            let tiles = grid(n, 1280, 720);
            assert_eq!(tiles.len(), n);
            for t in &tiles {
                assert!(t.x + t.w <= 1280 && t.y + t.h <= 720, "{n}: {t:?}");
                assert_eq!(t.w * 9 / 16 / 2, t.h / 2, "{n}: 16:9 {t:?}");
                assert!(t.w % 2 == 0 && t.h % 2 == 0 && t.x % 2 == 0 && t.y % 2 == 0);
            }
            for (i, a) in tiles.iter().enumerate() {
                for b in &tiles[i + 1..] {
                    let apart = a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                    assert!(apart, "{n}: {a:?} overlaps {b:?}");
                }
            }
        }
        assert_eq!(grid(1, 1280, 720)[0].w, 1272, "one person fills the frame");
        assert_eq!(grid(2, 1280, 720)[0].w, 636);
        let (st, strip) = stage(3, 1280, 720);
        assert_eq!(st, Rect { x: 0, y: 0, w: 1280, h: 576 });
        assert!(strip.iter().all(|t| t.y >= 576 && t.y + t.h <= 720));
        let (_, many) = stage(9, 1280, 720);
        assert!(many.iter().all(|t| t.x + t.w <= 1280), "{many:?}");
    }

    #[test]
    fn tracks_are_placed_at_their_start_and_audio_is_mixed_unscaled() {
        let clips = vec![
            clip("alice", SourceKind::Camera, "alice-v0.webm", 0, 20_000),
            clip("alice", SourceKind::Audio, "alice-a0.webm", 120, 20_000),
            clip("bob", SourceKind::Camera, "bob-v0.webm", 2_500, 12_000),
            clip("bob", SourceKind::Audio, "bob-a0.webm", 2_340, 12_000),
            clip("carol", SourceKind::Screen, "carol-s0.webm", 8_000, 14_000),
        ];
        let p = plan(&clips, 20_000, &opts()).unwrap();
        // Inputs: video in clip order, then audio.
        let files: Vec<&str> = p.inputs.iter().map(|f| f.to_str().unwrap()).collect();
        assert_eq!(files, ["alice-v0.webm", "bob-v0.webm", "carol-s0.webm", "alice-a0.webm", "bob-a0.webm"]);
        assert!(chain(&p, 0).contains("setpts=PTS+0.000/TB"), "{}", p.filter);
        assert!(chain(&p, 1).contains("setpts=PTS+2.500/TB"), "{}", p.filter);
        assert!(chain(&p, 2).contains("setpts=PTS+8.000/TB"), "{}", p.filter);
        assert!(chain(&p, 3).contains("adelay=delays=120:all=1"), "{}", p.filter);
        assert!(chain(&p, 4).contains("adelay=delays=2340:all=1"), "{}", p.filter);
        assert!(chain(&p, 4).contains("aresample=48000:async=1:first_pts=0"), "holes stay silent");
        assert!(p.filter.contains("amix=inputs=3:duration=first:dropout_transition=0:normalize=0[aout]"));
        assert!(p.filter.contains("anullsrc=r=48000:cl=stereo:d=20.000[bed]"));
        assert!(p.filter.contains("color=c=0x181818:s=1280x720:r=25:d=20.000"));
        // The screen is on the stage only while it runs.
        let screen = p.filter.lines().find(|l| l.contains("[s2]overlay")).unwrap();
        assert!(screen.contains("enable='gte(t,8.000)*lt(t,14.000)'"), "{screen}");
        // Bob's camera: alone with alice in a grid, then in the strip, then in the grid again.
        let bob: Vec<&str> = p.filter.lines().filter(|l| l.contains("[t1_")).collect();
        assert!(bob.len() >= 3, "a scaler and an overlay per size: {bob:?}");
        let all = bob.join("\n");
        for w in ["gte(t,2.500)*lt(t,8.000)", "gte(t,8.000)*lt(t,12.000)"] {
            assert!(all.contains(w), "{w} in {all}");
        }
        assert!(!all.contains("gte(t,12.000)"), "bob left at 12 s: {all}");
        // Everyone's name, from label files; nobody's camera under a plain tile while it runs.
        assert_eq!(p.labels.len(), 2);
        assert_eq!(p.labels[0], (".compose/label-0-0.txt".to_string(), "alice".to_string()));
        let args = p.args();
        let out = args.iter().position(|a| a == "-f").unwrap();
        assert_eq!(&args[out..], ["-f", "webm", "recording.webm"]);
        assert!(args.windows(2).any(|w| w == ["-t", "20.000"]));
        assert!(args.windows(2).any(|w| w == ["-c:v", "libvpx"]));
        assert_eq!(args.windows(2).filter(|w| w == &["-threads", "1"]).count(), 6, "5 decoders, encoder");
    }

    #[test]
    fn a_participant_without_camera_gets_a_plain_named_tile() {
        let clips = vec![
            clip("alice", SourceKind::Camera, "alice-v0.webm", 0, 10_000),
            clip("bob", SourceKind::Audio, "bob-a0.webm", 0, 10_000),
        ];
        let p = plan(&clips, 10_000, &opts()).unwrap();
        assert_eq!(p.filter.matches("drawbox=").count(), 1, "{}", p.filter);
        assert_eq!(p.filter.matches("drawtext=").count(), 2, "{}", p.filter);
    }

    #[test]
    fn names_never_reach_the_graph() {
        let evil = "O'Brien: \\ %{pts} %{eif:1:d} [x];\nnull[vout] \u{7} 'q'";
        let clips =
            vec![Clip { name: Some(evil.into()), ..clip("e1", SourceKind::Camera, "e1-v0.webm", 0, 5_000) }];
        let p = plan(&clips, 5_000, &opts()).unwrap();
        assert!(!p.filter.contains("Brien") && !p.filter.contains("%{"), "{}", p.filter);
        assert!(p.filter.contains("textfile='.compose/label-0-0.txt':expansion=none"), "{}", p.filter);
        // The label is the name on one line, control characters gone; drawtext reads it as is.
        let (_, text) = &p.labels[0];
        assert!(!text.contains('\n') && !text.chars().any(char::is_control), "{text:?}");
        assert!(text.starts_with("O'Brien: \\ %{pts}"), "{text:?}");
        // The graph has exactly the chains the plan made: 1 background, 1 camera (scale, overlay),
        // 1 label, the output, the audio bed and mix.
        assert_eq!(p.filter.matches("[vout]").count(), 1);
        // Fallbacks and limits.
        assert_eq!(label_text(Some(" \n\t "), "ep-1", 20), "ep-1");
        assert_eq!(label_text(None, "ep-1", 20), "ep-1");
        assert_eq!(label_text(Some("a\r\nb"), "x", 20), "a b");
        assert_eq!(label_text(Some("Alexandria Ocasio"), "x", 8), "Alexand…");
    }

    #[test]
    fn long_names_are_cut_to_each_tile() {
        let long = "Maximiliane Wolkenstein-Rodenegg";
        let clips = vec![
            Clip { name: Some(long.into()), ..clip("m", SourceKind::Camera, "m-v0.webm", 0, 10_000) },
            clip("s", SourceKind::Screen, "s-s0.webm", 5_000, 10_000),
        ];
        let p = plan(&clips, 10_000, &opts()).unwrap();
        let texts: Vec<&str> = p.labels.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts.len(), 2, "whole in the grid, cut in the strip: {texts:?}");
        assert!(texts.contains(&long), "{texts:?}");
        assert!(texts.iter().any(|t| t.ends_with('…') && t.chars().count() < long.len()), "{texts:?}");
    }

    #[test]
    fn font_paths_must_be_plain() {
        assert!(
            check_font_path(std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")).is_ok()
        );
        for bad in ["/tmp/a b.ttf", "/x/it's.ttf", "/x/a:b.ttf", "/x/a,b.ttf", "/x/[a].ttf", "/x/a\\b", ""] {
            assert!(check_font_path(std::path::Path::new(bad)).is_err(), "{bad}");
            let o = PlanOptions { font: bad.into(), ..opts() };
            let c = [clip("a", SourceKind::Camera, "a.webm", 0, 1000)];
            assert!(matches!(plan(&c, 1000, &o), Err(PlanError::Font(_))));
        }
        assert_eq!(plan(&[], 1000, &opts()), Err(PlanError::Empty));
    }

    #[test]
    fn clips_and_span_from_a_manifest() {
        use crate::recorder::Codec;
        use crate::recorder::manifest::TrackStop;
        let mut m = Manifest::new("room", "rec", 1_000_000);
        let a =
            m.start_track("alice", "alice-a0", SourceKind::Audio, Codec::Opus, "alice-a0.webm", 1, 1_000_200);
        m.start_track("bob", "bob-v0", SourceKind::Camera, Codec::Vp8, "bob-v0.webm", 2, 1_003_000);
        m.stop_track(&a, TrackStop { wall_ms: 1_010_000, media_ms: 9_700, frames: 1, gaps: vec![] });
        let c = clips(&m, std::path::Path::new("segment-2"));
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].start_ms, c[0].stop_ms), (200, Some(10_000)));
        assert_eq!(c[0].file, std::path::Path::new("segment-2/alice-a0.webm"));
        assert_eq!((c[1].start_ms, c[1].stop_ms), (3_000, None), "still open (a crash)");
        assert_eq!(span_ms(&m), 10_000);
        m.stopped_wall_ms = Some(1_012_000);
        assert_eq!(span_ms(&m), 12_000);
    }
}
