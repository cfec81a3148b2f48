//! Shard-wide state: the bridge registry (one mutex) and the room index (name → room handle,
//! another mutex). Each room has its own lock (`crate::room`), so rooms proceed in parallel.
//! No lock is held across an await. Lock order: a room lock may take the bridge lock (to pick a
//! bridge for the conference) or the ICE counts' lock (to count a report); the bridge lock, the
//! ICE counts' lock and the index lock are leaves.
//! Bridge requests are answered through per-connection pending maps.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use convene_proto::control::{self, FromBridge, LoadReport, ToBridge};
use convene_proto::recorder::{FromRecorder, ToRecorder};
use tokio::sync::oneshot;

use crate::auth::Verifier;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::net::UnauthLimiter;
use crate::outbox::{CloseReason, Frame, Outbox};
use crate::protocol::ServerMsg;
use crate::room::{Room, RoomRef};
use crate::select::{self, Candidate};

/// A client connection's outbound queue (bounded: see [`crate::outbox`]).
#[derive(Clone)]
pub struct Tx(pub Outbox);

impl Tx {
    /// Queue a frame for the client; false when it was not queued (slow consumer or gone).
    pub fn send(&self, msg: ServerMsg) -> bool {
        self.send_json(msg.to_json(), &msg)
    }

    /// Queue `text`, the encoding of `msg` (fan-out encodes once for all recipients).
    pub fn send_json(&self, text: String, msg: &ServerMsg) -> bool {
        let then_close = match msg {
            ServerMsg::Kicked { .. } => Some(CloseReason::Kicked),
            ServerMsg::LobbyDenied => Some(CloseReason::LobbyDenied),
            ServerMsg::Redirect { .. } => Some(CloseReason::Redirected),
            _ => None,
        };
        self.0.push(Frame { text, then_close })
    }
}

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What one kind of control connection sends and gets back (bridge or recorder control).
pub trait Protocol {
    type Out: serde::Serialize;
    type Reply;
    /// The id a reply to `msg` will carry (`None`: no reply comes).
    fn request_id(msg: &Self::Out) -> Option<control::RequestId>;
}

pub struct BridgeProtocol;
impl Protocol for BridgeProtocol {
    type Out = ToBridge;
    type Reply = FromBridge;
    fn request_id(msg: &ToBridge) -> Option<control::RequestId> {
        msg.request_id()
    }
}

pub struct RecorderProtocol;
impl Protocol for RecorderProtocol {
    type Out = ToRecorder;
    type Reply = FromRecorder;
    fn request_id(msg: &ToRecorder) -> Option<control::RequestId> {
        msg.request_id()
    }
}

/// A control connection (a bridge's or a recorder's): its bounded outbound queue and the
/// requests waiting for their replies.
pub struct ControlConn<P: Protocol> {
    pub tx: Outbox,
    pub pending: Arc<Mutex<HashMap<control::RequestId, oneshot::Sender<P::Reply>>>>,
    pub generation: u64,
}

pub type BridgeConn = ControlConn<BridgeProtocol>;
pub type RecorderConn = ControlConn<RecorderProtocol>;

impl<P: Protocol> std::fmt::Debug for ControlConn<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlConn").field("generation", &self.generation).finish_non_exhaustive()
    }
}

impl<P: Protocol> Clone for ControlConn<P> {
    fn clone(&self) -> Self {
        Self { tx: self.tx.clone(), pending: self.pending.clone(), generation: self.generation }
    }
}

impl<P: Protocol> ControlConn<P> {
    /// A new connection around `tx`, with a generation no earlier connection had (a
    /// reconnecting peer's old socket must not remove its successor).
    pub fn new(tx: Outbox) -> Self {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let generation = GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { tx, pending: Default::default(), generation }
    }

    /// Send without waiting for the reply.
    pub fn send(&self, msg: &P::Out) -> bool {
        self.tx.push_text(control::to_json(msg))
    }

    /// Send a request and wait for its reply.
    pub async fn request(&self, msg: P::Out) -> Option<P::Reply> {
        let id = P::request_id(&msg)?;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if !self.send(&msg) {
            lock(&self.pending).remove(&id);
            return None;
        }
        let r = tokio::time::timeout(REQUEST_TIMEOUT, rx).await.ok().and_then(Result::ok);
        lock(&self.pending).remove(&id);
        r
    }

    /// Hand a reply to the request waiting for it; false when none waits (timed out).
    pub fn complete(&self, id: control::RequestId, msg: P::Reply) -> bool {
        match lock(&self.pending).remove(&id) {
            Some(tx) => {
                let _ = tx.send(msg);
                true
            }
            None => false,
        }
    }
}

/// A bridge as the registry knows it (registered over `/bridge`).
pub struct RegisteredBridge {
    pub id: String,
    pub region: Option<String>,
    pub addresses: Vec<String>,
    pub version: String,
    pub load: LoadReport,
    /// While the bridge drains: when its participants move, by our clock, from the time left
    /// that the bridge (which owns the deadline) last reported.
    pub drain_deadline: Option<Instant>,
    /// The participants of a draining bridge were moved at its deadline.
    pub drain_migrated: bool,
    pub last_seen: Instant,
    pub conn: Option<BridgeConn>,
    /// Endpoints allocated since the last load report.
    pub recent: u64,
}

impl RegisteredBridge {
    /// A bridge that registered at `now` and has reported nothing yet.
    pub fn new(id: String, now: Instant) -> Self {
        Self {
            id,
            region: None,
            addresses: vec![],
            version: String::new(),
            load: Default::default(),
            drain_deadline: None,
            drain_migrated: false,
            last_seen: now,
            conn: None,
            recent: 0,
        }
    }

    pub fn draining(&self) -> bool {
        self.drain_deadline.is_some()
    }

    /// Follow the bridge's drain report (`None`: not draining), received at `now`.
    pub fn set_drain(&mut self, drain: Option<control::Drain>, now: Instant) {
        match drain {
            Some(d) => self.drain_deadline = Some(now + Duration::from_millis(d.remaining_ms())),
            None => {
                self.drain_deadline = None;
                self.drain_migrated = false;
            }
        }
    }
}

#[derive(Default)]
pub struct Inner {
    pub bridges: HashMap<String, RegisteredBridge>,
    pub recorders: HashMap<String, crate::recorder::RegisteredRecorder>,
}

pub struct App {
    pub settings: Settings,
    pub verifier: Option<Verifier>,
    pub metrics: Metrics,
    pub inner: Mutex<Inner>,
    rooms: Mutex<HashMap<String, RoomRef>>,
    next_id: AtomicU64,
    /// Connections per source address that have not joined a room.
    pub unauth: Arc<UnauthLimiter>,
    /// TCP connections per address (page assets, WebSockets before the upgrade).
    pub tcp_conns: Arc<UnauthLimiter>,
    /// This shard is a member of a group (`routing` in the config).
    pub routing: Option<Arc<crate::routing::Routing>>,
    /// Clients' ICE outcomes per bridge over the last minutes (`crate::ice`).
    pub ice: Mutex<crate::ice::IceStats>,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    pub fn new(settings: Settings) -> anyhow::Result<Arc<App>> {
        Self::with_routing(settings, None)
    }

    /// An App that routes joins across its group (`routing`), or alone (`None`).
    pub fn with_routing(
        settings: Settings,
        routing: Option<crate::routing::Routing>,
    ) -> anyhow::Result<Arc<App>> {
        let verifier = match &settings.jwt {
            Some(j) => Some(Verifier::new(j)?),
            None => None,
        };
        Ok(Arc::new(App {
            settings,
            verifier,
            metrics: Metrics::new(),
            inner: Mutex::new(Inner::default()),
            rooms: Mutex::default(),
            next_id: AtomicU64::new(1),
            unauth: Arc::default(),
            tcp_conns: Arc::default(),
            routing: routing.map(Arc::new),
            ice: Mutex::new(crate::ice::IceStats::new(Instant::now())),
        }))
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn stale(&self) -> Duration {
        Duration::from_secs(self.settings.bridge_stale_seconds.max(1))
    }

    /// The bridges gauge; room gauges are kept by the rooms themselves.
    pub fn update_gauges(&self, inner: &Inner) {
        self.metrics.bridges.set(inner.bridges.values().filter(|b| b.conn.is_some()).count() as i64);
    }

    pub fn room(&self, name: &str) -> Option<RoomRef> {
        lock(&self.rooms).get(name).cloned()
    }

    /// The room's handle, creating an empty room if there is none.
    pub fn room_entry(&self, name: &str) -> RoomRef {
        let lobby = self.settings.lobby_by_default;
        lock(&self.rooms).entry(name.to_string()).or_insert_with(|| Room::new(name, lobby)).clone()
    }

    /// Take a closed room out of the index (unless it was already replaced by a new one).
    pub fn forget_room(&self, name: &str, room: &RoomRef) {
        let mut rooms = lock(&self.rooms);
        if rooms.get(name).is_some_and(|r| Arc::ptr_eq(r, room)) {
            rooms.remove(name);
        }
    }

    pub fn all_rooms(&self) -> Vec<RoomRef> {
        lock(&self.rooms).values().cloned().collect()
    }

    /// The bridge for a conference: the one it is on (`current`) if still alive, else a new
    /// choice, preferring bridges in `region` (the participant's; else the shard's). The caller
    /// records the result in the room.
    pub fn bridge_for(
        &self,
        inner: &Inner,
        current: Option<&str>,
        region: Option<&str>,
    ) -> Option<(String, BridgeConn)> {
        let now = Instant::now();
        let stale = self.stale();
        if let Some(b) = current.and_then(|id| inner.bridges.get(id))
            && let Some(conn) = &b.conn
            && now.saturating_duration_since(b.last_seen) <= stale
            && !(b.draining() && b.drain_migrated)
        {
            // Existing conferences stay on a draining bridge until they are migrated.
            return Some((b.id.clone(), conn.clone()));
        }
        let candidates: Vec<Candidate> = inner
            .bridges
            .values()
            .map(|b| Candidate {
                id: b.id.clone(),
                region: b.region.clone(),
                stress: b.load.stress,
                endpoints: b.load.endpoints,
                draining: b.draining(),
                connected: b.conn.is_some(),
                last_seen: b.last_seen,
                recent: b.recent,
            })
            .collect();
        let chosen = select::select(
            &candidates,
            region.or(self.settings.region.as_deref()),
            now,
            stale,
            self.settings.bridge_capacity,
        )?;
        let conn = inner.bridges.get(&chosen)?.conn.clone()?;
        Some((chosen, conn))
    }
}
