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

/// Requeue after success: statuses track pods and load even when nothing triggers a watch.
pub const RESYNC: Duration = Duration::from_secs(60);
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

/// New conditions for `obj`, and an Event for each that flipped (warnings for Degraded).
pub async fn conditions_with_events<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    obj: &K,
    previous: &[Condition],
    health: &Health,
) -> Vec<Condition> {
    let now = Time(jiff::Timestamp::now());
    let observed = health.all();
    for flip in conditions::transitions(previous, &observed) {
        let warning = flip.type_ == "Degraded" && flip.status
            || flip.type_ == "Ready" && !flip.status && !previous.is_empty();
        // First-time Progressing/Degraded=False are noise; Ready=False at creation too.
        let first_quiet = previous.is_empty() && !flip.status;
        if first_quiet && flip.type_ != "Ready" {
            continue;
        }
        let note = if flip.message.is_empty() { flip.reason.clone() } else { flip.message.clone() };
        ctx.event(obj, warning, &flip.reason, note).await;
    }
    conditions::merge(previous, &observed, obj.meta().generation, &now)
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
    let rolled = status.current_revision == status.update_revision || status.update_revision.is_none();
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
pub fn unschedulable(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| {
            let c = pod_condition(p, "PodScheduled")?;
            (c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
                .then(|| format!("{}: {}", p.name_any(), c.message.clone().unwrap_or_default()))
        })
        .collect()
}

/// `k=v,k=v` for a label map.
pub fn selector_string(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
}
