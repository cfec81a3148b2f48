//! Controllers: each reconcile is one pipeline — gather what the object references (reads the
//! cluster) → validate (pure) → render (pure) → apply → delete orphans → write status.

pub mod apply;
pub mod bridgepool;
pub mod conditions;
pub mod context;
pub mod error;
pub mod recorderpool;
pub mod scrape;
pub mod shard;
pub mod turnpool;

use conditions::{Health, Observed};
use context::Context;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Requeue after success, a safety net only: every input has a watch (children, pods, nodes'
/// stores, referenced kinds and Secrets) and bridge loads have the load watch.
pub const RESYNC: Duration = Duration::from_secs(600);
/// Requeue while a reference is missing; the watch on the referenced kind usually wakes us
/// sooner, so this is only the safety net and never a hot loop.
pub const MISSING_REF_RETRY: Duration = Duration::from_secs(300);
/// Requeue after an error.
pub const ERROR_RETRY: Duration = Duration::from_secs(15);

/// The error policy shared by all controllers: log and retry a little later.
pub fn error_policy<K: Resource>(obj: Arc<K>, err: &error::Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(name = ?obj.meta().name, namespace = ?obj.meta().namespace, error = %err, "reconcile failed");
    Action::requeue(ERROR_RETRY)
}

/// New conditions for `obj`, and one Event per real transition: `Ready` turning true or false,
/// `Degraded` turning true (or changing its reason while true) and turning false again.
/// `Progressing` is in the status only (rollouts have their own Events). The baseline is what
/// this process last wrote for the object when it knows it, so a watch cache that still holds
/// an older status never repeats an Event.
pub async fn conditions_with_events<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    previous: &[Condition],
    health: &Health,
) -> Vec<Condition> {
    let now = Time(jiff::Timestamp::now());
    let observed = health.all();
    let key = obj.meta().uid.clone().unwrap_or_default();
    let baseline: Vec<Condition> = ctx
        .written
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .cloned()
        .unwrap_or_else(|| previous.to_vec());
    for (flip, warning) in conditions::events(&baseline, &observed) {
        let note = if flip.message.is_empty() { flip.reason.clone() } else { flip.message.clone() };
        ctx.event(obj, warning, &flip.reason, note).await;
    }
    let merged = conditions::merge(&baseline, &observed, obj.meta().generation, &now);
    ctx.written.lock().unwrap_or_else(|e| e.into_inner()).insert(key, merged.clone());
    merged
}

/// Standard health when a referenced object is missing.
pub fn missing_reference(reason: &str, message: String) -> Health {
    Health {
        ready: Observed::new("Ready", false, reason, message.clone()),
        progressing: Observed::new("Progressing", false, reason, "waiting for the reference to exist"),
        degraded: Observed::new("Degraded", true, reason, message),
    }
}

/// Readiness of a StatefulSet: (ready, desired, up to date).
pub fn stateful_set_progress(
    sts: Option<&k8s_openapi::api::apps::v1::StatefulSet>,
    desired: i32,
) -> (i32, bool) {
    let Some(status) = sts.and_then(|s| s.status.as_ref()) else {
        return (0, false);
    };
    let ready = status.ready_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    // With `OnDelete` (bridges) the StatefulSet never moves currentRevision forward: every
    // pod on the update revision is what "rolled out" means then.
    let rolled = status.current_revision == status.update_revision
        || status.update_revision.is_none()
        || status.updated_replicas.unwrap_or(0) >= status.replicas;
    let generation_seen = sts.and_then(|s| s.metadata.generation) <= status.observed_generation;
    (
        ready,
        generation_seen
            && rolled
            && updated >= desired.min(status.replicas)
            && ready >= desired
            && status.replicas == desired,
    )
}

pub fn pod_condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a PodCondition> {
    pod.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Pure: pods the scheduler cannot place, each with the scheduler's reason.
pub fn unschedulable(pods: &[impl std::borrow::Borrow<Pod>]) -> Vec<String> {
    pods.iter()
        .map(std::borrow::Borrow::borrow)
        .filter_map(|p: &Pod| {
            let c = pod_condition(p, "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                .then(|| format!("{}: {}", p.name_any(), c.message.clone().unwrap_or_default()))
        })
        .collect()
}

/// Pure: the version an image names: its tag, else the image itself.
pub fn image_version(image: &str) -> String {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_string(),
        _ => image.to_string(),
    }
}

/// `k=v,k=v` for a label map.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}

/// Writes that failed during one reconcile: each names the child and carries the API server's
/// own message. The reconcile carries on (other children, status), so one refused child never
/// hides the rest of the picture.
#[derive(Default, Debug)]
pub struct Failures {
    pub list: Vec<String>,
}

impl Failures {
    /// Keep the value of a write that worked; record the one that did not.
    pub fn check<T>(&mut self, what: impl std::fmt::Display, result: error::Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let message = api_message(&e);
                tracing::warn!(%what, error = %message, "write refused");
                self.list.push(format!("{what}: {message}"));
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The Degraded condition these failures make, if any.
    pub fn degraded(&self) -> Option<Observed> {
        (!self.list.is_empty()).then(|| {
            Observed::new(
                "Degraded",
                true,
                "ApplyFailed",
                format!("the API server refused {} write(s): {}", self.list.len(), self.list.join("; ")),
            )
        })
    }
}

/// The API server's message for an error (what `kubectl` would print), else the error itself.
pub fn api_message(e: &error::Error) -> String {
    match e {
        error::Error::Kube(kube::Error::Api(s)) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Pure: merge Degraded observations: the first (most important) gives the reason, every one
/// adds its message.
pub fn degraded_of(parts: Vec<Observed>, fine: Observed) -> Observed {
    let mut bad = parts.into_iter().filter(|o| o.status);
    let Some(first) = bad.next() else { return fine };
    let mut message = first.message.clone();
    for o in bad {
        message.push_str("; ");
        message.push_str(&o.message);
    }
    Observed::new("Degraded", true, first.reason, message)
}
