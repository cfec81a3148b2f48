//! TurnPool controller: coturn StatefulSet, its rendered config and the shared TURN secret. The
//! relays may reach exactly the bridges of the shards that use them, nothing else private.

use super::apply::{apply, create_secret_once};
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{ERROR_RETRY, Failures, RESYNC, conditions_with_events, stateful_set_progress};
use crate::crd::{TurnPool, TurnPoolStatus};
use crate::render::{secrets, turn};
use kube::ResourceExt;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use std::sync::Arc;

pub async fn reconcile(pool: Arc<TurnPool>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measured("TurnPool", run(&pool, &ctx)).await
}

async fn run(pool: &TurnPool, ctx: &Context) -> Result<Action> {
    let ns = pool.namespace().ok_or(Error::NoNamespace)?;
    let name = pool.name_any();
    let bridge_addresses = bridge_addresses(ctx, &ns, &name);
    let relay_addresses = relay_addresses(ctx, pool, &ns);

    let mut failed = Failures::default();
    let owner = turn::owner(pool);
    let secret = secrets::render(&owner, &turn::secret_name(&name), &secrets::random_value());
    let created = create_secret_once(ctx, &secret).await;
    if failed.check(format!("Secret {}", turn::secret_name(&name)), created) == Some(true) {
        ctx.event(
            pool,
            false,
            "SecretCreated",
            format!("generated the TURN shared secret {}", turn::secret_name(&name)),
        )
        .await;
    }
    let objects = turn::render(pool, &bridge_addresses, &ctx.render);
    let cm = &objects.config_map;
    failed.check(format!("ConfigMap {}", cm.name_any()), apply(&ctx.client, cm).await);
    let sts_name = objects.stateful_set.name_any();
    let sts = match failed
        .check(format!("StatefulSet {sts_name}"), apply(&ctx.client, &objects.stateful_set).await)
    {
        Some(sts) => Some(sts),
        None => ctx.stores.stateful_sets.get(&ns, &sts_name).map(|s| (*s).clone()),
    };

    let (ready, rolled_out) = stateful_set_progress(sts.as_ref(), pool.spec.replicas);
    let health = Health {
        ready: if ready > 0 || pool.spec.replicas == 0 {
            Observed::new(
                "Ready",
                ready > 0,
                "RelaysReady",
                format!("{ready} of {} relay(s) ready", pool.spec.replicas),
            )
        } else {
            Observed::new(
                "Ready",
                false,
                "NoRelayReady",
                format!("0 of {} relay(s) ready", pool.spec.replicas),
            )
        },
        progressing: if rolled_out {
            Observed::new("Progressing", false, "Stable", "relays rolled out")
        } else {
            Observed::new(
                "Progressing",
                true,
                "RollingOut",
                format!("{ready} of {} relay(s) ready", pool.spec.replicas),
            )
        },
        degraded: failed
            .degraded()
            .unwrap_or_else(|| Observed::new("Degraded", false, "AsExpected", "configuration rendered")),
    };
    let seen = pool.status.clone();
    let previous = ctx.previous_status(pool, seen.as_ref()).map(|s| s.conditions).unwrap_or_default();
    let status = TurnPoolStatus {
        observed_generation: pool.metadata.generation,
        conditions: conditions_with_events(ctx, pool, &previous, &health).await,
        ready_replicas: ready,
        addresses: relay_addresses,
        allowed_bridge_addresses: bridge_addresses,
    };
    ctx.write_status(pool, seen.as_ref(), &status).await?;
    Ok(Action::requeue(if failed.is_empty() { RESYNC } else { ERROR_RETRY }))
}

/// Addresses of the bridges of every shard in the namespace that uses this TurnPool.
fn bridge_addresses(ctx: &Context, ns: &str, pool: &str) -> Vec<String> {
    let shards = ctx.stores.shards.in_namespace(ns);
    let users: Vec<String> = shards
        .iter()
        .filter(|s| s.spec.turn_pool_ref.as_ref().is_some_and(|r| r.name == pool))
        .map(|s| s.name_any())
        .collect();
    let pools = ctx.stores.bridge_pools.in_namespace(ns);
    let mut addresses: Vec<String> = pools
        .iter()
        .filter(|p| users.contains(&p.spec.shard_ref.name))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| s.bridges.iter().filter_map(|b| b.address.clone()))
        .collect();
    addresses.sort();
    addresses.dedup();
    addresses
}

/// Addresses clients reach the relays on: each relay node's ExternalIP, else its InternalIP.
fn relay_addresses(ctx: &Context, pool: &TurnPool, ns: &str) -> Vec<String> {
    let pods = ctx.stores.pods.labelled(ns, &turn::owner(pool).selector_labels());
    let mut out = vec![];
    for node_name in pods.iter().filter_map(|p| p.spec.as_ref()?.node_name.clone()) {
        let Some(node) = ctx.stores.nodes.store.get(&ObjectRef::new(&node_name)) else {
            continue;
        };
        let addrs = node.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default();
        let pick = addrs
            .iter()
            .find(|a| a.type_ == "ExternalIP")
            .or_else(|| addrs.iter().find(|a| a.type_ == "InternalIP"));
        if let Some(a) = pick {
            out.push(a.address.clone());
        }
    }
    out.sort();
    out.dedup();
    out
}
