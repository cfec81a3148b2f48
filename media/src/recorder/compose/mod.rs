//! One file to watch (issue 13): after the capture, `recording.webm` is composed from the
//! track files and `manifest.json` by ffmpeg (Debian's package, in the image), driven from
//! here. [`plan`] is pure (manifest → an ffmpeg invocation as data); [`runner`] runs it under a
//! process-wide concurrency limit, a thread budget, a lower priority and a timeout.
//!
//! Container and codecs: WebM with VP8 and Opus. They are the tracks' own codecs, WebM plays
//! in every browser (the admin UI plays it with a `<video>`), and both encoders are free of
//! patent licensing. Debian's ffmpeg does have libx264, so MP4/H.264 would be encodable, but
//! it brings GPL-licensed code and H.264's patent pool into what a Convene operator
//! distributes, for no gain in a browser. VP8 is encoded for speed: libvpx `-deadline
//! realtime -cpu-used 8`, a bitrate by output size (1.5 Mbit/s at the 720p default), 25 fps.
//!
//! Layout ([`plan`] has the details): a grid of 16:9 tiles of the people present, reflowing
//! as they come and go; a screen share takes the stage with the tiles in a strip below; every
//! tile named. Reflowing rather than a fixed grid of everyone who ever appeared: a meeting
//! where many drop in briefly would otherwise be watched as a grid of mostly empty tiles.
//!
//! A composition that fails does not fail the recording (the tracks are the recording): the
//! result, file and speed or the error, goes into the manifest's `composition`.
pub mod plan;
pub mod runner;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

pub use plan::{Clip, Plan, PlanError, PlanOptions};
pub use runner::{Outcome, RunError, Runner, RunnerOptions};

use super::manifest::Manifest;

/// The composed file's name in the recording's directory.
pub const OUTPUT: &str = "recording.webm";
/// Where the label files go while ffmpeg runs (removed after).
const LABEL_DIR: &str = ".compose";
const FPS: u32 = 25;

/// `convene-recorder`'s composition flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ComposeConfig {
    /// Compose `recording.webm` from the tracks after each recording (`--compose=false`: no).
    #[arg(
        long = "compose",
        env = "CONVENE_RECORDER_COMPOSE",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub enabled: bool,
    /// Compositions at once in this recorder (each is one ffmpeg process).
    #[arg(long, env = "CONVENE_RECORDER_COMPOSE_CONCURRENCY", default_value_t = 1)]
    pub compose_concurrency: usize,
    /// Threads each composition's ffmpeg may use (decoders, filters, encoder each).
    #[arg(long, env = "CONVENE_RECORDER_COMPOSE_THREADS", default_value_t = 1)]
    pub compose_threads: u32,
    /// Height of the composed video (16:9).
    #[arg(long, env = "CONVENE_RECORDER_COMPOSE_HEIGHT", default_value_t = 720)]
    pub compose_height: u32,
    /// The font for names (plain path characters only).
    #[arg(
        long,
        env = "CONVENE_RECORDER_COMPOSE_FONT",
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    pub compose_font: PathBuf,
    /// The ffmpeg program.
    #[arg(long, env = "CONVENE_RECORDER_FFMPEG", default_value = "ffmpeg")]
    pub compose_ffmpeg: PathBuf,
    /// `nice` increment for ffmpeg (0: the recorder's own priority).
    #[arg(long, default_value_t = 10)]
    pub compose_nice: u32,
    /// A composition is killed after this many times the recording's length (at least 60 s).
    #[arg(long, default_value_t = 3.0)]
    pub compose_timeout_factor: f64,
}

impl Default for ComposeConfig {
    fn default() -> Self {
        ComposeConfig {
            enabled: true,
            compose_concurrency: 1,
            compose_threads: 1,
            compose_height: 720,
            compose_font: "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf".into(),
            compose_ffmpeg: "ffmpeg".into(),
            compose_nice: 10,
            compose_timeout_factor: 3.0,
        }
    }
}

/// What composition made of a recording, for the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Composition {
    /// The composed file, relative to the manifest; absent when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Length composed (the recording's span), ms.
    pub duration_ms: u64,
    /// Time ffmpeg took, ms (0 when it did not run).
    pub wall_ms: u64,
    /// × real time: recording seconds per wall second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Of a recording in several segments: the segments the file holds (a missing one shows
    /// as an empty stretch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<u32>,
}

/// Plans and runs compositions; clones share the concurrency limit.
#[derive(Debug, Clone)]
pub struct Composer {
    cfg: ComposeConfig,
    runner: Runner,
}

static INSTALLED: OnceLock<Composer> = OnceLock::new();

/// Make the process's composer from the config (once; later calls are ignored). Recordings
/// are composed after capture only when one is installed and enabled.
pub fn install(cfg: &ComposeConfig) {
    let _ = INSTALLED.set(Composer::new(cfg.clone()));
}

/// The composer [`install`]ed, when composition is enabled.
pub fn installed() -> Option<&'static Composer> {
    INSTALLED.get().filter(|c| c.cfg.enabled)
}

impl Composer {
    pub fn new(cfg: ComposeConfig) -> Self {
        let runner = Runner::new(
            RunnerOptions {
                ffmpeg: cfg.compose_ffmpeg.clone(),
                niceness: cfg.compose_nice,
                timeout_factor: cfg.compose_timeout_factor,
                min_timeout: Duration::from_secs(60),
            },
            cfg.compose_concurrency,
        );
        Composer { cfg, runner }
    }

    /// The same limits with other runner options (tests: a short timeout).
    pub fn with_runner_options(cfg: ComposeConfig, opts: RunnerOptions) -> Self {
        let runner = Runner::new(opts, cfg.compose_concurrency);
        Composer { cfg, runner }
    }

    pub fn plan_options(&self) -> PlanOptions {
        PlanOptions {
            height: self.cfg.compose_height,
            fps: FPS,
            font: self.cfg.compose_font.clone(),
            threads: self.cfg.compose_threads,
            label_dir: LABEL_DIR.into(),
            output: OUTPUT.into(),
        }
    }

    /// Compose the recording in `dir` from its manifest: plan, run.
    pub async fn compose(&self, dir: &Path, manifest: &Manifest) -> Result<Outcome, ComposeError> {
        let clips = plan::clips(manifest, Path::new(""));
        self.compose_clips(dir, &clips, plan::span_ms(manifest)).await
    }

    /// Compose `clips` (files relative to `dir`) over `total_ms` of recording time into
    /// `dir`'s [`OUTPUT`].
    pub async fn compose_clips(
        &self,
        dir: &Path,
        clips: &[Clip],
        total_ms: u64,
    ) -> Result<Outcome, ComposeError> {
        let plan = plan::plan(clips, total_ms, &self.plan_options())?;
        Ok(self.runner.run(dir, &plan).await?)
    }

    /// After the capture: compose the recording in `dir`, log how it went and record it in
    /// the manifest (`composition`). Never fails the recording.
    pub async fn compose_recording(&self, dir: &Path) -> Composition {
        let path = dir.join("manifest.json");
        let manifest = match std::fs::read(&path).map(|b| serde_json::from_slice::<Manifest>(&b)) {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => return failed(dir, 0, format!("reading the manifest: {e}")),
            Err(e) => return failed(dir, 0, format!("reading the manifest: {e}")),
        };
        let total = plan::span_ms(&manifest);
        let c = match self.compose(dir, &manifest).await {
            Ok(o) => composed(dir, OUTPUT.into(), total, &o),
            Err(e) => return failed_with(dir, manifest, total, e.to_string()),
        };
        record(dir, manifest, &c);
        c
    }
}

/// What a composition that ran says in the manifest (`file` relative to it); logged.
pub fn composed(dir: &Path, file: String, total_ms: u64, o: &Outcome) -> Composition {
    info!(
        dir = %dir.display(),
        %file,
        recording_s = o.duration.as_secs_f64(),
        wall_s = o.wall.as_secs_f64(),
        queued_s = o.queued.as_secs_f64(),
        speed = format!("{:.2}x real time", o.speed()),
        "composed"
    );
    Composition {
        file: Some(file),
        duration_ms: total_ms,
        wall_ms: o.wall.as_millis() as u64,
        speed: Some((o.speed() * 100.0).round() / 100.0),
        error: None,
        segments: vec![],
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Run(#[from] RunError),
}

pub fn failed(dir: &Path, total: u64, error: String) -> Composition {
    warn!(dir = %dir.display(), "composition failed: {error}");
    Composition {
        file: None,
        duration_ms: total,
        wall_ms: 0,
        speed: None,
        error: Some(error),
        segments: vec![],
    }
}

fn failed_with(dir: &Path, manifest: Manifest, total: u64, error: String) -> Composition {
    let c = failed(dir, total, error);
    record(dir, manifest, &c);
    c
}

/// Put `c` into the manifest in `dir` (read, then replaced whole, as the session writes it).
pub fn record_in(dir: &Path, c: &Composition) {
    match std::fs::read(dir.join("manifest.json")).map(|b| serde_json::from_slice::<Manifest>(&b)) {
        Ok(Ok(m)) => record(dir, m, c),
        Ok(Err(e)) => warn!(dir = %dir.display(), "recording the composition: the manifest: {e}"),
        Err(e) => warn!(dir = %dir.display(), "recording the composition: the manifest: {e}"),
    }
}

/// Put `c` into the manifest in `dir` (replaced whole, as the session writes it).
fn record(dir: &Path, mut manifest: Manifest, c: &Composition) {
    use super::sink::Sink as _;
    manifest.composition = Some(c.clone());
    let r = super::sink::DirSink::new(dir).and_then(|mut s| s.put_manifest(&manifest.to_json()));
    if let Err(e) = r {
        warn!(dir = %dir.display(), "recording the composition in the manifest: {e}");
    }
}
