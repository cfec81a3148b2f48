//! Convene media plane: the `convene-bridge` SFU (str0m, one UDP port, ICE-lite, simulcast,
//! last-N).
//!
//! Layout: [`control`] (the control protocol, from `convene-proto`), [`sfu`] (sans-IO
//! forwarding core), [`io`] (sockets driving the core), [`bridge`] (wiring), [`http`]
//! (metrics/load/health/drain), [`metrics`] (Prometheus, fed from the core's counters),
//! [`control_client`] (the bridge's control WebSocket client: it dials signaling),
//! [`control_queue`] (bounded, towards it), [`control_dial`] (ws/wss with a CA),
//! [`address`] (advertised address discovery), [`config`], [`recorder`] (issue 13, started:
//! the sans-IO per-track WebM writer).
pub mod address;
pub mod bridge;
pub mod config;
pub mod control;
pub mod control_client;
pub mod control_dial;
pub mod control_queue;
pub mod http;
pub mod io;
pub mod metrics;
pub mod recorder;
pub mod sfu;

/// Install str0m's default crypto provider (aws-lc-rs) for the process, once.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        str0m::crypto::from_feature_flags().install_process_default();
    });
}
