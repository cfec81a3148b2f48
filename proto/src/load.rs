//! A bridge's load: the typed report it sends signaling (in control `load` frames) and serves
//! the operator as JSON on [`crate::paths::BRIDGE_LOAD`], the drain deadline it owns, and the
//! names of its Prometheus metrics (for people, dashboards and alerts).
use serde::{Deserialize, Serialize};

/// Load figures, one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadReport {
    pub endpoints: u64,
    pub conferences: u64,
    pub largest_conference: u64,
    pub bitrate_in_bps: u64,
    pub bitrate_out_bps: u64,
    pub packets_in_per_s: u64,
    pub packets_out_per_s: u64,
    /// 0..1 against the configured capacity (endpoints and bitrate).
    pub stress: f64,
    /// Present while the bridge drains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
    /// How clients' ICE went with this bridge, as signaling last counted it (absent until
    /// signaling sent counts, and when they are stale; older bridges never send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice: Option<IceCounts>,
}

/// How long signaling keeps clients' ICE reports for a bridge: [`IceCounts`] cover this much
/// of the recent past (to within a minute).
pub const ICE_WINDOW_SECS: u64 = 600;

/// Clients' ICE outcomes with one bridge over the last [`ICE_WINDOW_SECS`], from the web
/// app's reports (`ice_report`, one per peer connection). Signaling counts them and sends them
/// to the bridge (control `ice_stats`); the bridge puts them in its load report, where the
/// operator reads them to tell a bridge that clients cannot reach (advertised address wrong,
/// UDP blocked) and a pool whose clients mostly go through TURN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCounts {
    /// Peer connections that connected.
    pub connected: u64,
    /// Of `connected`, those whose selected pair's local candidate was a TURN relay.
    pub relayed: u64,
    /// Peer connections whose ICE failed or that did not connect in time.
    pub failed: u64,
}

impl IceCounts {
    /// The share of connections relayed through TURN (0 without any).
    pub fn relayed_share(&self) -> f64 {
        if self.connected == 0 {
            0.0
        } else {
            self.relayed.min(self.connected) as f64 / self.connected as f64
        }
    }
}

impl std::ops::Add for IceCounts {
    type Output = IceCounts;
    fn add(self, o: IceCounts) -> IceCounts {
        IceCounts {
            connected: self.connected.saturating_add(o.connected),
            relayed: self.relayed.saturating_add(o.relayed),
            failed: self.failed.saturating_add(o.failed),
        }
    }
}

impl LoadReport {
    pub fn draining(&self) -> bool {
        self.drain.is_some()
    }
    /// Media in + out, Mbit/s.
    pub fn mbps(&self) -> f64 {
        (self.bitrate_in_bps + self.bitrate_out_bps) as f64 / 1e6
    }
}

/// A drain and its deadline. The bridge owns both, measured on its own clock and sent as
/// durations, so no reader compares clocks of different machines: a reader's deadline is
/// "when I received this + [`Drain::remaining_ms`]".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drain {
    /// Time since the drain began.
    pub elapsed_ms: u64,
    /// Time from the drain's start after which signaling moves the endpoints still here.
    pub deadline_ms: u64,
}

impl Drain {
    /// Time left until the deadline (0 once it passed).
    pub fn remaining_ms(&self) -> u64 {
        self.deadline_ms.saturating_sub(self.elapsed_ms)
    }
    /// Time since the deadline passed (0 before it).
    pub fn overdue_ms(&self) -> u64 {
        self.elapsed_ms.saturating_sub(self.deadline_ms)
    }
}

/// Prometheus metric names of `convene-bridge`.
pub mod metric {
    pub const ENDPOINTS: &str = "convene_bridge_endpoints";
    pub const CONFERENCES: &str = "convene_bridge_conferences";
    pub const LARGEST_CONFERENCE: &str = "convene_bridge_largest_conference";
    pub const BITRATE_IN_BPS: &str = "convene_bridge_bitrate_in_bps";
    pub const BITRATE_OUT_BPS: &str = "convene_bridge_bitrate_out_bps";
    pub const PACKETS_IN_TOTAL: &str = "convene_bridge_packets_in_total";
    pub const PACKETS_OUT_TOTAL: &str = "convene_bridge_packets_out_total";
    pub const BYTES_IN_TOTAL: &str = "convene_bridge_bytes_in_total";
    pub const BYTES_OUT_TOTAL: &str = "convene_bridge_bytes_out_total";
    pub const STRESS_LEVEL: &str = "convene_bridge_stress_level";
    pub const DRAINING: &str = "convene_bridge_draining";
    pub const SIGNALING_CONNECTED: &str = "convene_bridge_signaling_connected";
    pub const ADVERTISED_ADDRESS_INFO: &str = "convene_bridge_advertised_address_info";
    pub const DROPPED_PACKETS_TOTAL: &str = "convene_bridge_dropped_packets_total";
    pub const PACKET_LOSS_RATIO: &str = "convene_bridge_packet_loss_ratio";
    pub const RTT_SECONDS: &str = "convene_bridge_rtt_seconds";
    pub const NACKS_RECEIVED_TOTAL: &str = "convene_bridge_nacks_received_total";
    pub const NACKS_SENT_TOTAL: &str = "convene_bridge_nacks_sent_total";
    pub const KEYFRAME_REQUESTS_TOTAL: &str = "convene_bridge_keyframe_requests_total";
    pub const LAYER_SWITCHES_TOTAL: &str = "convene_bridge_layer_switches_total";
    pub const FORWARD_LATENCY_SECONDS: &str = "convene_bridge_forward_latency_seconds";
    /// Endpoints per media worker (`worker` label: its index); the sum is `ENDPOINTS`.
    pub const WORKER_ENDPOINTS: &str = "convene_bridge_worker_endpoints";
    /// Conferences the dispatcher assigns to each media worker (several workers only): its
    /// owner table, which must shrink when conferences end or their allocation is refused.
    pub const WORKER_CONFERENCES: &str = "convene_bridge_worker_conferences";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_arithmetic_and_wire_form() {
        let d = Drain { elapsed_ms: 4_000, deadline_ms: 10_000 };
        assert_eq!((d.remaining_ms(), d.overdue_ms()), (6_000, 0));
        let d = Drain { elapsed_ms: 12_500, deadline_ms: 10_000 };
        assert_eq!((d.remaining_ms(), d.overdue_ms()), (0, 2_500));
        let r = LoadReport { endpoints: 3, drain: Some(d), ..Default::default() };
        let back: LoadReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(back.draining());
        let idle: LoadReport = serde_json::from_str(r#"{"endpoints":0,"conferences":0,"largest_conference":0,"bitrate_in_bps":0,"bitrate_out_bps":0,"packets_in_per_s":0,"packets_out_per_s":0,"stress":0.0}"#).unwrap();
        assert!(!idle.draining());
        assert_eq!(idle.ice, None, "a report without ICE counts (an older bridge) reads as none");
    }

    #[test]
    fn ice_counts_are_optional_on_the_wire_and_add_up() {
        let r = LoadReport { endpoints: 1, ..Default::default() };
        assert!(!serde_json::to_string(&r).unwrap().contains("ice"), "absent, not null");
        let ice = IceCounts { connected: 8, relayed: 2, failed: 1 };
        let r = LoadReport { ice: Some(ice), ..r };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains(r#""ice":{"connected":8,"relayed":2,"failed":1}"#), "{s}");
        assert_eq!(serde_json::from_str::<LoadReport>(&s).unwrap(), r);
        assert_eq!(ice.relayed_share(), 0.25);
        assert_eq!(IceCounts::default().relayed_share(), 0.0);
        assert_eq!(ice + ice, IceCounts { connected: 16, relayed: 4, failed: 2 });
    }
}
