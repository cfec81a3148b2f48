//! One simulated participant: a task owning its signaling WebSocket and its peer connection.
//! It sleeps until the socket is readable, a signaling frame arrives, or str0m's (or the
//! next frame's) deadline, whichever comes first.
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::peer::{Peer, PeerEvent};
use super::publish::PublishConfig;
use super::stats::Stats;
use convene_proto::client::{self, ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use convene_proto::media::{ReceiverConstraints, SlotInfo};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Wake at least this often without a peer (nothing else to wait for but frames).
const IDLE_WAKE: Duration = Duration::from_secs(1);

/// Everything a participant needs besides its stats slot.
#[derive(Debug, Clone)]
pub struct Spec {
    pub url: String,
    pub room: String,
    pub name: String,
    pub token: Option<String>,
    pub bind: std::net::IpAddr,
    pub publish: PublishConfig,
    pub constraints: Option<ReceiverConstraints>,
}

type Shared = Arc<Mutex<Stats>>;

fn lock(s: &Shared) -> MutexGuard<'_, Stats> {
    // Stats are plain counters: a panicked holder leaves nothing half-done worth refusing.
    s.lock().unwrap_or_else(|p| p.into_inner())
}

enum Wake {
    Stop,
    Frame(Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>),
    Io,
}

/// Run until `stop` turns true (then leave cleanly) or a fatal problem.
/// How often a participant that has nothing else to say pings signaling (its idle timeout
/// is 60 s by default).
const PING_EVERY: Duration = Duration::from_secs(20);

type Sink = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
>;
type Frames = tokio::sync::mpsc::UnboundedReceiver<Result<WsMessage, tokio_tungstenite::tungstenite::Error>>;

/// Redirects a join follows at most (signaling stops redirecting after two).
const MAX_REDIRECTS: u32 = 3;

/// Open signaling's WebSocket at `url` and send `join`. `Ok(None)`: stopped meanwhile.
async fn open(
    url: &str,
    join: &ClientMsg,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<(Sink, Frames, AbortOnDrop)>, String> {
    let connect = tokio_tungstenite::connect_async(url);
    let ws = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connect) => r,
        _ = stop.wait_for(|s| *s) => return Ok(None),
    };
    let ws = match ws {
        Ok(Ok((ws, _))) => ws,
        Ok(Err(e)) => return Err(format!("signaling connect: {e}")),
        Err(_) => return Err("signaling connect: timed out".into()),
    };
    let (mut sink, mut stream) = ws.split();
    // A reader task: polling the WebSocket itself on every media wake-up would make
    // tungstenite re-zero its read buffer each time (measured: a tenth of the CPU).
    let (frames_tx, frames) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(f) = stream.next().await {
            if frames_tx.send(f).is_err() {
                break;
            }
        }
    });
    let reader = AbortOnDrop(reader);
    if let Err(e) = sink.send(WsMessage::text(join.to_json())).await {
        return Err(format!("signaling send: {e}"));
    }
    Ok(Some((sink, frames, reader)))
}

/// The shard URL of a `redirect` frame (a group's entry signaling sends the join elsewhere).
fn redirect_of(text: &str) -> Option<String> {
    if !text.starts_with(r#"{"type":"redirect""#) {
        return None;
    }
    match client::parse_server(text) {
        Ok(ServerMsg::Redirect { url, .. }) => Some(url),
        _ => None,
    }
}

pub async fn run(spec: Spec, stats: Shared, mut stop: watch::Receiver<bool>) {
    let join = ClientMsg::Join {
        v: PROTOCOL_VERSION,
        room: spec.room.clone(),
        name: Some(spec.name.clone()),
        avatar: None,
        token: spec.token.clone(),
        password: None,
        audio_muted: !spec.publish.audio,
        video_muted: !spec.publish.video,
    };
    let (mut sink, mut frames, mut _reader) = match open(&spec.url, &join, &mut stop).await {
        Ok(Some(c)) => c,
        Ok(None) => return lock(&stats).finish(Instant::now()),
        Err(e) => return fail(&stats, e),
    };
    let mut redirects = 0;
    let mut p = Participant { spec: &spec, stats: &stats, peer: None, out: Vec::new(), events: Vec::new() };
    // Created once: re-arming a stop watcher and a timer on every wake-up costs more than
    // resetting them.
    let mut stop_redirect = stop.clone();
    let stopped = stop.wait_for(|s| *s);
    tokio::pin!(stopped);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    // Signaling closes sockets silent for 60 s; a client pings as the web app does.
    let mut last_sent = Instant::now();
    loop {
        let wake_at = p.peer.as_ref().map(|x| x.next_wake()).unwrap_or_else(|| Instant::now() + IDLE_WAKE);
        if timer.deadline() != wake_at.into() {
            timer.as_mut().reset(wake_at.into());
        }
        let wake = tokio::select! {
            biased;
            _ = &mut stopped => Wake::Stop,
            f = frames.recv() => Wake::Frame(f),
            _ = readable(&p.peer) => Wake::Io,
            _ = &mut timer => Wake::Io,
        };
        match wake {
            Wake::Stop => break,
            Wake::Frame(Some(Ok(WsMessage::Text(t)))) => match redirect_of(t.as_str()) {
                // The room is on another shard of the group: join there instead.
                Some(url) if redirects < MAX_REDIRECTS => {
                    redirects += 1;
                    tracing::debug!(participant = %spec.name, %url, "redirected");
                    (sink, frames, _reader) = match open(&url, &join, &mut stop_redirect).await {
                        Ok(Some(c)) => c,
                        Ok(None) => break,
                        Err(e) => return fail(&stats, e),
                    };
                    continue;
                }
                Some(_) => return fail(&stats, "signaling: too many redirects".into()),
                None => p.on_frame(t.as_str()),
            },
            Wake::Frame(Some(Ok(WsMessage::Close(_)) | Err(_)) | None) => {
                return fail(&stats, "signaling connection closed".into());
            }
            Wake::Frame(Some(Ok(_))) => {}
            Wake::Io => {}
        }
        p.drive();
        if last_sent.elapsed() >= PING_EVERY {
            p.out.push(ClientMsg::Ping);
        }
        if !p.out.is_empty() {
            last_sent = Instant::now();
        }
        for f in p.out.drain(..) {
            if let Err(e) = sink.send(WsMessage::text(f.to_json())).await {
                return fail(&stats, format!("signaling send: {e}"));
            }
        }
        if lock(&stats).fatal.is_some() {
            let _ = sink.close().await;
            return lock(&stats).finish(Instant::now());
        }
    }
    // Stop the clocks first: others leaving now is the end of the run, not a gap.
    lock(&stats).finish(Instant::now());
    let _ = sink.send(WsMessage::text(ClientMsg::Leave.to_json())).await;
    let _ = sink.close().await;
}

/// Follow the bridge's slot map: frames on a slot count for the source it carries now.
fn map_slots(peer: &mut Peer, stats: &mut Stats, slots: &[SlotInfo]) {
    for slot in slots {
        let index = slot.source.as_ref().map(|src| stats.source_index(&src.name, src.kind));
        peer.map_source(&slot.mid, index);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn fail(stats: &Shared, why: String) {
    let mut s = lock(stats);
    tracing::warn!(participant = %s.name, "{why}");
    s.fail(why);
    s.finish(Instant::now());
}

async fn readable(peer: &Option<Peer>) {
    match peer {
        Some(p) => p.readable().await,
        None => std::future::pending().await,
    }
}

struct Participant<'a> {
    spec: &'a Spec,
    stats: &'a Shared,
    peer: Option<Peer>,
    /// Frames to send to signaling after this step.
    out: Vec<ClientMsg>,
    /// Peer events of one drive (kept to reuse the allocation).
    events: Vec<PeerEvent>,
}

impl Participant<'_> {
    fn drive(&mut self) {
        let Some(peer) = &mut self.peer else { return };
        let now = Instant::now();
        let events = &mut self.events;
        let r = peer.drive(now, &mut |e| events.push(e));
        let mut s = lock(self.stats);
        for e in self.events.drain(..) {
            match e {
                PeerEvent::Connected => s.connected(now, true),
                PeerEvent::Disconnected => s.connected(now, false),
                PeerEvent::Media { source, video, bytes } => s.on_media(now, source, video, bytes),
            }
        }
        if let Err(e) = r {
            // The peer connection is unusable; media stays away until signaling sends `media`
            // again, and the gap rules decide whether that is a drop.
            tracing::warn!(participant = %s.name, error = %e, "peer connection failed");
            s.error(format!("peer connection: {e}"));
            s.connected(now, false);
            self.peer = None;
        }
    }

    fn on_frame(&mut self, text: &str) {
        let now = Instant::now();
        let frame = match client::parse_server(text) {
            Ok(f) => f,
            Err(e) => {
                let mut s = lock(self.stats);
                s.malformed_frames += 1;
                if s.malformed_frames <= 3 {
                    tracing::warn!(participant = %s.name, error = %e, "malformed signaling frame");
                }
                return;
            }
        };
        match frame {
            ServerMsg::Joined { you, participants, .. } => {
                let mut s = lock(self.stats);
                s.id = Some(you.id);
                s.joined = Some(now);
                s.set_others(now, participants.into_iter().map(|p| p.id));
            }
            ServerMsg::Media { bridge, migration, .. } => self.start_media(now, bridge, migration),
            ServerMsg::Answer { sdp } => {
                let r = match &mut self.peer {
                    Some(p) => p.accept_answer(&sdp),
                    None => Err("answer without a peer connection".into()),
                };
                if let Err(e) = r {
                    self.error(e);
                }
            }
            ServerMsg::Offer { id, sdp, slots } => {
                let Some(peer) = &mut self.peer else {
                    return self.error("bridge offer without a peer connection".into());
                };
                if peer.has_pending_offer() {
                    // Glare: our offer wins and the bridge offers again after answering it.
                    tracing::debug!(participant = %self.spec.name, id, "bridge offer ignored (glare)");
                    return;
                }
                map_slots(peer, &mut lock(self.stats), &slots);
                match peer.accept_offer(&sdp) {
                    Ok(answer) => self.out.push(ClientMsg::Answer { id, sdp: answer }),
                    // Unanswered, the bridge can never offer this participant anything again.
                    Err(e) => lock(self.stats).fail(format!("bridge offer {id}: {e}")),
                }
            }
            ServerMsg::Slots { slots } => {
                if let Some(peer) = &mut self.peer {
                    map_slots(peer, &mut lock(self.stats), &slots);
                }
            }
            ServerMsg::ParticipantJoined { participant } => {
                lock(self.stats).other_joined(now, participant.id)
            }
            ServerMsg::ParticipantLeft { id } => lock(self.stats).other_left(now, &id),
            ServerMsg::Error { code, message } => {
                let mut s = lock(self.stats);
                if s.joined.is_none() {
                    s.fail(format!("join refused: {}: {message}", code.as_str()));
                } else if code == ErrorCode::MediaError {
                    s.fail(format!("{}: {message}", code.as_str()));
                } else {
                    // no_bridge (signaling retries), rate_limited …: counted, not fatal.
                    tracing::info!(participant = %s.name, code = code.as_str(), %message, "signaling error");
                    s.error(format!("{}: {message}", code.as_str()));
                }
            }
            ServerMsg::Kicked { by } => lock(self.stats).fail(format!("kicked by {by}")),
            ServerMsg::LobbyDenied => lock(self.stats).fail("lobby denied".into()),
            // Presence updates, chat, dominant speaker, hello, pong …: nothing to do.
            _ => {}
        }
    }

    /// `media`: (re)build the peer connection on the given bridge and offer.
    fn start_media(&mut self, now: Instant, bridge: String, migration: bool) {
        let mut s = lock(self.stats);
        if self.peer.take().is_some() {
            s.connected(now, false);
        }
        if migration {
            s.migrations += 1;
        }
        tracing::debug!(participant = %s.name, %bridge, migration, "media");
        if !s.bridges.contains(&bridge) {
            s.bridges.push(bridge);
        }
        match Peer::new(self.spec.bind, &self.spec.publish, now) {
            Ok((peer, sdp, sources)) => {
                self.peer = Some(peer);
                self.out.push(ClientMsg::Offer { sdp, sources });
                if let Some(c) = &self.spec.constraints {
                    self.out.push(ClientMsg::Constraints { constraints: c.clone() });
                }
            }
            Err(e) => s.fail(format!("peer connection: {e}")),
        }
    }

    fn error(&self, what: String) {
        let mut s = lock(self.stats);
        tracing::warn!(participant = %s.name, "{what}");
        s.error(what);
    }
}
