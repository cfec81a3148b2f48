//! The operator's own Prometheus metrics, prefixed `convene_operator_`.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub leader: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry =
            Registry::new_custom(Some("convene_operator".into()), None).expect("static prefix is valid");
        let reconciles =
            IntCounterVec::new(Opts::new("reconciles_total", "Reconciles run, by kind"), &["kind"])
                .expect("static metric");
        let errors = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Reconciles that failed, by kind and reason"),
            &["kind", "reason"],
        )
        .expect("static metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("reconcile_duration_seconds", "Time one reconcile took, by kind")
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["kind"],
        )
        .expect("static metric");
        let leader =
            IntGauge::new("leader", "1 while this replica holds the leader Lease").expect("static metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
        ] {
            registry.register(c).expect("metrics are registered once");
        }
        Self { registry, reconciles, errors, duration, leader }
    }
}

impl Metrics {
    /// Text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode_utf8(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }
}
