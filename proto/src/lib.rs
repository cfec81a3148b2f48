//! What Convene's programs say to each other, in one place.
//!
//! Every message, config field, environment name, metric name and HTTP path that crosses a
//! program boundary is declared here and nowhere else: the web app and signaling
//! ([`client`]), signaling and bridges ([`control`]), the operator and signaling ([`config`], [`routing`]),
//! the operator and bridges ([`bridge`], [`load`]), signaling and recorders ([`recorder`]).
//! Serde and schemars only: no runtime, no I/O, so every program can depend on it.
pub mod bridge;
pub mod client;
pub mod config;
pub mod control;
pub mod load;
pub mod media;
pub mod paths;
pub mod recorder;
pub mod routing;
pub mod turn;
