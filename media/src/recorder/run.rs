//! One recording's I/O: a [`RecorderSession`] over its own UDP socket (ICE with the bridge as
//! a browser would: the bridge is ICE-lite, we are the controlling agent), fed datagrams and
//! time, told the bridge's SDP and slots by [`Command`]s, finished on `Stop` or failure.
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use convene_proto::recorder::{ErrorCode, Failure, FromRecorder, OfferId, RecordedParticipant, SlotInfo};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Input};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::metrics::{RecorderMetrics, SessionExport};
use super::session::{Poll, RecorderSession, SessionConfig};
use super::sink::DirSink;

/// The recording's counters reach the metrics at least this often.
const EXPORT_EVERY: Duration = Duration::from_millis(250);

/// What the control connection tells a running recording.
#[derive(Debug)]
pub enum Command {
    /// The bridge's answer to our offer.
    Answer(String),
    /// The bridge's slot offer.
    Offer {
        offer_id: OfferId,
        sdp: String,
        slots: Vec<SlotInfo>,
    },
    Slots(Vec<SlotInfo>),
    /// Who is in the room.
    Participants(Vec<RecordedParticipant>),
    /// A chat message to the room.
    Chat {
        name: String,
        text: String,
        wall_ms: u64,
    },
    /// Finish; `reply`: answer `ok` to that request once the files are complete; `handoff`:
    /// the recording goes on in a next segment elsewhere (nothing composed here).
    Stop {
        reply: Option<u64>,
        handoff: bool,
    },
}

/// A recording ready to run: its session has made the offer for the bridge.
pub struct Recording {
    pub id: String,
    pub dir: PathBuf,
    session: RecorderSession<DirSink>,
    socket: UdpSocket,
    local: SocketAddr,
}

/// A recording whose capture ended: its files in `dir` are complete.
#[derive(Debug)]
pub struct Ended {
    pub recording: String,
    pub conference: String,
    pub dir: PathBuf,
    /// Which segment of the recording `dir` holds (1: the recording's own directory).
    pub segment: u32,
    /// The recording goes on in a next segment: compose nothing.
    pub handoff: bool,
    /// Track files written.
    pub files: u32,
    /// Why it ended early, if it did.
    pub error: Option<Failure>,
}

/// Where a recording's UDP socket binds and what its candidate says.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    pub bind: IpAddr,
    pub advertise: IpAddr,
    /// A port of this range (`first`, `last`), or any.
    pub ports: Option<(u16, u16)>,
}

/// Bind a socket, open the directory, make the session (`cfg`'s candidates are ours) and its
/// offer. Errors say which part failed, as the recorder reports them.
pub async fn prepare(
    id: &str,
    mut cfg: SessionConfig,
    dir: PathBuf,
    net: Net,
) -> Result<(Recording, String), Failure> {
    let socket = bind_in(net.bind, net.ports)
        .await
        .map_err(|e| failure(ErrorCode::Internal, format!("UDP socket: {e}")))?;
    let port = socket.local_addr().map_err(|e| failure(ErrorCode::Internal, e.to_string()))?.port();
    let local = SocketAddr::new(net.advertise, port);
    let sink =
        DirSink::new(&dir).map_err(|e| failure(ErrorCode::Storage, format!("{}: {e}", dir.display())))?;
    let cand = Candidate::host(local, "udp").map_err(|e| failure(ErrorCode::Internal, e.to_string()))?;
    cfg.candidates = vec![cand];
    let mut session = RecorderSession::new(cfg, sink, Instant::now());
    let offer = session.offer();
    Ok((Recording { id: id.into(), dir, session, socket, local }, offer))
}

async fn bind_in(ip: IpAddr, ports: Option<(u16, u16)>) -> std::io::Result<UdpSocket> {
    let Some((first, last)) = ports else { return UdpSocket::bind((ip, 0)).await };
    // From a random place in the range, so recorders restarting do not all race for the first.
    let n = u32::from(last - first) + 1;
    let start = fastrand::u32(..n);
    let mut err = None;
    for i in 0..n {
        let port = first + ((start + i) % n) as u16;
        match UdpSocket::bind((ip, port)).await {
            Ok(s) => return Ok(s),
            Err(e) => err = Some(e),
        }
    }
    Err(err.unwrap_or_else(|| std::io::Error::other("no port in range")))
}

fn failure(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure { code, message: message.into() }
}

impl Recording {
    /// Run until stopped or failed; messages for signaling go to `out`. A `Stop` request is
    /// answered `ok` once the track files and manifest are complete; `finished` is left to
    /// [`super::finish`], after what follows the capture. Its counters go to `metrics`.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        out: mpsc::Sender<FromRecorder>,
        connect_timeout: Duration,
        metrics: &RecorderMetrics,
    ) -> Ended {
        let started = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut export = SessionExport::default();
        let mut exported_at = started;
        let ((reply, handoff), error) = loop {
            if exported_at.elapsed() >= EXPORT_EVERY {
                export.export(metrics, &self.session.stats(), self.session.sink().bytes_written());
                exported_at = Instant::now();
            }
            let wake = match self.drain() {
                Ok(t) => t,
                Err(e) => break ((None, false), Some(failure(ErrorCode::Media, e))),
            };
            if !self.session.is_connected() && started.elapsed() > connect_timeout {
                break ((None, false), Some(failure(ErrorCode::Media, "no media connection to the bridge")));
            }
            let sleep = wake
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(1), Duration::from_millis(500));
            let input = tokio::select! {
                c = commands.recv() => match c {
                    None => break ((None, false), None),
                    Some(Command::Stop { reply, handoff }) => break ((reply, handoff), None),
                    Some(c) => {
                        if let Err(e) = self.command(c, &out).await {
                            break ((None, false), Some(failure(ErrorCode::Sdp, e)));
                        }
                        continue;
                    }
                },
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, src)) => match Receive::new(Protocol::Udp, src, self.local, &buf[..n]) {
                        Ok(r) => Input::Receive(Instant::now(), r),
                        Err(_) => continue,
                    },
                    // ICMP from a bridge that went away: its silence shows as a gap.
                    Err(_) => continue,
                },
                _ = tokio::time::sleep(sleep) => Input::Timeout(Instant::now()),
            };
            if let Err(e) = self.session.handle_input(input) {
                // A datagram str0m refuses is dropped, as a browser would.
                warn!(recording = %self.id, "input refused: {e}");
            }
        };
        self.session.finish();
        let stats = self.session.stats();
        export.export(metrics, &stats, self.session.sink().bytes_written());
        export.retire(metrics);
        let location = self.dir.display();
        match &error {
            Some(f) => {
                warn!(recording = %self.id, %location, code = ?f.code, message = %f.message, "recording failed")
            }
            None => {
                info!(recording = %self.id, %location, files = stats.files_opened, frames = stats.frames_written, "recording finished")
            }
        }
        if let Some(id) = reply {
            let _ = out.send(FromRecorder::Ok { id }).await;
        }
        let conference = self.session.manifest().conference.clone();
        let segment = self.session.manifest().segment;
        let files = stats.files_opened as u32;
        Ended { recording: self.id, conference, dir: self.dir, segment, handoff, files, error }
    }

    /// Send what the session has to send; returns when to wake at the latest.
    fn drain(&mut self) -> Result<Instant, String> {
        loop {
            match self.session.poll().map_err(|e| e.to_string())? {
                Poll::Transmit(t) => {
                    // UDP: a full socket buffer loses the packet, as the network would.
                    let _ = self.socket.try_send_to(&t.contents, t.destination);
                }
                Poll::Timeout(t) => return Ok(t),
            }
        }
    }

    async fn command(&mut self, c: Command, out: &mpsc::Sender<FromRecorder>) -> Result<(), String> {
        match c {
            Command::Answer(sdp) => self.session.accept_answer(&sdp).map_err(|e| e.to_string()),
            Command::Offer { offer_id, sdp, slots } => {
                let answer = self.session.accept_offer(&sdp, &slots).map_err(|e| e.to_string())?;
                let _ = out
                    .send(FromRecorder::Answer { recording: self.id.clone(), offer_id, sdp: answer })
                    .await;
                Ok(())
            }
            Command::Slots(slots) => {
                self.session.apply_slots(&slots);
                Ok(())
            }
            Command::Participants(list) => {
                self.session.participants(&list);
                Ok(())
            }
            Command::Chat { name, text, wall_ms } => {
                self.session.chat(&name, &text, wall_ms);
                Ok(())
            }
            Command::Stop { .. } => Ok(()),
        }
    }
}
