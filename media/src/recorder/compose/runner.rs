//! Running a [`Plan`]: one ffmpeg process per composition, at most `concurrency` at once in
//! the process (a semaphore), with `-threads` from the plan, at a lower CPU priority
//! (`nice -n <niceness>` in front of ffmpeg: the capture of other recordings keeps priority),
//! a timeout proportional to the recording's length, killed when the run is dropped. The
//! output is written to `<output>.part` and renamed when ffmpeg succeeds, so a crash never
//! leaves a half file under the final name.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::sync::Semaphore;

use super::plan::Plan;

/// How much of ffmpeg's stderr an error keeps (its end).
const STDERR_TAIL: usize = 2000;

#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// The ffmpeg program.
    pub ffmpeg: PathBuf,
    /// `nice` increment for ffmpeg; 0: run it at the recorder's own priority.
    pub niceness: u32,
    /// The timeout is this many times the recording's length…
    pub timeout_factor: f64,
    /// …and never less than this.
    pub min_timeout: Duration,
}

/// What a successful run made.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub output: PathBuf,
    /// The recording's length (the plan's duration).
    pub duration: Duration,
    /// When ffmpeg started, and its wall time (not counting the wait for a slot).
    pub started: Instant,
    pub wall: Duration,
    /// Waiting for a slot.
    pub queued: Duration,
}

impl Outcome {
    /// Recording seconds per wall second: × real time.
    pub fn speed(&self) -> f64 {
        self.duration.as_secs_f64() / self.wall.as_secs_f64().max(1e-3)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("starting {program}: {error}")]
    Spawn { program: String, error: std::io::Error },
    #[error("writing {path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("ffmpeg timed out after {0:?} and was killed")]
    Timeout(Duration),
    #[error("ffmpeg failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
}

/// Runs compositions, `concurrency` at a time (clones share the limit).
#[derive(Debug, Clone)]
pub struct Runner {
    opts: RunnerOptions,
    slots: Arc<Semaphore>,
}

/// Removes the `.part` file unless disarmed: on failure, timeout, or the run being dropped.
struct PartGuard(Option<PathBuf>);

impl Drop for PartGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Runner {
    pub fn new(opts: RunnerOptions, concurrency: usize) -> Self {
        Runner { opts, slots: Arc::new(Semaphore::new(concurrency.max(1))) }
    }

    /// How long a composition of `recording` may take.
    pub fn timeout_for(&self, recording: Duration) -> Duration {
        recording.mul_f64(self.opts.timeout_factor.max(0.0)).max(self.opts.min_timeout)
    }

    /// Run `plan` in `dir`: its label files are written there (and removed after), ffmpeg
    /// writes `<output>.part` and it becomes `<output>` on success. (The few small file
    /// operations around the run are plain `std::fs`.)
    pub async fn run(&self, dir: &Path, plan: &Plan) -> Result<Outcome, RunError> {
        let queued_at = Instant::now();
        // Never closed: acquiring cannot fail.
        let _slot = self.slots.acquire().await.ok();
        let queued = queued_at.elapsed();
        let output = dir.join(plan.output());
        let part = dir.join(format!("{}.part", plan.output()));
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |error| RunError::Io { path, error }
        };
        let mut label_dirs = Vec::new();
        for (rel, text) in &plan.labels {
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
                label_dirs.push(parent.to_path_buf());
            }
            std::fs::write(&path, text).map_err(io(&path))?;
        }
        let result = self.ffmpeg(dir, plan, &part).await;
        for (rel, _) in &plan.labels {
            let _ = std::fs::remove_file(dir.join(rel));
        }
        label_dirs.dedup();
        for d in label_dirs {
            let _ = std::fs::remove_dir(d);
        }
        let (started, wall) = result?;
        std::fs::rename(&part, &output).map_err(io(&output))?;
        let duration = Duration::from_millis(plan.duration_ms);
        Ok(Outcome { output, duration, started, wall, queued })
    }

    async fn ffmpeg(&self, dir: &Path, plan: &Plan, part: &Path) -> Result<(Instant, Duration), RunError> {
        // ffmpeg writes the part file (`-f webm` says the format).
        let args = plan.args_with_output(&format!("{}.part", plan.output()));
        let ffmpeg = self.opts.ffmpeg.as_os_str();
        let mut cmd = if self.opts.niceness > 0 {
            let mut c = Command::new("nice");
            c.arg("-n").arg(self.opts.niceness.to_string()).arg(ffmpeg);
            c
        } else {
            Command::new(ffmpeg)
        };
        cmd.args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut guard = PartGuard(Some(part.to_path_buf()));
        let started = Instant::now();
        let mut child = cmd.spawn().map_err(|error| RunError::Spawn {
            program: if self.opts.niceness > 0 { "nice".into() } else { ffmpeg.to_string_lossy().into() },
            error,
        })?;
        let mut stderr = child.stderr.take();
        let tail = tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Some(s) = stderr.as_mut() {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 2 * STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
            }
            let s = String::from_utf8_lossy(&tail);
            let cut = s.len().saturating_sub(STDERR_TAIL);
            let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
            s[cut..].trim().to_string()
        });
        let timeout = self.timeout_for(Duration::from_millis(plan.duration_ms));
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(s) => s.map_err(|error| RunError::Spawn { program: "ffmpeg".into(), error })?,
            Err(_) => {
                let _ = child.kill().await;
                tail.abort();
                return Err(RunError::Timeout(timeout));
            }
        };
        let wall = started.elapsed();
        let stderr = tail.await.unwrap_or_default();
        if !status.success() {
            return Err(RunError::Failed { status: status.to_string(), stderr });
        }
        guard.0 = None;
        Ok((started, wall))
    }
}
