//! RecorderPool controller: the recorder StatefulSet for one shard.

use super::apply::apply;
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{
    ERROR_RETRY, Failures, MISSING_REF_RETRY, RESYNC, conditions_with_events, missing_reference,
    stateful_set_progress,
};
use crate::crd::common::SecretKeyRef;
use crate::crd::{RecorderPool, RecorderPoolStatus, Shard};
use crate::render::recorder;
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::DeleteParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

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
        };
        ctx.write_status(pool, seen.as_ref(), &status).await?;
        return Ok(Action::requeue(MISSING_REF_RETRY));
    }

    let mut rendered = recorder::render(pool, &ctx.render);
    if let Some(tls) = shard.as_ref().and_then(|s| s.spec.serving.tls_secret_name.as_ref()) {
        recorder::dial_signaling_over_tls(&mut rendered, tls);
    }
    let applied = apply(&ctx.client, &rendered).await;
    let sts = match failed.check(format!("StatefulSet {sts_name}"), applied) {
        Some(sts) => Some(sts),
        None => ctx.stores.stateful_sets.get(&ns, &sts_name).map(|s| (*s).clone()),
    };
    let desired = pool.spec.replicas;
    let (ready, rolled_out) = stateful_set_progress(sts.as_ref(), desired);
    let pods = ctx.stores.pods.labelled(&ns, &recorder::owner(pool).selector_labels());
    let unschedulable = super::unschedulable(&pods);
    let health = Health {
        ready: Observed::new(
            "Ready",
            ready > 0,
            if ready > 0 { "RecordersReady" } else { "NoRecorderReady" },
            format!("{ready} of {desired} recorder(s) ready"),
        ),
        progressing: if rolled_out {
            Observed::new("Progressing", false, "Stable", "recorders rolled out")
        } else {
            Observed::new(
                "Progressing",
                true,
                "RollingOut",
                format!("{ready} of {desired} recorder(s) ready"),
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
    let status = RecorderPoolStatus {
        observed_generation: pool.metadata.generation,
        conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
        ready_replicas: ready,
        capacity: ready * pool.spec.recordings_per_pod,
    };
    ctx.write_status(pool, seen.as_ref(), &status).await?;
    Ok(Action::requeue(if failed.is_empty() { RESYNC } else { ERROR_RETRY }))
}
