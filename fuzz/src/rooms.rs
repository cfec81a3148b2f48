//! Target `signaling_rooms`: several simulated clients (and a fake bridge) drive one signaling
//! shard without sockets. Each client frame goes through the real decoder
//! (`protocol::parse`) and the real per-connection dispatch (`client::on_message`) into the
//! rooms, as `client::handle` does for a WebSocket; bridge frames go through
//! `bridge::on_message`, as `bridge::handle` does. What the server queues for each client is
//! read back like the writer task does (a `kicked` or `lobby_denied` frame closes the
//! connection, and a closed connection leaves its room).
//!
//! Input, one line per step (`\n`):
//! - first line: flags, any of `L` (lobby on by default), `J` (JWT: HS256 with [`HS_SECRET`],
//!   issuer [`ISSUER`], audience [`AUDIENCE`]), `g` (no guests on a JWT shard), `a` (anonymous
//!   room creation allowed on a JWT shard), `q` (tiny send queues: slow consumers), `T`
//!   (TURN configured), `B` (a bridge is registered and answers allocations and offers);
//! - `<client><op><payload>`: client `0`..`5`; op `>` a text frame (`payload`), `#` a binary
//!   frame, `x` the socket closes. A client whose connection closed reconnects (new
//!   participant id) with its next frame;
//! - `b<payload>`: a text frame from the bridge; `-` the bridge's control connection is lost
//!   (its participants move); `+` it registers again; `=` its drain deadline passes.
//!
//! Checked after every step: every server frame decodes as a `ServerMsg` and every control
//! message as a `ToBridge`; a decoded client frame re-encodes to itself; the room index holds no
//! closed room; every participant or waiter is a live connection that is in that room and vice
//! versa; waiters only in rooms with participants; the rooms, participants and lobby gauges
//! match the rooms; on a shard without JWT every room with participants has a moderator. At the
//! end every client disconnects: then no room is left and every gauge is back to zero.
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use convene_proto::control::{self, FromBridge, ToBridge};
use convene_signaling::bridge::{self, Departure};
use convene_signaling::client;
use convene_signaling::config::{JwtSettings, Limits, Settings, TurnSettings};
use convene_signaling::outbox::{self, OutboxRx};
use convene_signaling::protocol::{self, ClientMsg, ErrorCode};
use convene_signaling::room::{self, RoomRef, refuse};
use convene_signaling::state::{App, BridgeConn, RegisteredBridge, Tx, lock};

pub const HS_SECRET: &[u8] = b"convene-fuzz-hs256-secret";
pub const ISSUER: &str = "convene-fuzz";
pub const AUDIENCE: &str = "convene";
pub const DOMAIN: &str = "meet.example.org";
pub const BRIDGE_ID: &str = "b1";
const CLIENTS: usize = 6;
/// Steps read from one input at most (longer inputs only cost time).
const MAX_STEPS: usize = 256;

#[derive(Default, Clone, Copy)]
pub struct Flags {
    pub lobby: bool,
    pub jwt: bool,
    pub no_guests: bool,
    pub anonymous_creation: bool,
    pub tiny_queues: bool,
    pub turn: bool,
    pub bridge: bool,
}

impl Flags {
    fn parse(line: &[u8]) -> Flags {
        let has = |c: u8| line.contains(&c);
        Flags {
            lobby: has(b'L'),
            jwt: has(b'J'),
            no_guests: has(b'g'),
            anonymous_creation: has(b'a'),
            tiny_queues: has(b'q'),
            turn: has(b'T'),
            bridge: has(b'B'),
        }
    }
}

fn settings(f: Flags) -> Settings {
    let mut limits = Limits::default();
    if f.tiny_queues {
        limits.max_queued_frames = 6;
        limits.max_queued_bytes = 2048;
    }
    Settings {
        domain: DOMAIN.into(),
        public_url: String::new(),
        listen: "127.0.0.1:0".into(),
        region: None,
        bridge_secret: "s3cret".into(),
        jwt: f.jwt.then(|| JwtSettings {
            algorithm: "HS256".into(),
            issuer: ISSUER.into(),
            audience: AUDIENCE.into(),
            key: HS_SECRET.to_vec(),
        }),
        allow_guests: !f.no_guests,
        // As `Settings::resolve`: on when there is no JWT, off with JWT unless enabled.
        allow_anonymous_room_creation: !f.jwt || f.anonymous_creation,
        lobby_by_default: f.lobby,
        web: Default::default(),
        turn: f.turn.then(|| TurnSettings {
            uris: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            secret: "turn-secret".into(),
            lifetime_seconds: 3600,
        }),
        recording: false,
        bridge_capacity: 500,
        bridge_stale_seconds: 15,
        limits,
        tls: None,
    }
}

/// One client connection, as `client::handle` holds it.
struct Conn {
    pid: String,
    tx: Tx,
    rx: OutboxRx,
    room: Option<RoomRef>,
}

struct FakeBridge {
    conn: BridgeConn,
    rx: OutboxRx,
}

struct World {
    app: Arc<App>,
    conns: Vec<Option<Conn>>,
    bridge: Option<FakeBridge>,
    auto_answer: bool,
    connections: u32,
    generation: u64,
}

impl World {
    fn connect(&mut self, i: usize) -> &mut Conn {
        if self.conns[i].is_none() {
            self.connections += 1;
            let l = &self.app.settings.limits;
            let (out, rx) = outbox::channel(
                l.max_queued_frames,
                l.max_queued_bytes,
                self.app.metrics.queued_frames.with_label_values(&["client"]),
                self.app.metrics.queued_bytes.with_label_values(&["client"]),
            );
            let tx = Tx(out);
            let _ = tx.send(protocol::ServerMsg::Hello { v: protocol::PROTOCOL_VERSION });
            // Eight characters, as `client::new_id` makes them (joining uses the first four).
            let pid = format!("p{i}{:06x}", self.connections);
            self.conns[i] = Some(Conn { pid, tx, rx, room: None });
        }
        self.conns[i].as_mut().expect("just connected")
    }

    /// The connection's task ends: it leaves its room (`client::handle`'s epilogue).
    fn disconnect(&mut self, i: usize) {
        if let Some(c) = self.conns[i].take()
            && let Some(r) = &c.room
        {
            room::leave(&self.app, r, &c.pid);
        }
    }

    /// A text frame, as `client::handle` reads it.
    fn text(&mut self, i: usize, payload: &[u8]) {
        let text = String::from_utf8_lossy(payload).into_owned();
        let app = self.app.clone();
        let parsed = protocol::parse(&text);
        let c = self.connect(i);
        match parsed {
            Ok(ClientMsg::Leave) => self.disconnect(i),
            Ok(m) => {
                let again = protocol::parse(&m.to_json());
                assert_eq!(again.as_ref(), Ok(&m), "a decoded frame re-encodes to itself: {text:?}");
                client::on_message(&app, &c.pid, &mut c.room, &c.tx, m);
            }
            Err(e) => refuse(&app, &c.tx, ErrorCode::BadRequest, client::cap(&e)),
        }
    }

    fn binary(&mut self, i: usize) {
        let app = self.app.clone();
        let c = self.connect(i);
        refuse(&app, &c.tx, ErrorCode::BadRequest, "binary frames are not supported; send JSON text frames");
    }

    /// Register the fake bridge (again), as `bridge::handle` does after `register`.
    fn register_bridge(&mut self) {
        let l = &self.app.settings.limits;
        let (tx, rx) = outbox::channel(
            l.max_queued_frames.saturating_mul(16),
            l.max_queued_bytes.saturating_mul(16),
            self.app.metrics.queued_frames.with_label_values(&["bridge"]),
            self.app.metrics.queued_bytes.with_label_values(&["bridge"]),
        );
        self.generation += 1;
        let conn = BridgeConn { tx, pending: Default::default(), generation: self.generation };
        {
            let mut inner = self.app.lock();
            let now = Instant::now();
            let b = inner
                .bridges
                .entry(BRIDGE_ID.into())
                .or_insert_with(|| RegisteredBridge::new(BRIDGE_ID.into(), now));
            b.addresses = vec!["127.0.0.1".into()];
            b.version = "fuzz".into();
            b.last_seen = now;
            b.conn = Some(conn.clone());
            self.app.update_gauges(&inner);
        }
        self.bridge = Some(FakeBridge { conn, rx });
    }

    /// The bridge's control connection closes: `bridge::handle`'s epilogue, without the
    /// reconnect grace (the conferences move at once).
    fn lose_bridge(&mut self) {
        let Some(b) = self.bridge.take() else { return };
        {
            let mut inner = self.app.lock();
            if let Some(r) = inner.bridges.get_mut(BRIDGE_ID)
                && r.conn.as_ref().map(|c| c.generation) == Some(b.conn.generation)
            {
                r.conn = None;
            }
            self.app.update_gauges(&inner);
        }
        lock(&b.conn.pending).clear();
        bridge::move_off(&self.app, BRIDGE_ID, Departure::Lost);
    }

    fn bridge_frame(&mut self, payload: &[u8]) {
        let Some(b) = &self.bridge else { return };
        let text = String::from_utf8_lossy(payload);
        if let Ok(m) = control::parse::<FromBridge>(&text) {
            bridge::on_message(&self.app, BRIDGE_ID, &b.conn.clone(), m);
        }
    }

    /// Let spawned tasks (media setup, offers) run, answer the bridge's requests, and read
    /// what each client was sent; repeated until nothing moves.
    async fn settle(&mut self) {
        for _ in 0..4 {
            for _ in 0..3 {
                tokio::task::yield_now().await;
            }
            let mut moved = self.answer_bridge();
            moved |= self.read_clients();
            if !moved {
                break;
            }
        }
    }

    fn answer_bridge(&mut self) -> bool {
        let Some(b) = &mut self.bridge else { return false };
        let mut replies = Vec::new();
        while let Some(f) = b.rx.try_recv() {
            b.rx.done(&f);
            let msg = control::parse::<ToBridge>(&f.text)
                .unwrap_or_else(|e| panic!("signaling sent the bridge an invalid frame {:?}: {e}", f.text));
            if !self.auto_answer {
                continue;
            }
            match msg {
                ToBridge::AllocateEndpoint { id, conference, endpoint }
                | ToBridge::AllocateHiddenEndpoint { id, conference, endpoint } => {
                    replies.push(FromBridge::Allocated {
                        id,
                        conference,
                        endpoint,
                        candidates: vec![],
                        ice_lite: true,
                    })
                }
                ToBridge::Offer { id, conference, endpoint, .. } => {
                    replies.push(FromBridge::Answer { id, conference, endpoint, sdp: "answer-sdp".into() })
                }
                ToBridge::IceCandidate { id, .. }
                | ToBridge::ReceiverConstraints { id, .. }
                | ToBridge::ExpireEndpoint { id, .. }
                | ToBridge::ExpireConference { id, .. } => replies.push(FromBridge::Ok { id }),
                ToBridge::Answer { .. } | ToBridge::IceStats { .. } => {}
            }
        }
        let conn = b.conn.clone();
        let moved = !replies.is_empty();
        for r in replies {
            bridge::on_message(&self.app, BRIDGE_ID, &conn, r);
        }
        moved
    }

    /// The writer task of each connection: frames leave, `then_close` closes; a connection
    /// marked for closing (kicked, denied, slow) ends and leaves its room.
    fn read_clients(&mut self) -> bool {
        let mut moved = false;
        for i in 0..CLIENTS {
            let Some(c) = &mut self.conns[i] else { continue };
            while let Some(f) = c.rx.try_recv() {
                moved = true;
                c.rx.done(&f);
                if let Err(e) = protocol::parse_server(&f.text) {
                    panic!("signaling sent a client an invalid frame {:?}: {e}", f.text);
                }
                if let Some(r) = f.then_close {
                    c.rx.close(r);
                }
            }
            if c.tx.0.close_reason().is_some() {
                moved = true;
                self.disconnect(i);
            }
        }
        moved
    }

    fn check(&self) {
        let app = &self.app;
        let (mut participants, mut waiting, mut populated) = (0i64, 0i64, 0i64);
        let mut members: HashSet<(String, String)> = HashSet::new();
        for handle in app.all_rooms() {
            let r = lock(&handle);
            assert!(!r.closed, "room {:?} is closed but still in the index", r.name);
            assert!(
                app.room(&r.name).is_some_and(|h| Arc::ptr_eq(&h, &handle)),
                "room {:?} indexed under another name",
                r.name
            );
            for (id, p) in &r.participants {
                assert_eq!(id, &p.info.id, "participant key and id differ");
                assert!(!r.waiting.contains_key(id), "{id} both joined and waiting");
                members.insert((r.name.clone(), id.clone()));
            }
            for (id, w) in &r.waiting {
                assert_eq!(id, &w.info.id, "waiter key and id differ");
                members.insert((r.name.clone(), id.clone()));
            }
            assert!(
                r.waiting.is_empty() || !r.participants.is_empty(),
                "room {:?}: waiters and nobody to admit them",
                r.name
            );
            if app.verifier.is_none() && !r.participants.is_empty() {
                assert!(
                    r.participants.values().any(|p| p.info.moderator),
                    "room {:?} has no moderator",
                    r.name
                );
            }
            participants += r.participants.len() as i64;
            waiting += r.waiting.len() as i64;
            populated += i64::from(!r.participants.is_empty());
        }
        assert_eq!(app.metrics.participants.get(), participants, "participants gauge");
        assert_eq!(app.metrics.lobby_waiting.get(), waiting, "lobby gauge");
        assert_eq!(app.metrics.rooms.get(), populated, "rooms gauge");
        // Connections and rooms agree, both ways.
        let mut live = 0;
        for c in self.conns.iter().flatten() {
            let Some(handle) = &c.room else { continue };
            let r = lock(handle);
            assert!(!r.closed, "live connection {} holds closed room {:?}", c.pid, r.name);
            assert!(
                r.participants.contains_key(&c.pid) || r.waiting.contains_key(&c.pid),
                "live connection {} holds room {:?} but is not in it",
                c.pid,
                r.name
            );
            live += 1;
        }
        assert_eq!(members.len(), live, "participants and waiters are exactly the live connections in rooms");
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().expect("tokio runtime")
}

pub fn run(data: &[u8]) {
    let mut lines = crate::lines(data);
    let flags = Flags::parse(lines.next().unwrap_or_default());
    let app = App::new(settings(flags)).expect("fuzz settings are valid");
    let rt = runtime();
    rt.block_on(async {
        let mut w = World {
            app,
            conns: (0..CLIENTS).map(|_| None).collect(),
            bridge: None,
            auto_answer: flags.bridge,
            connections: 0,
            generation: 0,
        };
        if flags.bridge {
            w.register_bridge();
        }
        for line in lines.take(MAX_STEPS) {
            match line {
                [c @ b'0'..=b'5', op, payload @ ..] => {
                    let i = usize::from(c - b'0');
                    match op {
                        b'>' => w.text(i, payload),
                        b'#' => w.binary(i),
                        b'x' => w.disconnect(i),
                        _ => continue,
                    }
                }
                [b'b', payload @ ..] => w.bridge_frame(payload),
                [b'-', ..] => w.lose_bridge(),
                [b'+', ..] => w.register_bridge(),
                [b'=', ..] => bridge::move_off(&w.app, BRIDGE_ID, Departure::DrainDeadline),
                _ => continue,
            }
            w.settle().await;
            w.check();
        }
        for i in 0..CLIENTS {
            w.disconnect(i);
        }
        w.settle().await;
        w.check();
        assert!(w.app.all_rooms().is_empty(), "rooms left after everyone left");
        assert_eq!(w.app.metrics.participants.get(), 0);
        assert_eq!(w.app.metrics.rooms.get(), 0);
        assert_eq!(w.app.metrics.lobby_waiting.get(), 0);
    });
    // Tasks still waiting (media setup retrying without a bridge) are dropped with the runtime.
    drop(rt);
}
