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
}

impl Context {
    pub fn new(client: Client, render: RenderConfig, metrics: Metrics, reporter: Reporter) -> Self {
        Self {
            client,
            render,
            metrics,
            reporter,
            windows: Default::default(),
            started: std::time::Instant::now(),
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
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let ev = Event {
            type_: if warning { EventType::Warning } else { EventType::Normal },
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
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
