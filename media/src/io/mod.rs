//! The thin I/O around the sans-IO core: the media thread (UDP + commands) and ICE-TCP.
pub mod admission;
pub mod batch;
pub mod dispatch;
pub mod latency;
pub mod steer;
pub mod tcp;
pub mod udp;

use std::net::SocketAddr;

use crate::control::{Drain, ToBridge};

/// What the async side asks of the media thread.
#[derive(Debug)]
pub enum Command {
    /// A control message from signaling (or a test acting as signaling).
    Control(ToBridge),
    /// One de-framed packet from an ICE-TCP connection.
    TcpPacket {
        source: SocketAddr,
        destination: SocketAddr,
        data: Vec<u8>,
    },
    /// Drain (or stop draining), with the deadline signaling should move endpoints at.
    SetDraining(Option<Drain>),
    Shutdown,
}
