//! BridgePool controller: the host-network bridge StatefulSet and its companions, and a status
//! that says where each bridge runs and which address it advertises.

use super::apply::{apply, apply_cluster, patch_status};
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{MISSING_REF_RETRY, RESYNC, conditions_with_events, missing_reference, stateful_set_progress};
use crate::crd::bridgepool::{AddressSource, BridgeState};
use crate::crd::{BridgePool, BridgePoolStatus, Shard};
use crate::render::bridge;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};
use std::sync::Arc;

pub const FINALIZER: &str = "convene.dev/bridge-node-access";

pub async fn reconcile(pool: Arc<BridgePool>, ctx: Arc<Context>) -> Result<Action> {
    let ns = pool.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<BridgePool> = Api::namespaced(ctx.client.clone(), &ns);
    ctx.measured("BridgePool", async {
        finalizer(&api, FINALIZER, pool, |event| async {
            match event {
                Finalizer::Apply(pool) => run(&pool, &ctx, &ns).await,
                Finalizer::Cleanup(pool) => cleanup(&pool, &ctx, &ns).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(e.to_string()))
    })
    .await
}

/// The pool's cluster-scoped binding cannot be garbage-collected through an owner reference.
async fn cleanup(pool: &BridgePool, ctx: &Context, ns: &str) -> Result<Action> {
    let api: Api<ClusterRoleBinding> = Api::all(ctx.client.clone());
    match api.delete(&bridge::cluster_role_binding_name(ns, &pool.name_any()), &DeleteParams::default()).await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// Pods of the pool with the Nodes they run on.
struct Gathered {
    shard: Option<Shard>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
}

async fn run(pool: &BridgePool, ctx: &Context, ns: &str) -> Result<Action> {
    let g = gather(pool, ctx, ns).await?;
    let previous = pool.status.clone().unwrap_or_default();
    if g.shard.is_none() {
        let health = missing_reference(
            "ShardNotFound",
            format!(
                "Shard {} (spec.shardRef) does not exist; no bridges are run for it",
                pool.spec.shard_ref.name
            ),
        );
        let status = BridgePoolStatus {
            observed_generation: pool.metadata.generation,
            conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
            ..previous
        };
        patch_status(&ctx.client, pool, &status).await?;
        return Ok(Action::requeue(MISSING_REF_RETRY));
    }

    let desired = desired_replicas(pool, previous.desired_replicas);
    let objects = bridge::render(pool, desired, &ctx.render);
    apply_cluster(&ctx.client, &bridge::node_reader_role()).await?;
    apply_cluster(&ctx.client, &objects.cluster_role_binding).await?;
    apply(&ctx.client, &objects.service_account).await?;
    apply(&ctx.client, &objects.service).await?;
    apply(&ctx.client, &objects.pdb).await?;
    apply(&ctx.client, &objects.network_policy).await?;
    let sts = apply(&ctx.client, &objects.stateful_set).await?;

    let bridges = bridge_states(pool, &g.pods, &g.nodes);
    let health = health(pool, desired, &sts, &g.pods, &bridges);
    let st = sts.status.as_ref();
    let status = BridgePoolStatus {
        observed_generation: pool.metadata.generation,
        conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
        desired_replicas: desired,
        replicas: st.map_or(0, |s| s.replicas),
        ready_replicas: st.and_then(|s| s.ready_replicas).unwrap_or(0),
        selector: Some(selector_string(pool)),
        load: previous.load.clone(),
        bridges,
        last_scale: previous.last_scale.clone(),
    };
    patch_status(&ctx.client, pool, &status).await?;
    Ok(Action::requeue(RESYNC))
}

async fn gather(pool: &BridgePool, ctx: &Context, ns: &str) -> Result<Gathered> {
    let client = &ctx.client;
    let shard = Api::<Shard>::namespaced(client.clone(), ns).get_opt(&pool.spec.shard_ref.name).await?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector_string(pool)))
        .await?
        .items;
    let nodes_api: Api<Node> = Api::all(client.clone());
    let mut nodes = vec![];
    for node in pods.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()) {
        if let Some(n) = nodes_api.get_opt(&node).await? {
            nodes.push(n);
        }
    }
    Ok(Gathered { shard, pods, nodes })
}

fn selector_string(pool: &BridgePool) -> String {
    super::selector_string(&bridge::owner(pool).selector_labels())
}

/// Pure: bridges the pool should run. With autoscaling the last decision stands within
/// [min, max] (the load-driven autoscaler moves it); without, `spec.replicas` rules.
pub fn desired_replicas(pool: &BridgePool, current: i32) -> i32 {
    match &pool.spec.autoscaling {
        Some(a) if a.enabled => {
            let start = if current > 0 { current } else { a.min_replicas };
            start.clamp(a.min_replicas, a.max_replicas.max(a.min_replicas))
        }
        _ => pool.spec.replicas.max(0),
    }
}

/// Pure: the address a bridge advertises, as its pool's address source picks it. `None` when
/// it cannot be known here (STUN is discovered by the bridge) or the node lacks the address.
pub fn advertised_address(pool: &BridgePool, node: Option<&Node>) -> Option<String> {
    let node_address = |kind: &str| {
        node?.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == kind).map(|a| a.address.clone())
    };
    match pool.spec.public_address.source {
        AddressSource::NodeExternalIP => node_address("ExternalIP"),
        AddressSource::NodeInternalIP => node_address("InternalIP"),
        AddressSource::Static => pool.spec.public_address.static_addresses.first().cloned(),
        AddressSource::STUN => None,
    }
}

/// Pure: one status line per bridge pod, in ordinal order.
pub fn bridge_states(pool: &BridgePool, pods: &[Pod], nodes: &[Node]) -> Vec<BridgeState> {
    let mut states: Vec<BridgeState> = pods
        .iter()
        .map(|p| {
            let node_name = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let node = nodes.iter().find(|n| Some(n.name_any()) == node_name);
            BridgeState {
                name: p.name_any(),
                address: node_name.as_ref().and_then(|_| advertised_address(pool, node)),
                node: node_name,
                ready: super::pod_condition(p, "Ready").is_some_and(|c| c.status == "True"),
                draining: p.annotations().get("convene.dev/draining").is_some_and(|v| v == "true"),
            }
        })
        .collect();
    states.sort_by_key(|s| ordinal(&s.name));
    states
}

fn ordinal(pod: &str) -> u32 {
    pod.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX)
}

/// Pure: the pool's conditions. Pods the scheduler cannot place (port taken, too few nodes for
/// one bridge each) and nodes without the address the pool advertises make it Degraded.
pub fn health(
    pool: &BridgePool,
    desired: i32,
    sts: &StatefulSet,
    pods: &[Pod],
    bridges: &[BridgeState],
) -> Health {
    let (ready, rolled_out) = stateful_set_progress(Some(sts), desired);
    let unschedulable = super::unschedulable(pods);
    let source = pool.spec.public_address.source;
    let no_address: Vec<&str> = bridges
        .iter()
        .filter(|b| b.node.is_some() && b.address.is_none() && source != AddressSource::STUN)
        .map(|b| b.node.as_deref().unwrap_or_default())
        .collect();
    let degraded = if !unschedulable.is_empty() {
        Observed::new(
            "Degraded",
            true,
            "Unschedulable",
            format!(
                "{} bridge pod(s) cannot be placed (each bridge needs a node of its own with its ports free): {}",
                unschedulable.len(),
                unschedulable.join("; ")
            ),
        )
    } else if !no_address.is_empty() {
        Observed::new(
            "Degraded",
            true,
            "NoAdvertisedAddress",
            format!(
                "node(s) {} have no {:?} address; clients could not reach these bridges. Set spec.publicAddress.source to match your nodes",
                no_address.join(", "),
                source
            ),
        )
    } else {
        Observed::new("Degraded", false, "AsExpected", "all bridges placed with an address")
    };
    let progressing = if rolled_out {
        Observed::new("Progressing", false, "Stable", format!("{desired} bridge(s) rolled out"))
    } else {
        Observed::new("Progressing", true, "Scaling", format!("{ready} of {desired} bridge(s) ready"))
    };
    let ready_cond = if desired == 0 {
        Observed::new("Ready", false, "ScaledToZero", "the pool has no bridges")
    } else if ready >= desired {
        Observed::new("Ready", true, "AllBridgesReady", format!("{ready} of {desired} bridge(s) ready"))
    } else if ready > 0 {
        Observed::new("Ready", true, "SomeBridgesReady", format!("{ready} of {desired} bridge(s) ready"))
    } else {
        Observed::new("Ready", false, "NoBridgeReady", format!("0 of {desired} bridge(s) ready"))
    };
    Health { ready: ready_cond, progressing, degraded }
}
