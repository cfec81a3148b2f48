//! What every reconcile gets: a client, the render settings, metrics, the one event recorder,
//! the watched kinds' stores, and the bridges' latest loads.

use crate::metrics::Metrics;
use crate::render::RenderConfig;
use crate::stores::Stores;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;

/// What the controllers of every watched namespace share.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub render: RenderConfig,
    pub metrics: Metrics,
    /// One Event recorder for the process.
    pub recorder: Recorder,
}

impl Shared {
    pub fn new(client: Client, render: RenderConfig, metrics: Metrics, reporter: Reporter) -> Self {
        Self { recorder: Recorder::new(client.clone(), reporter), client, render, metrics }
    }
}

pub struct Context {
    pub client: Client,
    pub render: RenderConfig,
    pub metrics: Metrics,
    pub recorder: Recorder,
    /// The watched kinds, as the watches last saw them.
    pub stores: Stores,
    /// Autoscaler stabilisation windows per pool (`namespace/name`). In memory: a new leader
    /// starts the windows afresh, which only delays a decision.
    pub windows: Mutex<HashMap<String, crate::autoscale::Windows>>,
    /// The same for RecorderPools (by `namespace/name`), apart from the bridge pools' map, which
    /// the load watch prunes to the pools it watches.
    pub recorder_windows: Mutex<HashMap<String, crate::autoscale::Windows>>,
    /// Monotonic origin for the windows.
    pub started: std::time::Instant,
    /// The conditions this process last wrote per object (by uid): the baseline for Events,
    /// since the watch cache may still hold an older status.
    pub written: Mutex<HashMap<String, Vec<Condition>>>,
    /// The status this process last wrote per object (by uid), so an unchanged one is not
    /// written again and a reconcile never starts from a status older than its own last.
    statuses: Mutex<HashMap<String, serde_json::Value>>,
    /// Each pool's bridges' loads and the autoscaler's decision, from the load watch.
    pub loads: Mutex<HashMap<String, crate::loads::PoolLoads>>,
}

impl Context {
    pub fn new(shared: Shared, stores: Stores) -> Self {
        Self {
            client: shared.client,
            render: shared.render,
            metrics: shared.metrics,
            recorder: shared.recorder,
            stores,
            windows: Default::default(),
            recorder_windows: Default::default(),
            started: std::time::Instant::now(),
            written: Default::default(),
            statuses: Default::default(),
            loads: Default::default(),
        }
    }

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
            action: event_action(&note),
            note: Some(note),
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

    /// The object's status as this process last wrote it, else as the watch saw it.
    pub fn previous_status<K: Resource, S: DeserializeOwned + Clone>(
        &self,
        obj: &K,
        seen: Option<&S>,
    ) -> Option<S> {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let last = self.statuses.lock().unwrap_or_else(|e| e.into_inner()).get(&uid).cloned();
        match last {
            Some(v) => serde_json::from_value(v).ok(),
            None => seen.cloned(),
        }
    }

    /// Write `status` unless it is what the object already has (as last written by this
    /// process, else as the watch saw it): steady state writes nothing.
    pub async fn write_status<K, S>(&self, obj: &K, seen: Option<&S>, status: &S) -> super::error::Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + DeserializeOwned + Clone + Debug,
        S: Serialize,
    {
        let uid = obj.meta().uid.clone().unwrap_or_default();
        let new = serde_json::to_value(status).unwrap_or_default();
        let baseline = match self.statuses.lock().unwrap_or_else(|e| e.into_inner()).get(&uid) {
            Some(v) => Some(v.clone()),
            None => seen.map(|s| serde_json::to_value(s).unwrap_or_default()),
        };
        if baseline.as_ref() == Some(&new) {
            return Ok(());
        }
        super::apply::patch_status(&self.client, obj, status).await?;
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).insert(uid, new);
        Ok(())
    }

    /// Forget what was written for objects that no longer exist (`live`: the uids that do).
    pub fn prune(&self, live: &std::collections::HashSet<String>) {
        self.statuses.lock().unwrap_or_else(|e| e.into_inner()).retain(|uid, _| live.contains(uid));
        self.written.lock().unwrap_or_else(|e| e.into_inner()).retain(|uid, _| live.contains(uid));
    }
}

/// The Event's action, named after its note: kube's Recorder folds an Event into an earlier
/// one with the same reason and action (a series that keeps the first note), so a new note
/// under the same reason ("1 -> 2 bridges", then "2 -> 3") would otherwise never be seen.
/// The same note still counts up one series.
fn event_action(note: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(note.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("Reconcile-{hex}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_event_action_follows_its_note() {
        let a = super::event_action("1 -> 2 bridge(s)");
        assert_eq!(a, super::event_action("1 -> 2 bridge(s)"), "a repeat is one series");
        assert_ne!(a, super::event_action("2 -> 3 bridge(s)"), "a new note is a new Event");
        assert!(a.len() <= 128, "the API's limit");
    }
}
