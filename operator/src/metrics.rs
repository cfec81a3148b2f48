//! The operator's own Prometheus metrics, prefixed `convene_operator_`.

use crate::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use crate::reconcile::error::Error;
use kube::Resource;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub reconciles: IntCounterVec,
    pub errors: IntCounterVec,
    pub duration: HistogramVec,
    pub leader: IntGauge,
    /// Per BridgePool (`namespace`, `pool`): what the autoscaler saw and decided.
    pub pool_desired: IntGaugeVec,
    pub pool_running: IntGaugeVec,
    pub pool_endpoints: IntGaugeVec,
    pub pool_mbps: IntGaugeVec,
    pub pool_unknown: IntGaugeVec,
    /// Per Shard (`namespace`, `shard`, `secret`): when its Ingress certificate expires (Unix
    /// seconds).
    pub shard_cert_expiry: IntGaugeVec,
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
        let pool = |name: &str, help: &str| {
            IntGaugeVec::new(Opts::new(name, help), &["namespace", "pool"]).expect("static metric")
        };
        let pool_desired =
            pool("bridgepool_desired_replicas", "Bridges the pool should run (autoscaler or spec.replicas)");
        let pool_running = pool("bridgepool_replicas", "Bridges the pool's StatefulSet runs");
        let pool_endpoints =
            pool("bridgepool_endpoints", "Endpoints the pool's bridges reported at the last scrape");
        let pool_mbps =
            pool("bridgepool_mbps", "Bitrate in + out (Mbps) the pool's bridges reported at the last scrape");
        let pool_unknown = pool("bridgepool_unknown_bridges", "Bridges that did not answer the last scrape");
        let shard_cert_expiry = IntGaugeVec::new(
            Opts::new(
                "shard_certificate_expiry_timestamp_seconds",
                "When the certificate of the Shard's Ingress TLS Secret expires (Unix seconds)",
            ),
            &["namespace", "shard", "secret"],
        )
        .expect("static metric");
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(errors.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
            Box::new(pool_desired.clone()),
            Box::new(pool_running.clone()),
            Box::new(pool_endpoints.clone()),
            Box::new(pool_mbps.clone()),
            Box::new(pool_unknown.clone()),
            Box::new(shard_cert_expiry.clone()),
        ] {
            registry.register(c).expect("metrics are registered once");
        }
        // Each kind's series from the start, at 0: the dashboards show "no errors" rather
        // than "no data", and rate() alerts see the first error.
        let kinds = [Shard::kind(&()), BridgePool::kind(&()), TurnPool::kind(&()), RecorderPool::kind(&())];
        for kind in kinds {
            reconciles.with_label_values(&[&kind]);
            for reason in Error::REASONS {
                errors.with_label_values(&[&kind, reason]);
            }
        }
        Self {
            registry,
            reconciles,
            errors,
            duration,
            leader,
            pool_desired,
            pool_running,
            pool_endpoints,
            pool_mbps,
            pool_unknown,
            shard_cert_expiry,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_gauges_are_exported_with_the_operator_prefix() {
        let m = Metrics::default();
        m.pool_desired.with_label_values(&["ns", "meet"]).set(4);
        m.pool_unknown.with_label_values(&["ns", "meet"]).set(1);
        let text = m.render();
        assert!(
            text.contains("convene_operator_bridgepool_desired_replicas{namespace=\"ns\",pool=\"meet\"} 4"),
            "{text}"
        );
        assert!(
            text.contains("convene_operator_bridgepool_unknown_bridges{namespace=\"ns\",pool=\"meet\"} 1")
        );
        m.shard_cert_expiry.with_label_values(&["ns", "meet", "meet-tls"]).set(1_800_000_000);
        assert!(m.render().contains(
            "convene_operator_shard_certificate_expiry_timestamp_seconds{namespace=\"ns\",secret=\"meet-tls\",shard=\"meet\"} 1800000000"
        ));
    }

    #[test]
    fn each_kind_has_its_reconcile_and_error_series_before_the_first_reconcile() {
        let text = Metrics::default().render();
        for kind in ["Shard", "BridgePool", "TurnPool", "RecorderPool"] {
            assert!(
                text.contains(&format!("convene_operator_reconciles_total{{kind=\"{kind}\"}} 0")),
                "{text}"
            );
            let errors =
                format!("convene_operator_reconcile_errors_total{{kind=\"{kind}\",reason=\"client\"}} 0");
            assert!(text.contains(&errors), "{text}");
        }
    }
}
