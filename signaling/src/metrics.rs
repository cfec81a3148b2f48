//! Prometheus metrics (`convene_signaling_*`).
use crate::auth::AuthError;
use crate::outbox::CloseReason;
use convene_proto::client::{ErrorCode, TurnError};
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct Metrics {
    pub registry: Registry,
    pub ws_connections: IntGauge,
    pub rooms: IntGauge,
    pub participants: IntGauge,
    pub lobby_waiting: IntGauge,
    pub bridges: IntGauge,
    pub joins: IntCounter,
    pub auth_failures: IntCounterVec,
    pub refusals: IntCounterVec,
    pub allocation_failures: IntCounter,
    pub migrations: IntCounter,
    /// Registered bridges forgotten because their control connection did not come back or
    /// they went silent, by what they were doing then (`serving`, `draining`).
    pub bridges_lost: IntCounterVec,
    /// Frames / bytes queued for sending, by peer (`client`, `bridge`).
    pub queued_frames: IntGaugeVec,
    pub queued_bytes: IntGaugeVec,
    /// Connections we closed, by reason (`slow_consumer`, `join_timeout`, `idle_timeout`,
    /// `too_large`, `kicked`, `lobby_denied`, `unauthenticated_limit`, `redirected`).
    pub disconnects: IntCounterVec,
    /// Members of this shard's group, by state (`listed`, `ready`, `eligible`: ready and not
    /// draining, `unhealthy`: failed a peer query in the last seconds).
    pub routing_members: IntGaugeVec,
    /// Reads of the group membership file that failed (the last good membership is kept).
    pub routing_membership_errors: IntCounter,
    /// Queries to other signalings of the group that failed or timed out, by peer shard.
    pub routing_peer_failures: IntCounterVec,
    /// Joins sent to another shard, by why (`live`: the room is live there, `owner`: it owns
    /// the room).
    pub routing_redirects: IntCounterVec,
    /// Participants in rooms, by their region (`unknown` without one).
    pub participants_by_region: IntGaugeVec,
    /// Clients' peer connections to bridges, by bridge, outcome (`connected`, `failed`) and
    /// the selected pair's local candidate type (`host`, `srflx`, `prflx`, `relay`: through
    /// TURN; `unknown`; `none` for a failure), from the web app's `ice_report`s.
    pub ice: IntCounterVec,
    /// TURN relay errors clients reported, by reason (auth, refused, unreachable).
    pub turn_errors: IntCounterVec,
}

/// The `reason`s of the auth failure and disconnect counters that are not an [`AuthError`] or
/// a [`CloseReason`].
pub mod reason {
    /// A guest (no token) where the shard requires tokens.
    pub const GUEST_FORBIDDEN: &str = "guest_forbidden";
    /// A token without the right to create the room it asked for.
    pub const ROOM_CREATION: &str = "room_creation";
    /// Another signaling of the group presented a wrong group secret.
    pub const GROUP_SECRET: &str = "group_secret";
    /// A bridge or recorder presented a wrong control secret.
    pub const BRIDGE_SECRET: &str = "bridge_secret";
    /// Disconnect: the address holds too many connections that have not joined.
    pub const UNAUTHENTICATED_LIMIT: &str = "unauthenticated_limit";
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new_custom(Some("convene_signaling".into()), None).unwrap_or_default();
        let gauge = |n: &str, h: &str| {
            let g =
                IntGauge::new(n, h).unwrap_or_else(|_| IntGauge::new("invalid", "invalid").expect("static"));
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let counter = |n: &str, h: &str| {
            let c = IntCounter::new(n, h)
                .unwrap_or_else(|_| IntCounter::new("invalid", "invalid").expect("static"));
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let vec = |n: &str, h: &str, l: &str| {
            let c = IntCounterVec::new(Opts::new(n, h), &[l]).expect("static metric definition");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let gvec = |n: &str, h: &str, l: &str| {
            let g = IntGaugeVec::new(Opts::new(n, h), &[l]).expect("static metric definition");
            let _ = registry.register(Box::new(g.clone()));
            g
        };
        let m = Metrics {
            queued_frames: gvec("queued_frames", "Frames queued for sending, by peer", "peer"),
            queued_bytes: gvec("queued_bytes", "Bytes queued for sending, by peer", "peer"),
            disconnects: vec("disconnects_total", "Connections closed by signaling, by reason", "reason"),
            ws_connections: gauge("websocket_connections", "Open client WebSocket connections"),
            rooms: gauge("rooms", "Rooms with at least one participant"),
            participants: gauge("participants", "Participants in rooms"),
            lobby_waiting: gauge("lobby_waiting", "Participants waiting in lobbies"),
            bridges: gauge("bridges", "Registered bridges"),
            joins: counter("joins_total", "Successful joins"),
            auth_failures: vec("auth_failures_total", "Refused tokens and guests, by reason", "reason"),
            refusals: vec("refusals_total", "Typed errors sent to clients, by code", "code"),
            allocation_failures: counter("allocation_failures_total", "Endpoint allocations that failed"),
            migrations: counter("migrations_total", "Participants moved to another bridge"),
            bridges_lost: vec(
                "bridges_lost_total",
                "Registered bridges lost (connection gone or silent), by state: serving or draining",
                "state",
            ),
            routing_members: gvec("routing_members", "Members of the shard group, by state", "state"),
            routing_membership_errors: counter(
                "routing_membership_errors_total",
                "Group membership file reads that failed (the last good one is kept)",
            ),
            routing_peer_failures: vec(
                "routing_peer_failures_total",
                "Room queries to other signalings of the group that failed, by peer",
                "peer",
            ),
            routing_redirects: vec(
                "routing_redirects_total",
                "Joins redirected to another shard, by why",
                "why",
            ),
            ice: {
                let c = IntCounterVec::new(
                    Opts::new(
                        "ice_total",
                        "Clients' peer connections to bridges, by bridge, ICE outcome and local candidate type",
                    ),
                    &["bridge", "outcome", "candidate"],
                )
                .expect("static metric definition");
                let _ = registry.register(Box::new(c.clone()));
                c
            },
            turn_errors: vec(
                "turn_errors_total",
                "TURN relays that gave a client no allocation, by why (auth, refused, unreachable), as clients report",
                "reason",
            ),
            participants_by_region: gvec(
                "participants_by_region",
                "Participants in rooms, by region (edge header, token claim or the shard's)",
                "region",
            ),
            registry,
        };
        // Every known label value is a series from the start at 0: `increase()` sees the first
        // event (a counter series born at 1 has no increase to Prometheus), and a dashboard
        // shows "none" rather than "no data".
        for state in ["serving", "draining"] {
            m.bridges_lost.with_label_values(&[state]);
        }
        let auth =
            [reason::GUEST_FORBIDDEN, reason::ROOM_CREATION, reason::GROUP_SECRET, reason::BRIDGE_SECRET];
        for r in AuthError::ALL.map(AuthError::reason).into_iter().chain(auth) {
            m.auth_failures.with_label_values(&[r]);
        }
        for r in CloseReason::ALL.map(CloseReason::as_str).into_iter().chain([reason::UNAUTHENTICATED_LIMIT])
        {
            m.disconnects.with_label_values(&[r]);
        }
        for c in ErrorCode::ALL {
            m.refusals.with_label_values(&[c.as_str()]);
        }
        for e in TurnError::ALL {
            m.turn_errors.with_label_values(&[e.as_str()]);
        }
        m
    }

    pub fn render(&self) -> String {
        let enc = prometheus::TextEncoder::new();
        enc.encode_to_string(&self.registry.gather()).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
