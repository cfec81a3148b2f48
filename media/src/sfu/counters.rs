//! What the core counts, as plain numbers. The core is single-threaded and knows nothing of
//! Prometheus: the I/O layer copies these into the registry (`crate::metrics`).

/// Why an incoming packet or control message was dropped (label values of
/// `convene_bridge_dropped_packets_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Not STUN/DTLS/RTP/RTCP by its first byte, or too short.
    Unparseable,
    /// STUN whose USERNAME names no endpoint of ours.
    UnknownUfrag,
    /// STUN without a usable USERNAME attribute.
    MalformedStun,
    /// DTLS/RTP/RTCP from an address no endpoint has done ICE from.
    UnknownSource,
    /// Over the per-address packet rate.
    Flood,
    /// The endpoint's str0m instance refused it (bad DTLS, SRTP auth failure, …).
    Rejected,
    /// Garbage or oversized control message.
    Control,
    /// Malformed ICE-TCP framing.
    TcpFraming,
    /// An ICE-TCP connection refused: its source address holds too many, or the bridge is full
    /// of connections that all completed ICE.
    TcpRefused,
    /// An ICE-TCP connection closed because it got no ICE answer in time (or was evicted to
    /// make room while still unanswered).
    TcpUnanswered,
    /// An HTTP connection refused: its source address holds too many, or the bridge is full
    /// of connections that all sent a request.
    HttpRefused,
    /// An HTTP connection closed for sending no (complete) request in time, stalling, or
    /// being evicted to make room before it sent one.
    HttpIdle,
    /// A message for signaling dropped because the control queue was full (the connection
    /// is then reset; signaling resyncs on `register`).
    ControlQueue,
    /// A batch of datagrams for a media worker dropped: that worker had too many queued
    /// already (several workers only; see `io::steer`).
    Overload,
    /// A forwarded packet not queued for a receiver: its send queue in str0m already holds
    /// `MAX_EGRESS_QUEUE` packets (it takes less than it is sent; the pacer cannot keep up).
    EgressQueue,
}

impl DropReason {
    /// Every reason, in declaration order (`reason as usize` indexes this).
    pub const ALL: [DropReason; 15] = [
        DropReason::Unparseable,
        DropReason::UnknownUfrag,
        DropReason::MalformedStun,
        DropReason::UnknownSource,
        DropReason::Flood,
        DropReason::Rejected,
        DropReason::Control,
        DropReason::TcpFraming,
        DropReason::TcpRefused,
        DropReason::TcpUnanswered,
        DropReason::HttpRefused,
        DropReason::HttpIdle,
        DropReason::ControlQueue,
        DropReason::Overload,
        DropReason::EgressQueue,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::Unparseable => "unparseable",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::MalformedStun => "malformed_stun",
            DropReason::UnknownSource => "unknown_source",
            DropReason::Flood => "flood",
            DropReason::Rejected => "rejected",
            DropReason::Control => "control",
            DropReason::TcpFraming => "tcp_framing",
            DropReason::TcpRefused => "tcp_refused",
            DropReason::TcpUnanswered => "tcp_unanswered",
            DropReason::HttpRefused => "http_refused",
            DropReason::HttpIdle => "http_idle",
            DropReason::ControlQueue => "control_queue",
            DropReason::Overload => "overload",
            DropReason::EgressQueue => "egress_queue",
        }
    }
}

/// Endpoint and conference counts (gauges; also behind `Load`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub endpoints: u64,
    pub conferences: u64,
    pub largest_conference: u64,
}

/// Totals since start (counters) and current values (gauges), one field per Prometheus
/// series the core feeds. RTT samples are kept apart (see `Sfu::drain_rtt_samples`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SfuCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub nacks_received: u64,
    pub nacks_sent: u64,
    pub keyframe_requests: u64,
    pub layer_switches: u64,
    /// Dropped input by reason, indexed by `DropReason as usize`.
    pub dropped: [u64; DropReason::ALL.len()],
    pub census: Census,
    pub draining: bool,
    /// Mean ingress+egress loss fraction of the latest peer stats.
    pub loss_ratio: f64,
}

impl SfuCounters {
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_declaration_order() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{}", r.label());
        }
    }
}
