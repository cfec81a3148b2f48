//! A participant speaking the client protocol without media (it moderates: joins, starts and
//! stops recordings), keeping everything it was told. A task owns its socket and pings, so it
//! is never idle however long a test waits.
use std::time::{Duration, Instant};

use convene_proto::client::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long [`RoomClient::wait`] waits for a message.
const WAIT: Duration = Duration::from_secs(30);

pub struct RoomClient {
    out: mpsc::UnboundedSender<ClientMsg>,
    inbox: mpsc::UnboundedReceiver<ServerMsg>,
    /// Every message received so far.
    pub seen: Vec<ServerMsg>,
}

impl RoomClient {
    /// Join `room` on the signaling at 127.0.0.1:`port` as `name`, muted; returns once joined.
    pub async fn join(port: u16, room: &str, name: &str) -> RoomClient {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.expect("ws");
        let (out, mut outgoing) = mpsc::unbounded_channel::<ClientMsg>();
        let (deliver, inbox) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut ping = tokio::time::interval(Duration::from_secs(5));
            loop {
                let msg = tokio::select! {
                    m = outgoing.recv() => match m { Some(m) => m, None => return },
                    _ = ping.tick() => ClientMsg::Ping,
                    f = ws.next() => {
                        match f {
                            Some(Ok(Message::Text(t))) => {
                                let m = convene_proto::client::parse_server(t.as_str()).expect("a server message");
                                if deliver.send(m).is_err() { return }
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        }
                        continue;
                    }
                };
                if ws.send(Message::text(msg.to_json())).await.is_err() {
                    return;
                }
            }
        });
        let mut c = RoomClient { out, inbox, seen: vec![] };
        c.send(muted_join(room, name)).await;
        c.wait("joined", |m| matches!(m, ServerMsg::Joined { .. })).await;
        c
    }

    pub async fn send(&mut self, msg: ClientMsg) {
        self.out.send(msg).expect("the socket task runs");
    }

    /// The next message matching `f` (30 s at most); everything read is kept in `seen`.
    pub async fn wait(&mut self, what: &str, f: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; saw {:?}", self.seen))
                .expect("socket open");
            self.seen.push(m.clone());
            if f(&m) {
                return m;
            }
        }
    }

    /// Everything received so far, kept.
    pub fn drain_inbox(&mut self) {
        while let Ok(m) = self.inbox.try_recv() {
            self.seen.push(m);
        }
    }

    /// Start recording; panics on the typed error instead.
    pub async fn record(&mut self) {
        self.send(ClientMsg::SetRecording { recording: true }).await;
        let m = self
            .wait("recording or an error", |m| {
                matches!(m, ServerMsg::Room { room } if room.recording)
                    || matches!(m, ServerMsg::Error { .. })
            })
            .await;
        assert!(matches!(m, ServerMsg::Room { .. }), "recording refused: {m:?}");
    }

    /// Stop recording; returns the `recording_stopped` the room was told.
    pub async fn stop_recording(&mut self) -> ServerMsg {
        self.send(ClientMsg::SetRecording { recording: false }).await;
        self.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await
    }

    /// It never heard of a stop nobody asked for.
    pub fn never_cut(&mut self) {
        self.drain_inbox();
        let cut = self.seen.iter().find(|m| matches!(m, ServerMsg::RecordingStopped { by: None, .. }));
        assert!(cut.is_none(), "a recording was cut: {cut:?}");
    }
}

/// A `join` of `room` as `name` with microphone and camera off (what a test client sends).
pub fn muted_join(room: &str, name: &str) -> ClientMsg {
    ClientMsg::Join {
        v: PROTOCOL_VERSION,
        room: room.into(),
        name: Some(name.into()),
        avatar: None,
        token: None,
        password: None,
        audio_muted: true,
        video_muted: true,
    }
}
