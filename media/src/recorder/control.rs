//! The recorder's control connection: dial signaling's `/recorder` (the bridge's dialler,
//! [`crate::control_dial`]), register, and run each recording it is given as its own task
//! ([`super::run`]). Reconnects with backoff; recordings end when the connection does
//! (signaling has already ended them and freed their endpoints), and on shutdown, which waits
//! for their files to be finished. A drain (`POST /drain`, [`super::http`]) only stops new
//! recordings: signaling hears `status{draining}` at once, running ones go on to their end.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use convene_proto::recorder::{self, ErrorCode, FromRecorder, ToRecorder};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

use super::config::RecorderConfig;
use super::finish;
use super::http::{Http, Status};
use super::layout::recording_dir;
use super::metrics::RecorderMetrics;
use super::run::{self, Command, Net};
use super::session::{Segment, SessionConfig};
use super::stitch::Stitcher;
use crate::control_client::{send, timed};

/// How long the last segment of an interrupted recording waits for an earlier one to finish
/// (plus the upload's own bound, with S3).
const STITCH_WAIT: Duration = Duration::from_secs(30);

struct Running {
    commands: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    /// Told to stop: its capture is ending and what follows (composition, upload) takes no
    /// place of the recorder's capacity, so a continuation can start at once.
    stopping: bool,
}

pub struct Recorder {
    cfg: RecorderConfig,
    id: String,
    secret: Option<String>,
    net: Net,
    tls: Option<TlsConnector>,
    /// S3, when recordings upload there.
    storage: Option<super::upload::Storage>,
    running: HashMap<String, Running>,
    /// Takes no new recordings (a drain, or shutting down).
    draining: bool,
    /// Shutting down: every recording is stopped, and the loop ends once they finished.
    shutting_down: bool,
    /// What `/ready` and `/load` report.
    pub status: Arc<Status>,
    pub metrics: RecorderMetrics,
}

enum End {
    Closed,
    Shutdown,
}

impl Recorder {
    pub fn new(cfg: RecorderConfig, id: String) -> anyhow::Result<Recorder> {
        let secret = cfg.secret()?;
        let net = Net { bind: cfg.bind, advertise: cfg.advertised(), ports: cfg.udp_ports };
        let tls = crate::control_dial::tls_for(&cfg.signaling_url, cfg.control_ca_file.as_deref())?;
        let metrics = RecorderMetrics::new();
        metrics.capacity.set(i64::from(cfg.capacity));
        let status = Arc::new(Status::default());
        status.capacity.store(cfg.capacity, Ordering::Relaxed);
        let storage = cfg.s3.storage()?.map(|s| s.with_pending_gauge(metrics.upload_pending_bytes.clone()));
        Ok(Recorder {
            cfg,
            id,
            secret,
            net,
            tls,
            storage,
            running: HashMap::new(),
            draining: false,
            shutting_down: false,
            status,
            metrics,
        })
    }

    /// What the HTTP routes serve ([`super::http::serve`]).
    pub fn http(&self) -> Http {
        Http { status: self.status.clone(), metrics: self.metrics.clone(), secret: self.secret.clone() }
    }

    /// Serve until `shutdown` turns true; then stop every recording and return once its files
    /// are finished.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let end = self.session(&mut shutdown).await;
            self.status.registered.store(false, Ordering::Relaxed);
            self.stop_all().await;
            match end {
                Ok(End::Shutdown) => return,
                Ok(End::Closed) => {
                    info!("signaling closed the control connection");
                    backoff = Duration::from_millis(500);
                }
                Err(e) => warn!(url = %self.cfg.signaling_url, "control connection failed: {e:#}"),
            }
            if *shutdown.borrow() {
                return;
            }
            let jitter = Duration::from_millis(fastrand::u64(0..250));
            tokio::select! {
                _ = tokio::time::sleep(backoff + jitter) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(15));
        }
    }

    async fn stop_all(&mut self) {
        for (id, r) in self.running.drain() {
            let _ = r.commands.send(Command::Stop { reply: None, handoff: true }).await;
            if r.task.await.is_err() {
                warn!(recording = %id, "recording task failed");
            }
        }
        self.publish();
    }

    /// Bring `/load` and the metrics up to date with `running`.
    fn publish(&self) {
        let active = self.capturing();
        let finishing = self.running.len() as u32 - active;
        self.status.active.store(active, Ordering::Relaxed);
        self.status.finishing.store(finishing, Ordering::Relaxed);
        self.metrics.recordings_active.set(i64::from(active));
    }

    /// Take no new recordings (running ones go on).
    fn start_draining(&mut self) {
        if !self.draining {
            info!(recordings = self.running.len(), "draining: no new recordings");
        }
        self.draining = true;
        self.status.draining.store(true, Ordering::Relaxed);
    }

    async fn session(&mut self, shutdown: &mut watch::Receiver<bool>) -> anyhow::Result<End> {
        let keepalive = Duration::from_millis(self.cfg.control_keepalive_ms.max(10));
        let dead_after = keepalive * 3;
        let mut ws_cfg = WebSocketConfig::default();
        ws_cfg.max_message_size = Some(recorder::MAX_MESSAGE_BYTES);
        ws_cfg.max_frame_size = Some(recorder::MAX_MESSAGE_BYTES);
        let dial = crate::control_dial::dial(
            &self.cfg.signaling_url,
            self.secret.as_deref(),
            ws_cfg,
            self.tls.as_ref(),
        );
        let ws = tokio::time::timeout(Duration::from_secs(10), dial).await??;
        info!(url = %self.cfg.signaling_url, "control connection up");
        let (mut tx, mut rx) = ws.split();
        // A drain asked for while disconnected counts from the start.
        let mut drain = self.status.drain_requests();
        if *drain.borrow_and_update() {
            self.start_draining();
        }
        let register = FromRecorder::Register {
            protocol_version: recorder::PROTOCOL_VERSION,
            recorder_id: self.id.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            capacity: self.cfg.capacity,
            active: self.capturing(),
            draining: self.draining,
            video_height: self.cfg.video_height,
        };
        send(&mut tx, recorder::to_json(&register), dead_after).await?;
        self.status.registered.store(true, Ordering::Relaxed);
        // Recordings' messages for signaling; bounded (a recording waits for room).
        let (out_tx, mut out_rx) = mpsc::channel::<FromRecorder>(1024);
        let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
        let mut last_read = Instant::now();
        loop {
            if self.shutting_down && self.running.is_empty() {
                return Ok(End::Shutdown);
            }
            let reply = tokio::select! {
                _ = shutdown.changed(), if !self.shutting_down => {
                    info!(recordings = self.running.len(), "shutting down: finishing recordings");
                    self.shutting_down = true;
                    self.start_draining();
                    for r in self.running.values_mut() {
                        r.stopping = true;
                        // Signaling hands the recording on to another recorder.
                        let _ = r.commands.send(Command::Stop { reply: None, handoff: true }).await;
                    }
                    self.publish();
                    Some(self.status())
                }
                r = drain.changed(), if !self.draining => {
                    if r.is_err() || !*drain.borrow_and_update() {
                        continue;
                    }
                    self.start_draining();
                    Some(self.status())
                }
                m = out_rx.recv() => {
                    let Some(m) = m else { continue };
                    if let FromRecorder::Finished { recording, error, .. } = &m {
                        if error.is_some() {
                            self.status.failed_total.fetch_add(1, Ordering::Relaxed);
                        }
                        self.running.remove(recording);
                        self.publish();
                        send(&mut tx, recorder::to_json(&m), dead_after).await?;
                        Some(self.status())
                    } else {
                        Some(m)
                    }
                }
                _ = ping.tick() => {
                    if last_read.elapsed() >= dead_after {
                        anyhow::bail!("nothing from signaling for {dead_after:?}: presumed dead");
                    }
                    timed(dead_after, futures_util::SinkExt::send(&mut tx, WsMessage::Ping(Default::default()))).await?;
                    None
                }
                msg = rx.next() => {
                    last_read = Instant::now();
                    match msg {
                        None => return Ok(End::Closed),
                        Some(m) => match m? {
                            WsMessage::Text(t) => match recorder::parse::<ToRecorder>(t.as_str()) {
                                Ok(m) => self.on_message(m, &out_tx).await,
                                Err(e) => Some(FromRecorder::error(None, ErrorCode::BadRequest, e.to_string())),
                            },
                            WsMessage::Close(_) => return Ok(End::Closed),
                            _ => None,
                        },
                    }
                }
            };
            if let Some(r) = reply {
                send(&mut tx, recorder::to_json(&r), dead_after).await?;
            }
        }
    }

    /// Segment `seg` (in `dir`) continues one whose recorder was lost: with S3, complete that
    /// one's open uploads once its recorder can no longer finish them itself.
    fn recover_lost_segment(&self, dir: &std::path::Path, seg: &Segment) {
        let lost = seg.continues.as_ref().is_some_and(|c| c.reason == recorder::Interruption::RecorderLost);
        let (Some(storage), Some(top), true) = (self.storage.clone(), dir.parent(), lost && seg.number > 1)
        else {
            return;
        };
        let previous = top.join(super::stitch::segment_rel(seg.number - 1));
        let root = self.cfg.recordings_dir.clone();
        let deadline = std::time::Instant::now() + self.stitcher().wait;
        tokio::spawn(async move {
            if let Err(e) = storage.recover_abandoned(&root, &previous, deadline).await {
                warn!(dir = %previous.display(), "recovering the lost segment's uploads: {e:#}");
            }
        });
    }

    /// Where the last segment of an interrupted recording finds the earlier ones: this
    /// recorder's directory, or the bucket (waiting as long as their upload may take).
    fn stitcher(&self) -> Stitcher {
        let wait = self.storage.as_ref().map_or(STITCH_WAIT, |s| s.finish_timeout() + STITCH_WAIT);
        Stitcher { root: self.cfg.recordings_dir.clone(), storage: self.storage.clone(), wait }
    }

    fn status(&self) -> FromRecorder {
        FromRecorder::Status { active: self.capturing(), draining: self.draining }
    }

    /// Recordings capturing media (not stopping): what counts against the capacity.
    fn capturing(&self) -> u32 {
        self.running.values().filter(|r| !r.stopping).count() as u32
    }

    /// Handle one message; returns the reply, if any.
    async fn on_message(&mut self, m: ToRecorder, out: &mpsc::Sender<FromRecorder>) -> Option<FromRecorder> {
        let (recording, command) = match m {
            ToRecorder::Start {
                id,
                recording,
                conference,
                endpoint,
                started_wall_ms,
                segment,
                continues,
                ..
            } => {
                let seg = Segment { number: segment, started_wall_ms, continues };
                return Some(self.start(id, recording, conference, endpoint, seg, out).await);
            }
            ToRecorder::Stop { id, recording, handoff } => {
                let Some(r) = self.running.get_mut(&recording) else {
                    return Some(FromRecorder::error(
                        Some(id),
                        ErrorCode::UnknownRecording,
                        "no such recording",
                    ));
                };
                r.stopping = true;
                let _ = r.commands.send(Command::Stop { reply: Some(id), handoff }).await;
                self.publish();
                // Its place is free now (before the `ok`, which follows once its files are complete).
                return Some(self.status());
            }
            ToRecorder::Answer { recording, sdp } => (recording, Command::Answer(sdp)),
            ToRecorder::Offer { recording, offer_id, sdp, slots } => {
                (recording, Command::Offer { offer_id, sdp, slots })
            }
            ToRecorder::Slots { recording, slots } => (recording, Command::Slots(slots)),
            ToRecorder::Participants { recording, participants } => {
                (recording, Command::Participants(participants))
            }
            ToRecorder::Chat { recording, name, text, wall_ms, .. } => {
                (recording, Command::Chat { name, text, wall_ms })
            }
        };
        if let Some(r) = self.running.get(&recording) {
            let _ = r.commands.send(command).await;
        }
        None
    }

    async fn start(
        &mut self,
        id: u64,
        recording: String,
        conference: String,
        endpoint: String,
        segment: Segment,
        out: &mpsc::Sender<FromRecorder>,
    ) -> FromRecorder {
        let refuse = |code, msg: &str| FromRecorder::error(Some(id), code, msg);
        if self.draining {
            return refuse(ErrorCode::Draining, "the recorder is draining");
        }
        if self.capturing() >= self.cfg.capacity {
            return refuse(ErrorCode::Capacity, "the recorder is full");
        }
        if self.running.contains_key(&recording) {
            return refuse(ErrorCode::BadRequest, "that recording is running");
        }
        let dir = recording_dir(&self.cfg.recordings_dir, &conference, segment.started_wall_ms);
        let dir = segment.dir(dir);
        let segment_of = segment.clone();
        let cfg = SessionConfig {
            conference: conference.clone(),
            endpoint,
            wall_ms: segment.wall_now(),
            candidates: vec![],
            segment,
        };
        let prepared = run::prepare(&recording, cfg, dir, self.net).await;
        let (rec, sdp) = match prepared {
            Ok(p) => p,
            Err(f) => return FromRecorder::Error { id: Some(id), code: f.code, message: f.message },
        };
        info!(%recording, room = %conference, dir = %rec.dir.display(), "recording");
        let (commands, command_rx) = mpsc::channel(64);
        let timeout = Duration::from_secs(self.cfg.connect_timeout_s.max(1));
        let out = out.clone();
        let upload = self.storage.as_ref().map(|s| s.start(&self.cfg.recordings_dir, &rec.dir));
        self.recover_lost_segment(&rec.dir, &segment_of);
        let metrics = self.metrics.clone();
        let stitch = self.stitcher();
        let task = tokio::spawn(async move {
            let ended = rec.run(command_rx, out.clone(), timeout, &metrics).await;
            let _ =
                out.send(finish::finish_counted(ended, upload, Some(&metrics), Some(&stitch)).await).await;
        });
        self.running.insert(recording.clone(), Running { commands, task, stopping: false });
        self.publish();
        self.status.started_total.fetch_add(1, Ordering::Relaxed);
        FromRecorder::Offer { id, recording, sdp }
    }
}
