//! RecorderPool controller: the recorder StatefulSet for one shard, sized by `spec.replicas` or
//! by its recordings ([`crate::recorders`]): each reconcile reads every recorder's load,
//! decides, drains the recorder to remove (its recordings end, or continue elsewhere at the
//! drain timeout) and reports recordings and free places in the status.

use super::apply::apply;
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{
    ERROR_RETRY, Failures, MISSING_REF_RETRY, RESYNC, conditions_with_events, missing_reference,
    stateful_set_progress,
};
use crate::autoscale;
use crate::crd::bridgepool::ScaleDecisionStatus;
use crate::crd::common::SecretKeyRef;
use crate::crd::recorderpool::RecorderState;
use crate::crd::{RecorderPool, RecorderPoolStatus, Shard};
use crate::drain::{self, Step};
use crate::recorders::Recorder;
use crate::render::recorder;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

pub async fn reconcile(pool: Arc<RecorderPool>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measured("RecorderPool", run(&pool, &ctx)).await
}

async fn run(pool: &RecorderPool, ctx: &Context) -> Result<Action> {
    let ns = pool.namespace().ok_or(Error::NoNamespace)?;
    let seen = pool.status.clone();
    let previous = ctx.previous_status(pool, seen.as_ref()).unwrap_or_default();
    let shard: Option<std::sync::Arc<Shard>> = ctx.stores.shards.get(&ns, &pool.spec.shard_ref.name);
    let mut missing = None;
    let mut failed = Failures::default();
    let sts_name = recorder::owner(pool).child_name();
    let sts_api = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns);
    if shard.is_none() {
        missing = Some((
            "ShardNotFound",
            format!(
                "Shard {} (spec.shardRef) does not exist; no recorders are run for it",
                pool.spec.shard_ref.name
            ),
        ));
        // Orphan policy, as for BridgePools: no shard, no workload; the pool stays.
        if ctx.stores.stateful_sets.get(&ns, &sts_name).is_some() {
            let deleted = sts_api.delete(&sts_name, &DeleteParams::background()).await.map_err(Error::from);
            if failed.check(format!("deleting StatefulSet {sts_name}"), deleted).is_some() {
                let note = format!(
                    "deleted StatefulSet {sts_name}: Shard {} does not exist",
                    pool.spec.shard_ref.name
                );
                ctx.event(pool, false, "Deleted", note).await;
            }
        }
    } else if let Some(s3) = &pool.spec.storage.s3 {
        let r = SecretKeyRef { name: s3.credentials_secret_name.clone(), key: "accessKeyId".into() };
        missing = super::apply::check_secret(ctx, &ns, &r, "storage.s3.credentialsSecretName").await?;
    }
    if let Some((reason, message)) = missing {
        let mut health = missing_reference(reason, message);
        if let Some(d) = failed.degraded() {
            health.degraded = super::degraded_of(vec![health.degraded.clone(), d], health.degraded.clone());
        }
        let gone = shard.is_none();
        let status = RecorderPoolStatus {
            observed_generation: pool.metadata.generation,
            conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
            ready_replicas: if gone { 0 } else { previous.ready_replicas },
            capacity: if gone { 0 } else { previous.capacity },
            ..previous.clone()
        };
        ctx.write_status(pool, seen.as_ref(), &status).await?;
        return Ok(Action::requeue(MISSING_REF_RETRY));
    }

    let pods = ctx.stores.pods.labelled(&ns, &recorder::owner(pool).selector_labels());
    let update_revision =
        ctx.stores.stateful_sets.get(&ns, &sts_name).and_then(|s| s.status.as_ref()?.update_revision.clone());
    let recorders = recorders_of(&pods, &previous, update_revision.as_deref()).await;
    let running = ctx.stores.stateful_sets.get(&ns, &sts_name).and_then(|s| s.spec.as_ref()?.replicas);
    let from = if previous.desired_replicas > 0 { previous.desired_replicas } else { running.unwrap_or(0) };
    let decision = decide(pool, ctx, from, &recorders);
    let desired = decision.desired;
    let running = running.unwrap_or(desired);
    let drain_timeout = Duration::from_secs(
        pool.spec.autoscaling.as_ref().map_or(14_400, |a| a.drain_timeout_seconds.max(0)) as u64,
    );
    let members: Vec<_> = recorders.iter().map(|r| crate::recorders::member(r, drain_timeout)).collect();
    let step = drain::step(running, desired, &members, crate::autoscale::Nouns::RECORDERS);
    tracing::debug!(pool = %pool.name_any(), from, desired, running, ?step, reason = %decision.reason, "recorder pool step");
    let run_count = match step {
        Step::Run(n, why) => {
            if n != running {
                let reason = if n > running { "ScaledUp" } else { "ScaledDown" };
                ctx.event(pool, false, reason, format!("{running} -> {n} recorder(s): {why}")).await;
            }
            n
        }
        Step::Drain(name) => {
            let started = start_drain(ctx, pool, &ns, &pods, &name).await;
            failed.check(format!("draining Pod {name}"), started);
            running
        }
        Step::Replace(..) | Step::Wait(_) => running,
    };

    let mut rendered = recorder::render(pool, &ctx.render);
    if let Some(spec) = rendered.spec.as_mut() {
        spec.replicas = Some(run_count);
    }
    if let Some(tls) = shard.as_ref().and_then(|s| s.spec.serving.tls_secret_name.as_ref()) {
        recorder::dial_signaling_over_tls(&mut rendered, tls);
    }
    let applied = apply(&ctx.client, &rendered).await;
    let sts = match failed.check(format!("StatefulSet {sts_name}"), applied) {
        Some(sts) => Some(sts),
        None => ctx.stores.stateful_sets.get(&ns, &sts_name).map(|s| (*s).clone()),
    };
    let (ready, rolled_out) = stateful_set_progress(sts.as_ref(), run_count);
    let unschedulable = super::unschedulable(&pods);
    let health = Health {
        ready: Observed::new(
            "Ready",
            ready > 0,
            if ready > 0 { "RecordersReady" } else { "NoRecorderReady" },
            format!("{ready} of {run_count} recorder(s) ready"),
        ),
        progressing: if rolled_out {
            Observed::new("Progressing", false, "Stable", "recorders rolled out")
        } else {
            Observed::new(
                "Progressing",
                true,
                "RollingOut",
                format!("{ready} of {run_count} recorder(s) ready"),
            )
        },
        degraded: if let Some(d) = failed.degraded() {
            d
        } else if unschedulable.is_empty() {
            Observed::new(
                "Degraded",
                false,
                "AsExpected",
                format!("records shard {}", pool.spec.shard_ref.name),
            )
        } else {
            Observed::new(
                "Degraded",
                true,
                "Unschedulable",
                format!(
                    "{} recorder pod(s) cannot be placed: {}",
                    unschedulable.len(),
                    unschedulable.join("; ")
                ),
            )
        },
    };
    let last_scale = if from != 0 && from != desired {
        let reason = decision.reason.clone();
        ctx.event(pool, false, "ScalingDecision", format!("{from} -> {desired} recorder(s): {reason}")).await;
        Some(ScaleDecisionStatus { time: Time(jiff::Timestamp::now()), from, to: desired, reason })
    } else {
        previous.last_scale.clone()
    };
    for (warning, reason, message) in crate::recorders::recording_events(&previous.recorders, &recorders) {
        ctx.event(pool, warning, reason, message).await;
    }
    let totals = crate::recorders::totals(&recorders);
    let status = RecorderPoolStatus {
        observed_generation: pool.metadata.generation,
        conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
        ready_replicas: ready,
        capacity: ready * pool.spec.recordings_per_pod,
        recordings_active: totals.map(|t| t.0),
        capacity_free: totals.map(|t| t.1),
        desired_replicas: desired,
        recorders: recorders.iter().map(|r| state_of(r, &previous.recorders)).collect(),
        last_scale,
    };
    ctx.write_status(pool, seen.as_ref(), &status).await?;
    // Recordings come and go without any watched object changing: while recorders run, look
    // again soon, so the status (and the autoscaler, when on) follows them. The status is only
    // written when it changed.
    let requeue =
        if run_count > 0 || autoscaled(pool) || run_count != desired { RECORDER_PERIOD } else { RESYNC };
    Ok(Action::requeue(if failed.is_empty() { requeue } else { requeue.min(ERROR_RETRY) }))
}

/// How often a pool with running recorders reads their load.
const RECORDER_PERIOD: Duration = Duration::from_secs(10);

/// Pods are annotated with the time the operator asked them to drain (RFC 3339): the drain's
/// deadline counts from it, on the operator's clock, and a new leader does not ask again.
const DRAINING_SINCE: &str = "convene.dev/draining-since";

fn autoscaled(pool: &RecorderPool) -> bool {
    pool.spec.autoscaling.as_ref().is_some_and(|a| a.enabled)
}

/// `spec.replicas` without autoscaling; else the decision on the recorders' load.
fn decide(pool: &RecorderPool, ctx: &Context, from: i32, recorders: &[Recorder]) -> autoscale::Decision {
    let Some(a) = pool.spec.autoscaling.as_ref().filter(|a| a.enabled) else {
        let n = pool.spec.replicas.max(0);
        return autoscale::Decision {
            desired: n,
            needed: n,
            reason: "spec.replicas (autoscaling is off)".into(),
        };
    };
    let t = crate::recorders::targets(a, pool.spec.recordings_per_pod);
    let key = format!("{}/{}", pool.namespace().unwrap_or_default(), pool.name_any());
    let mut windows = ctx.recorder_windows.lock().unwrap_or_else(|e| e.into_inner());
    let w = windows.entry(key).or_default();
    crate::recorders::decide(from.max(a.min_replicas), recorders, &t, w, ctx.started.elapsed())
}

/// Each recorder pod with the load it reports now (scraped concurrently).
async fn recorders_of(
    pods: &[Arc<Pod>],
    previous: &RecorderPoolStatus,
    update_revision: Option<&str>,
) -> Vec<Recorder> {
    let scrapes = pods.iter().map(|p| async move {
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
        match ip {
            Some(ip) => super::scrape::recorder_load(&ip, recorder::HTTP_PORT).await,
            None => None,
        }
    });
    let loads = futures::future::join_all(scrapes).await;
    pods.iter()
        .zip(loads)
        .map(|(pod, load)| {
            let name = pod.name_any();
            let status = pod.status.as_ref();
            let revision = pod.labels().get("controller-revision-hash").map(String::as_str);
            let drain_asked =
                pod.annotations().get(DRAINING_SINCE).and_then(|t| t.parse::<jiff::Timestamp>().ok()).map(
                    |t| Duration::from_secs(jiff::Timestamp::now().duration_since(t).as_secs().max(0) as u64),
                );
            Recorder {
                ordinal: super::bridgepool::ordinal(&name) as i32,
                answered_before: previous.recorders.iter().any(|r| r.name == name && r.active.is_some()),
                name,
                load,
                running: status.and_then(|s| s.pod_ip.as_ref()).is_some()
                    && status.and_then(|s| s.phase.as_deref()) == Some("Running"),
                ready: super::pod_condition(pod, "Ready").is_some_and(|c| c.status == "True"),
                current: update_revision.is_none() || revision == update_revision,
                drain_asked,
            }
        })
        .collect()
}

/// A recorder's status entry; its counters stay as last seen while it does not answer, so its
/// next answer is compared with them, not with zero.
fn state_of(r: &Recorder, previous: &[RecorderState]) -> RecorderState {
    let before = previous.iter().find(|b| b.name == r.name);
    RecorderState {
        name: r.name.clone(),
        ready: r.ready,
        active: r.load.map(|l| l.active as i32),
        finishing: r.load.map(|l| l.finishing as i32),
        capacity: r.load.map(|l| l.capacity as i32),
        draining: r.load.is_some_and(|l| l.draining) || r.drain_asked.is_some(),
        started: r.load.map(|l| l.started_total as i64).or(before.and_then(|b| b.started)),
        failed: r.load.map(|l| l.failed_total as i64).or(before.and_then(|b| b.failed)),
    }
}

/// Ask the recorder to drain and mark its pod with when: it takes no new recordings, and goes
/// once its recordings ended or at the drain timeout.
async fn start_drain(
    ctx: &Context,
    pool: &RecorderPool,
    ns: &str,
    pods: &[Arc<Pod>],
    name: &str,
) -> Result<()> {
    let Some(pod) = pods.iter().find(|p| p.name_any() == name) else { return Ok(()) };
    let secret = super::apply::bridge_control_secret_value(ctx, ns, &pool.spec.shard_ref.name).await?;
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    let accepted = super::scrape::request_recorder_drain(&ip, recorder::HTTP_PORT, &secret).await;
    if !accepted {
        let note = format!(
            "{name} did not accept the drain request; it is asked again, and removed only once it drains or stops answering"
        );
        ctx.event(pool, true, "Draining", note).await;
        return Ok(());
    }
    let patch = serde_json::json!({"metadata": {"annotations": {DRAINING_SINCE: jiff::Timestamp::now().to_string()}}});
    Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let note =
        format!("draining {name} before removing it: no new recordings; its running ones go on to their end");
    ctx.event(pool, false, "Draining", note).await;
    Ok(())
}
