//! Shared state: the bridge registry and the rooms, behind one mutex (never held across an
//! await). Bridge requests are answered through per-connection pending maps.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use convene_proto::control::{self, FromBridge, LoadReport, ToBridge};
use tokio::sync::{mpsc, oneshot};

use crate::auth::Verifier;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::protocol::{ParticipantInfo, RoomInfo, ServerMsg, WaitingInfo};
use crate::select::{self, Candidate};

pub type Tx = mpsc::UnboundedSender<ServerMsg>;

pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct BridgeConn {
    pub tx: mpsc::UnboundedSender<String>,
    pub pending: Arc<Mutex<HashMap<control::RequestId, oneshot::Sender<FromBridge>>>>,
    pub generation: u64,
}

impl BridgeConn {
    /// Send without waiting for the reply.
    pub fn send(&self, msg: &ToBridge) -> bool {
        self.tx.send(control::to_json(msg)).is_ok()
    }

    /// Send a request and wait for its reply.
    pub async fn request(&self, msg: ToBridge) -> Option<FromBridge> {
        let id = msg.request_id()?;
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
    pub fn complete(&self, id: control::RequestId, msg: FromBridge) -> bool {
        match lock(&self.pending).remove(&id) {
            Some(tx) => {
                let _ = tx.send(msg);
                true
            }
            None => false,
        }
    }
}

pub struct Bridge {
    pub id: String,
    pub region: Option<String>,
    pub addresses: Vec<String>,
    pub version: String,
    pub load: LoadReport,
    /// While the bridge drains: when its conferences move, by our clock, from the time left
    /// that the bridge (which owns the deadline) last reported.
    pub drain_deadline: Option<Instant>,
    /// The conferences of a draining bridge were moved at its deadline.
    pub drain_migrated: bool,
    pub last_seen: Instant,
    pub conn: Option<BridgeConn>,
    /// Endpoints allocated since the last load report.
    pub recent: u64,
}

impl Bridge {
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

pub struct Participant {
    pub info: ParticipantInfo,
    pub tx: Tx,
    pub seq: u64,
    /// Bridge holding this participant's endpoint.
    pub bridge: Option<String>,
    /// Whether the name/avatar came from a token (then they cannot be changed).
    pub fixed_identity: bool,
}

pub struct Waiter {
    pub info: ParticipantInfo,
    pub tx: Tx,
    pub fixed_identity: bool,
}

#[derive(Default)]
pub struct Room {
    pub name: String,
    pub participants: BTreeMap<String, Participant>,
    pub waiting: BTreeMap<String, Waiter>,
    pub bridge: Option<String>,
    pub password: Option<String>,
    pub lobby: bool,
    pub recording: bool,
    pub dominant: Option<String>,
    pub seq: u64,
}

impl Room {
    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            name: self.name.clone(),
            locked: self.password.is_some(),
            lobby: self.lobby,
            recording: self.recording,
            dominant_speaker: self.dominant.clone(),
        }
    }

    pub fn broadcast(&self, msg: &ServerMsg, except: Option<&str>) {
        for (id, p) in &self.participants {
            if Some(id.as_str()) != except {
                let _ = p.tx.send(msg.clone());
            }
        }
    }

    pub fn list(&self) -> Vec<ParticipantInfo> {
        let mut v: Vec<&Participant> = self.participants.values().collect();
        v.sort_by_key(|p| p.seq);
        v.into_iter().map(|p| p.info.clone()).collect()
    }

    pub fn waiting_list(&self) -> Vec<WaitingInfo> {
        self.waiting.iter().map(|(id, w)| WaitingInfo { id: id.clone(), name: w.info.name.clone() }).collect()
    }

    /// Tell the moderators who is waiting.
    pub fn notify_lobby(&self) {
        let msg = ServerMsg::Lobby { waiting: self.waiting_list() };
        for p in self.participants.values().filter(|p| p.info.moderator) {
            let _ = p.tx.send(msg.clone());
        }
    }
}

#[derive(Default)]
pub struct Inner {
    pub bridges: HashMap<String, Bridge>,
    pub rooms: HashMap<String, Room>,
}

pub struct App {
    pub settings: Settings,
    pub verifier: Option<Verifier>,
    pub metrics: Metrics,
    pub inner: Mutex<Inner>,
    next_id: AtomicU64,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl App {
    pub fn new(settings: Settings) -> anyhow::Result<Arc<App>> {
        let verifier = match &settings.jwt {
            Some(j) => Some(Verifier::new(j)?),
            None => None,
        };
        Ok(Arc::new(App {
            settings,
            verifier,
            metrics: Metrics::new(),
            inner: Mutex::new(Inner::default()),
            next_id: AtomicU64::new(1),
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

    pub fn update_gauges(&self, inner: &Inner) {
        self.metrics.rooms.set(inner.rooms.len() as i64);
        self.metrics.participants.set(inner.rooms.values().map(|r| r.participants.len() as i64).sum());
        self.metrics.lobby_waiting.set(inner.rooms.values().map(|r| r.waiting.len() as i64).sum());
        self.metrics.bridges.set(inner.bridges.values().filter(|b| b.conn.is_some()).count() as i64);
    }

    /// The bridge for a conference: the one it is on if still alive, else a new choice.
    pub fn bridge_for(&self, inner: &mut Inner, room: &str) -> Option<(String, BridgeConn)> {
        let now = Instant::now();
        let stale = self.stale();
        let current = inner.rooms.get(room).and_then(|r| r.bridge.clone());
        if let Some(b) = current.and_then(|id| inner.bridges.get(&id))
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
            self.settings.region.as_deref(),
            now,
            stale,
            self.settings.bridge_capacity,
        )?;
        let conn = inner.bridges.get(&chosen)?.conn.clone()?;
        if let Some(r) = inner.rooms.get_mut(room) {
            r.bridge = Some(chosen.clone());
        }
        Some((chosen, conn))
    }
}
