//! What every reconcile gets: a client, the render settings, metrics and an event reporter.

use crate::metrics::Metrics;
use crate::render::RenderConfig;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};

pub struct Context {
    pub client: Client,
    pub render: RenderConfig,
    pub metrics: Metrics,
    pub reporter: Reporter,
    /// Autoscaler stabilisation windows per pool (`namespace/name`). In memory: a new leader
    /// starts the windows afresh, which only delays a decision.
    pub windows: std::sync::Mutex<std::collections::HashMap<String, crate::autoscale::Windows>>,
    /// Monotonic origin for the windows.
    pub started: std::time::Instant,
    /// The conditions this process last wrote per object (by uid): the baseline for Events,
    /// since the watch cache may still hold an older status.
    pub written: std::sync::Mutex<
        std::collections::HashMap<String, Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    >,
    /// One Event recorder for the process.
    pub recorder: Recorder,
}

impl Context {
    pub fn new(client: Client, render: RenderConfig, metrics: Metrics, reporter: Reporter) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), reporter.clone()),
            client,
            render,
            metrics,
            reporter,
            windows: Default::default(),
            started: std::time::Instant::now(),
            written: Default::default(),
        }
    }
}

impl Context {
    /// Publish a Kubernetes Event about `obj`. Failing to publish is logged, never fatal.
    pub async fn event<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }

    /// Time one reconcile and count it, and its error if any.
    pub async fn measured<T>(
        &self,
        kind: &str,
        fut: impl Future<Output = super::error::Result<T>>,
    ) -> super::error::Result<T> {
        let timer = self.metrics.duration.with_label_values(&[kind]).start_timer();
        self.metrics.reconciles.with_label_values(&[kind]).inc();
        let result = fut.await;
        timer.observe_duration();
        if let Err(e) = &result {
            self.metrics.errors.with_label_values(&[kind, &e.reason()]).inc();
        }
        result
    }
}
