//! RecorderPool controller: the recorder StatefulSet for one shard.

use super::apply::{apply, patch_status};
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{MISSING_REF_RETRY, RESYNC, conditions_with_events, missing_reference, stateful_set_progress};
use crate::crd::{RecorderPool, RecorderPoolStatus, Shard};
use crate::render::recorder;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;

pub async fn reconcile(pool: Arc<RecorderPool>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measured("RecorderPool", run(&pool, &ctx)).await
}

async fn run(pool: &RecorderPool, ctx: &Context) -> Result<Action> {
    let ns = pool.namespace().ok_or(Error::NoNamespace)?;
    let previous = pool.status.clone().unwrap_or_default();
    let shard = Api::<Shard>::namespaced(ctx.client.clone(), &ns).get_opt(&pool.spec.shard_ref.name).await?;
    let mut missing = None;
    if shard.is_none() {
        missing = Some((
            "ShardNotFound",
            format!("Shard {} (spec.shardRef) does not exist", pool.spec.shard_ref.name),
        ));
    } else if let Some(s3) = &pool.spec.storage.s3
        && !super::apply::secret_has_key(&ctx.client, &ns, &s3.credentials_secret_name, "accessKeyId").await?
    {
        missing = Some((
            "SecretNotFound",
            format!(
                "Secret {} with key accessKeyId (storage.s3.credentialsSecretName) does not exist",
                s3.credentials_secret_name
            ),
        ));
    }
    if let Some((reason, message)) = missing {
        let health = missing_reference(reason, message);
        let status = RecorderPoolStatus {
            observed_generation: pool.metadata.generation,
            conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
            ..previous
        };
        patch_status(&ctx.client, pool, &status).await?;
        return Ok(Action::requeue(MISSING_REF_RETRY));
    }

    let sts = apply(&ctx.client, &recorder::render(pool, &ctx.render)).await?;
    let desired = pool.spec.replicas;
    let (ready, rolled_out) = stateful_set_progress(Some(&sts), desired);
    let selector = super::selector_string(&recorder::owner(pool).selector_labels());
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await?;
    let unschedulable = super::unschedulable(&pods.items);
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
        degraded: if unschedulable.is_empty() {
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
    patch_status(&ctx.client, pool, &status).await?;
    Ok(Action::requeue(RESYNC))
}
