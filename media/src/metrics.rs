//! Prometheus metrics, for people, dashboards and alerts (the operator reads `GET /load`).
//! Names come from `convene_proto::load::metric`.
//! The sans-IO core counts in plain numbers ([`SfuCounters`]); the media thread copies them
//! here with [`Metrics::export`] before anything it sends can be observed.
use std::time::Duration;

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use convene_proto::load::metric;

use crate::sfu::SfuCounters;

pub use crate::sfu::counters::DropReason;

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub endpoints: IntGauge,
    pub conferences: IntGauge,
    pub largest_conference: IntGauge,
    pub bitrate_in_bps: Gauge,
    pub bitrate_out_bps: Gauge,
    pub packets_in: IntCounter,
    pub packets_out: IntCounter,
    pub bytes_in: IntCounter,
    pub bytes_out: IntCounter,
    pub stress: Gauge,
    pub draining: IntGauge,
    /// 1 while the control connection to signaling is up (registered).
    pub signaling_connected: IntGauge,
    pub advertised: GaugeVec,
    pub dropped: IntCounterVec,
    pub loss: Gauge,
    pub rtt_seconds: Histogram,
    pub nacks_received: IntCounter,
    pub nacks_sent: IntCounter,
    pub keyframe_requests: IntCounter,
    pub layer_switches: IntCounter,
    pub forward_latency: Histogram,
    pub worker_endpoints: IntGaugeVec,
    pub worker_conferences: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        // Metric construction only fails on invalid names, which are literals here.
        macro_rules! reg {
            ($m:expr) => {{
                let m = $m.expect("valid metric definition");
                registry.register(Box::new(m.clone())).expect("unique metric");
                m
            }};
        }
        let m = Metrics {
            endpoints: reg!(IntGauge::new(metric::ENDPOINTS, "Endpoints allocated")),
            conferences: reg!(IntGauge::new(metric::CONFERENCES, "Conferences")),
            largest_conference: reg!(IntGauge::new(
                metric::LARGEST_CONFERENCE,
                "Endpoints in the largest conference"
            )),
            bitrate_in_bps: reg!(Gauge::new(metric::BITRATE_IN_BPS, "Received bits/s")),
            bitrate_out_bps: reg!(Gauge::new(metric::BITRATE_OUT_BPS, "Sent bits/s")),
            packets_in: reg!(IntCounter::new(
                metric::PACKETS_IN_TOTAL,
                "UDP/TCP packets received and accepted"
            )),
            packets_out: reg!(IntCounter::new(metric::PACKETS_OUT_TOTAL, "Packets sent")),
            bytes_in: reg!(IntCounter::new(metric::BYTES_IN_TOTAL, "Bytes received")),
            bytes_out: reg!(IntCounter::new(metric::BYTES_OUT_TOTAL, "Bytes sent")),
            stress: reg!(Gauge::new(metric::STRESS_LEVEL, "Load against configured capacity, 0..1")),
            draining: reg!(IntGauge::new(metric::DRAINING, "1 while draining")),
            signaling_connected: reg!(IntGauge::new(
                metric::SIGNALING_CONNECTED,
                "1 while registered with signaling over the control connection"
            )),
            advertised: reg!(GaugeVec::new(
                Opts::new(
                    metric::ADVERTISED_ADDRESS_INFO,
                    "Address advertised to clients and how it was found"
                ),
                &["address", "source"]
            )),
            dropped: reg!(IntCounterVec::new(
                Opts::new(metric::DROPPED_PACKETS_TOTAL, "Dropped input by reason"),
                &["reason"]
            )),
            loss: reg!(Gauge::new(
                metric::PACKET_LOSS_RATIO,
                "Mean ingress+egress loss fraction reported by peers (last stats period)"
            )),
            rtt_seconds: reg!(Histogram::with_opts(
                HistogramOpts::new(metric::RTT_SECONDS, "Round-trip time to endpoints")
                    .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6])
            )),
            nacks_received: reg!(IntCounter::new(
                metric::NACKS_RECEIVED_TOTAL,
                "NACKs received from receivers"
            )),
            nacks_sent: reg!(IntCounter::new(metric::NACKS_SENT_TOTAL, "NACKs sent to senders")),
            keyframe_requests: reg!(IntCounter::new(
                metric::KEYFRAME_REQUESTS_TOTAL,
                "PLI/FIR sent to senders"
            )),
            layer_switches: reg!(IntCounter::new(metric::LAYER_SWITCHES_TOTAL, "Simulcast layer switches")),
            forward_latency: reg!(Histogram::with_opts(
                HistogramOpts::new(
                    metric::FORWARD_LATENCY_SECONDS,
                    "Receive to send of forwarded media, sampled"
                )
                .buckets(vec![1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2])
            )),
            worker_endpoints: reg!(IntGaugeVec::new(
                Opts::new(
                    metric::WORKER_ENDPOINTS,
                    "Endpoints on each media worker (a conference lives on one)"
                ),
                &["worker"]
            )),
            worker_conferences: reg!(IntGaugeVec::new(
                Opts::new(
                    metric::WORKER_CONFERENCES,
                    "Conferences the dispatcher assigns to each media worker (several workers only)"
                ),
                &["worker"]
            )),
            registry,
        };
        // Every reason is a series from the start, at 0: a dashboard shows "none dropped"
        // rather than "no data", and rate() alerts see the first drop.
        for r in DropReason::ALL {
            m.dropped.with_label_values(&[r.label()]);
        }
        m
    }

    /// Bring the registry up to `now` from `last` (what the previous call exported): counters
    /// grow by the difference, gauges take the new value; then `last = now`.
    pub fn export(
        &self,
        now: &SfuCounters,
        last: &mut SfuCounters,
        rtt_samples: impl Iterator<Item = Duration>,
    ) {
        for rtt in rtt_samples {
            self.rtt_seconds.observe(rtt.as_secs_f64());
        }
        if now == last {
            return;
        }
        let add = |c: &IntCounter, now: u64, last: u64| {
            if now > last {
                c.inc_by(now - last);
            }
        };
        add(&self.packets_in, now.packets_in, last.packets_in);
        add(&self.bytes_in, now.bytes_in, last.bytes_in);
        add(&self.packets_out, now.packets_out, last.packets_out);
        add(&self.bytes_out, now.bytes_out, last.bytes_out);
        add(&self.nacks_received, now.nacks_received, last.nacks_received);
        add(&self.nacks_sent, now.nacks_sent, last.nacks_sent);
        add(&self.keyframe_requests, now.keyframe_requests, last.keyframe_requests);
        add(&self.layer_switches, now.layer_switches, last.layer_switches);
        for r in DropReason::ALL {
            let (n, l) = (now.dropped(r), last.dropped(r));
            if n > l {
                self.dropped.with_label_values(&[r.label()]).inc_by(n - l);
            }
        }
        if now.census != last.census {
            self.endpoints.set(now.census.endpoints as i64);
            self.conferences.set(now.census.conferences as i64);
            self.largest_conference.set(now.census.largest_conference as i64);
        }
        if now.draining != last.draining {
            self.draining.set(i64::from(now.draining));
        }
        if now.loss_ratio.to_bits() != last.loss_ratio.to_bits() {
            self.loss.set(now.loss_ratio);
        }
        *last = *now;
    }

    pub fn count_drop(&self, reason: DropReason) {
        self.dropped.with_label_values(&[reason.label()]).inc();
    }

    pub fn dropped_count(&self, reason: DropReason) -> u64 {
        self.dropped.with_label_values(&[reason.label()]).get()
    }

    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        // Text encoding of our own registry does not fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Stress 0..1: the larger of endpoint and bitrate utilisation against configured capacity.
pub fn stress(endpoints: u64, max_endpoints: u64, bitrate_bps: f64, max_bitrate_bps: f64) -> f64 {
    let e = if max_endpoints > 0 { endpoints as f64 / max_endpoints as f64 } else { 0.0 };
    let b = if max_bitrate_bps > 0.0 { bitrate_bps / max_bitrate_bps } else { 0.0 };
    let s = e.max(b);
    if s.is_finite() { s.clamp(0.0, 1.0) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stress_figure() {
        assert_eq!(stress(0, 100, 0.0, 1e9), 0.0);
        assert_eq!(stress(50, 100, 0.0, 1e9), 0.5);
        assert_eq!(stress(10, 100, 8e8, 1e9), 0.8);
        assert_eq!(stress(500, 100, 0.0, 1e9), 1.0);
        assert_eq!(stress(5, 0, 0.0, 0.0), 0.0);
    }

    #[test]
    fn core_counters_are_exported_as_totals() {
        let m = Metrics::new();
        let mut last = SfuCounters::default();
        let mut c = SfuCounters { packets_in: 5, bytes_out: 1200, draining: true, ..Default::default() };
        c.count_drop(DropReason::Flood);
        c.census.endpoints = 3;
        m.export(&c, &mut last, [Duration::from_millis(20)].into_iter());
        c.packets_in += 2;
        c.census.endpoints = 2;
        m.export(&c, &mut last, std::iter::empty());
        m.export(&c, &mut last, std::iter::empty());
        assert_eq!(last, c);
        let text = m.render();
        for line in [
            "convene_bridge_packets_in_total 7",
            "convene_bridge_bytes_out_total 1200",
            "convene_bridge_draining 1",
            "convene_bridge_endpoints 2",
            "convene_bridge_dropped_packets_total{reason=\"flood\"} 1",
            "convene_bridge_rtt_seconds_count 1",
        ] {
            assert!(text.contains(line), "missing {line}:\n{text}");
        }
        // Reasons never counted are series at 0.
        assert!(text.contains("convene_bridge_dropped_packets_total{reason=\"rejected\"} 0"), "{text}");
    }

    #[test]
    fn names_are_exported() {
        let m = Metrics::new();
        m.advertised.with_label_values(&["1.2.3.4", "static"]).set(1.0);
        m.count_drop(DropReason::Flood);
        let text = m.render();
        for name in [
            "convene_bridge_endpoints",
            "convene_bridge_conferences",
            "convene_bridge_largest_conference",
            "convene_bridge_bitrate_in_bps",
            "convene_bridge_bitrate_out_bps",
            "convene_bridge_packets_in_total",
            "convene_bridge_packets_out_total",
            "convene_bridge_stress_level",
            "convene_bridge_draining",
            "convene_bridge_signaling_connected",
            "convene_bridge_advertised_address_info{address=\"1.2.3.4\",source=\"static\"} 1",
            "convene_bridge_dropped_packets_total{reason=\"flood\"} 1",
        ] {
            assert!(text.contains(name), "missing {name}");
        }
    }
}
