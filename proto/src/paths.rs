//! HTTP paths served by one program and called by another.

/// Signaling: the client WebSocket (web app, loadgen).
pub const SIGNALING_CLIENT_WS: &str = "/ws";
/// Signaling: the bridge-control WebSocket bridges dial.
pub const SIGNALING_BRIDGE_WS: &str = "/bridge";
/// Signaling: the recorder-control WebSocket recorders dial.
pub const SIGNALING_RECORDER_WS: &str = "/recorder";

/// Signaling, for the other signalings of its group: `GET` + room name answers whether the
/// room is live there ([`crate::routing::RoomPresence`]); `Authorization: Bearer <group secret>`.
pub const SIGNALING_INTERNAL_ROOMS: &str = "/internal/rooms/";
/// Signaling: prefix under which a shard of a group is reached on the group's shared domain;
/// the client WebSocket is at [`shard_ws_path`] (the Ingress routes the prefix to the shard's
/// signaling, which serves the path as is: no rewrite).
pub const SHARD_PREFIX: &str = "/_shard/";

/// The client WebSocket path of `shard` on the group's domain: `/_shard/<shard>/ws`.
pub fn shard_ws_path(shard: &str) -> String {
    format!("{SHARD_PREFIX}{shard}{SIGNALING_CLIENT_WS}")
}

/// Bridge and signaling: liveness (the process answers).
pub const HEALTH: &str = "/health";
/// Bridge and signaling: readiness (a bridge is not ready while draining).
pub const READY: &str = "/ready";
/// Prometheus text format, for people and Prometheus.
pub const METRICS: &str = "/metrics";
/// Bridge: the typed load report ([`crate::load::LoadReport`] as JSON), for the operator.
pub const BRIDGE_LOAD: &str = "/load";
/// Recorder: its load ([`crate::recorder::RecorderLoad`] as JSON), for the operator.
pub const RECORDER_LOAD: &str = "/load";
/// Recorder: `POST` starts draining (no new recordings; running ones carry on to their end).
pub const RECORDER_DRAIN: &str = "/drain";
/// Bridge: `POST` starts draining; query [`DRAIN_DEADLINE_QUERY`] sets the deadline.
pub const BRIDGE_DRAIN: &str = "/drain";
/// Query parameter of [`BRIDGE_DRAIN`]: seconds until signaling moves what is left.
pub const DRAIN_DEADLINE_QUERY: &str = "migrate_after_seconds";

/// The bridge's drain URL for a deadline.
pub fn drain_url(base: &str, deadline_seconds: u64) -> String {
    format!("{base}{BRIDGE_DRAIN}?{DRAIN_DEADLINE_QUERY}={deadline_seconds}")
}
