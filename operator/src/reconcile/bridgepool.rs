//! BridgePool controller: the host-network bridge StatefulSet and its companions, and a status
//! that says where each bridge runs and which address it advertises.

use super::apply::{apply, apply_cluster};
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::scrape;
use super::{
    ERROR_RETRY, Failures, MISSING_REF_RETRY, RESYNC, conditions_with_events, missing_reference,
    stateful_set_progress,
};
use crate::autoscale;
use crate::crd::bridgepool::{AddressSource, BridgeState, PoolLoad, ScaleDecisionStatus};
use crate::crd::{BridgePool, BridgePoolStatus, Shard};
use crate::drain::{self, Step};
use crate::loads::{self, pool_key};
use crate::render::bridge;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, Resource, ResourceExt};
use std::borrow::Borrow;
use std::sync::Arc;
use std::time::Duration;

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
    ctx.windows.lock().unwrap_or_else(|e| e.into_inner()).remove(&pool_key(pool));
    ctx.loads.lock().unwrap_or_else(|e| e.into_inner()).remove(&pool_key(pool));
    loads::forget(ctx, pool);
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
    /// Bridges the StatefulSet runs now (None before it exists).
    running: Option<i32>,
    /// The StatefulSet's current template revision (pods with another one are outdated).
    update_revision: Option<String>,
    pods: Vec<Arc<Pod>>,
    nodes: Vec<Arc<Node>>,
    sts: Option<StatefulSet>,
}

async fn run(pool: &BridgePool, ctx: &Context, ns: &str) -> Result<Action> {
    let g = gather(pool, ctx, ns);
    // The watch may not hold the status this process wrote last; start from that one, so no
    // stale decision or lastScale is written again.
    let seen = pool.status.clone();
    let previous = ctx.previous_status(pool, seen.as_ref()).unwrap_or_default();
    let mut failed = Failures::default();
    let Some(shard) = g.shard.as_ref() else {
        // Orphan policy: without its shard a pool runs no bridges (nothing would use them, and
        // their bridge-control Secret went with the shard). The pool itself stays, so
        // re-creating the shard brings the bridges back.
        if let Some(sts) = &g.sts {
            let name = sts.name_any();
            let deleted = Api::<StatefulSet>::namespaced(ctx.client.clone(), ns)
                .delete(&name, &DeleteParams::background())
                .await
                .map_err(Error::from);
            if failed.check(format!("deleting StatefulSet {name}"), deleted).is_some() {
                ctx.event(
                    pool,
                    false,
                    "Deleted",
                    format!("deleted StatefulSet {name}: Shard {} does not exist", pool.spec.shard_ref.name),
                )
                .await;
            }
        }
        let mut health = missing_reference(
            "ShardNotFound",
            format!(
                "Shard {} (spec.shardRef) does not exist; no bridges are run for it",
                pool.spec.shard_ref.name
            ),
        );
        if let Some(d) = failed.degraded() {
            health.degraded = super::degraded_of(vec![health.degraded.clone(), d], health.degraded.clone());
        }
        // Nothing runs for the pool any more (its StatefulSet is gone or going).
        let status = BridgePoolStatus {
            observed_generation: pool.metadata.generation,
            conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
            desired_replicas: 0,
            replicas: 0,
            ready_replicas: 0,
            load: None,
            bridges: vec![],
            ..previous
        };
        ctx.write_status(pool, seen.as_ref(), &status).await?;
        return Ok(Action::requeue(if failed.is_empty() { MISSING_REF_RETRY } else { ERROR_RETRY }));
    };

    // Load, as the load watch last scraped it; silence is "unknown", not idle.
    let loads = bridge_loads(ctx, pool, &g.pods).await;
    let from = previous.desired_replicas;
    let decision = decide(pool, ctx, from, &loads);
    let desired = decision.desired;
    let running = g.running.unwrap_or(desired);
    let drain_timeout =
        Duration::from_secs(pool.spec.autoscaling.as_ref().map_or(600, |a| a.drain_timeout_seconds) as u64);
    let members = drain_members(&loads, g.update_revision.as_deref(), &previous.bridges);
    let mut step = drain::step(running, desired, &members, crate::autoscale::Nouns::BRIDGES);
    // The template rolls out only while the size holds: a scale-down removes old pods anyway.
    let mut rolling = None;
    if matches!(&step, Step::Run(n, _) if *n == running)
        && let Some(r) = drain::rollout(running, &members, crate::autoscale::Nouns::BRIDGES)
    {
        rolling = Some(match &r {
            Step::Drain(name) => format!("updating bridges: draining {name}"),
            Step::Replace(name, why) => format!("updating bridges: replacing {name} ({why})"),
            Step::Wait(why) | Step::Run(_, why) => why.clone(),
        });
        step = r;
    }
    tracing::debug!(pool = %pool.name_any(), from, desired, running, ?step, "bridge pool step");
    let run_count = match step {
        Step::Run(n, why) => {
            if n != running {
                ctx.event(
                    pool,
                    false,
                    if n > running { "ScaledUp" } else { "ScaledDown" },
                    format!("{running} -> {n} bridge(s): {why}"),
                )
                .await;
            }
            n
        }
        Step::Drain(name) => {
            let started = start_drain(ctx, pool, ns, &g.pods, &name, drain_timeout).await;
            failed.check(format!("draining Pod {name}"), started);
            running
        }
        Step::Replace(name, why) => {
            let deleted = Api::<Pod>::namespaced(ctx.client.clone(), ns)
                .delete(&name, &DeleteParams::default())
                .await
                .map_err(Error::from);
            if failed.check(format!("deleting Pod {name}"), deleted).is_some() {
                ctx.event(
                    pool,
                    false,
                    "Replacing",
                    format!("{name} runs an old template: {why}; replaced it"),
                )
                .await;
            }
            running
        }
        Step::Wait(_) => running,
    };
    // The load watch wakes the pool when its load or decision changes; only a rollout or a
    // resize in progress is followed up on a timer.
    let requeue = if rolling.is_some() || run_count != desired { loads::PERIOD } else { RESYNC };

    let mut objects = bridge::render(pool, run_count, &ctx.render);
    if let Some(tls) = &shard.spec.serving.tls_secret_name {
        bridge::dial_signaling_over_tls(&mut objects.stateful_set, tls);
    }
    // The shard owns its bridges too: deleting it garbage-collects them with their Secret.
    if let Some(r) = shard.controller_owner_ref(&()) {
        let also = k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            controller: None,
            block_owner_deletion: None,
            ..r
        };
        objects.stateful_set.metadata.owner_references.get_or_insert_with(Vec::new).push(also);
    }
    let crb = &objects.cluster_role_binding;
    failed.check(format!("ClusterRoleBinding {}", crb.name_any()), apply_cluster(&ctx.client, crb).await);
    let sa = &objects.service_account;
    failed.check(format!("ServiceAccount {}", sa.name_any()), apply(&ctx.client, sa).await);
    failed
        .check(format!("Service {}", objects.service.name_any()), apply(&ctx.client, &objects.service).await);
    failed.check(
        format!("PodDisruptionBudget {}", objects.pdb.name_any()),
        apply(&ctx.client, &objects.pdb).await,
    );
    let np = &objects.network_policy;
    failed.check(format!("NetworkPolicy {}", np.name_any()), apply(&ctx.client, np).await);
    let sts_name = objects.stateful_set.name_any();
    let applied = apply(&ctx.client, &objects.stateful_set).await;
    // Refused: the conditions still tell how the running one is doing.
    let sts = failed.check(format!("StatefulSet {sts_name}"), applied).or(g.sts.clone()).unwrap_or_default();

    let mut bridges = bridge_states(pool, &g.pods, &g.nodes);
    for b in &mut bridges {
        if let Some((_, l)) = loads.iter().find(|(p, _)| p.name_any() == b.name) {
            b.endpoints = l.endpoints.map(|e| e as i64);
            b.mbps = l.mbps.map(|m| m.round() as i64);
            b.stress = l.stress.map(|s| (s * 100.0).round() / 100.0);
            b.draining |= l.drain.is_some();
            b.ice = l.ice.map(Into::into);
        }
    }
    let mut health = health(pool, run_count, &sts, &g.pods, &bridges, rolling);
    if let Some(d) = failed.degraded() {
        health.degraded = super::degraded_of(vec![d, health.degraded.clone()], health.degraded.clone());
    }
    let st = sts.status.as_ref();
    let last_scale = if from != 0 && from != desired {
        let reason = decision.reason.clone();
        ctx.event(pool, false, "ScalingDecision", format!("{from} -> {desired} bridge(s): {reason}")).await;
        Some(ScaleDecisionStatus { time: Time(jiff::Timestamp::now()), from, to: desired, reason })
    } else {
        previous.last_scale.clone()
    };
    let total = pool_load(loads.iter().map(|(_, l)| l));
    let status = BridgePoolStatus {
        observed_generation: pool.metadata.generation,
        conditions: conditions_with_events(ctx, pool, &previous.conditions, &health).await,
        desired_replicas: desired,
        min_replicas: Some(bounds(pool).0),
        max_replicas: Some(bounds(pool).1),
        replicas: st.map_or(0, |s| s.replicas),
        ready_replicas: st.and_then(|s| s.ready_replicas).unwrap_or(0),
        selector: Some(selector_string(pool)),
        // Absent until some bridge reports: unknown load is not zero load.
        load: loads.iter().any(|(_, l)| l.known()).then(|| total.clone()),
        bridges,
        last_scale,
    };
    let labels = [ns, &pool.name_any()];
    let m = &ctx.metrics;
    m.pool_desired.with_label_values(&labels).set(i64::from(desired));
    m.pool_running.with_label_values(&labels).set(i64::from(run_count));
    loads::publish(ctx, pool, &total);
    ctx.write_status(pool, seen.as_ref(), &status).await?;
    Ok(Action::requeue(if failed.is_empty() { requeue } else { requeue.min(ERROR_RETRY) }))
}

/// Pods are annotated when the operator asks them to drain, so a restarted or new leader waits
/// for a silent draining bridge instead of asking again. The deadline is the bridge's own.
const DRAINING: &str = "convene.dev/draining";

/// Each pod's load as the load watch last saw it; a pod it has not seen yet (new, or the pool
/// is new) is scraped now.
async fn bridge_loads<'a>(
    ctx: &Context,
    pool: &BridgePool,
    pods: &'a [Arc<Pod>],
) -> Vec<(&'a Pod, autoscale::BridgeLoad)> {
    let cached = ctx.loads.lock().unwrap_or_else(|e| e.into_inner()).get(&pool_key(pool)).cloned();
    let unseen: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| !cached.as_ref().is_some_and(|c| c.bridges.contains_key(&p.uid().unwrap_or_default())))
        .cloned()
        .collect();
    let mut fresh = loads::scrape(pool, &unseen).await;
    if let Some(c) = cached {
        fresh.extend(c.bridges);
    }
    pods.iter()
        .map(|p| (&**p, fresh.get(&p.uid().unwrap_or_default()).cloned().unwrap_or_default()))
        .collect()
}

/// Pure: the pool's total load from what its bridges reported.
pub fn pool_load<'a>(loads: impl IntoIterator<Item = &'a autoscale::BridgeLoad>) -> PoolLoad {
    let loads: Vec<&autoscale::BridgeLoad> = loads.into_iter().collect();
    PoolLoad {
        endpoints: loads.iter().filter_map(|l| l.endpoints).sum::<u64>() as i64,
        conferences: loads.iter().filter_map(|l| l.conferences).sum::<u64>() as i64,
        mbps: loads.iter().filter_map(|l| l.mbps).sum::<f64>().round() as i64,
        unknown_bridges: loads.iter().filter(|l| !l.known()).count() as i32,
    }
}

/// The size the pool should have: `spec.replicas` (the scale subresource) with autoscaling
/// off; else the load watch's latest decision, within today's [min, max] (decided now when
/// the watch has not seen the pool yet).
fn decide(
    pool: &BridgePool,
    ctx: &Context,
    from: i32,
    loads: &[(&Pod, autoscale::BridgeLoad)],
) -> autoscale::Decision {
    if !pool.spec.autoscaling.as_ref().is_some_and(|a| a.enabled) {
        let n = pool.spec.replicas.max(0);
        let reason = "spec.replicas (autoscaling is off)".into();
        return autoscale::Decision { desired: n, needed: n, reason };
    }
    let watched = ctx
        .loads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&pool_key(pool))
        .and_then(|l| l.decision.clone());
    let d = watched.or_else(|| {
        let loads: Vec<autoscale::BridgeLoad> = loads.iter().map(|(_, l)| l.clone()).collect();
        loads::decide(ctx, pool, from, &loads, ctx.started.elapsed())
    });
    match d {
        Some(d) => autoscale::Decision { desired: desired_replicas(pool, d.desired), ..d },
        None => autoscale::Decision { desired: from, needed: from, reason: "no decision yet".into() },
    }
}

/// Pure: the drain logic's view of the pool's pods. A pod is current when it runs the
/// StatefulSet's update revision (or no revision is known yet).
pub fn drain_members(
    loads: &[(&Pod, autoscale::BridgeLoad)],
    update_revision: Option<&str>,
    previous: &[BridgeState],
) -> Vec<drain::Member> {
    loads
        .iter()
        .map(|(pod, load)| {
            let status = pod.status.as_ref();
            let revision = pod.labels().get("controller-revision-hash").map(String::as_str);
            drain::Member {
                ordinal: ordinal(&pod.name_any()) as i32,
                name: pod.name_any(),
                endpoints: load.endpoints,
                drain: load.drain,
                drain_requested: pod.annotations().get(DRAINING).is_some_and(|v| v == "true"),
                running: status.and_then(|s| s.pod_ip.as_ref()).is_some()
                    && status.and_then(|s| s.phase.as_deref()) == Some("Running"),
                ready: super::pod_condition(pod, "Ready").is_some_and(|c| c.status == "True"),
                answered_before: previous.iter().any(|b| b.name == pod.name_any() && b.endpoints.is_some()),
                current: update_revision.is_none() || revision == update_revision,
            }
        })
        .collect()
}

/// Ask the bridge to drain with the pool's deadline, and mark its pod. The bridge owns the
/// deadline from then on: it reports it to signaling (which moves the remaining calls at it)
/// and to us in its load report.
async fn start_drain(
    ctx: &Context,
    pool: &BridgePool,
    ns: &str,
    pods: &[Arc<Pod>],
    name: &str,
    deadline: Duration,
) -> Result<()> {
    let Some(pod) = pods.iter().find(|p| p.name_any() == name) else { return Ok(()) };
    let secret = super::apply::bridge_control_secret_value(ctx, ns, &pool.spec.shard_ref.name).await?;
    let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    let accepted = scrape::request_drain(&ip, pool.spec.ports.http, &secret, deadline).await;
    let patch = serde_json::json!({"metadata": {"annotations": {DRAINING: "true"}}});
    Api::<Pod>::namespaced(ctx.client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    let note = if accepted {
        format!(
            "draining {name} before removing it: no new conferences; its participants move at the deadline"
        )
    } else {
        format!(
            "{name} did not accept the drain request (is the bridge-control secret the shard's?); it is asked again, and removed only once it drains or stops answering"
        )
    };
    ctx.event(pool, !accepted, "Draining", note).await;
    Ok(())
}

/// What the pool references, from the watches' stores (no API request).
fn gather(pool: &BridgePool, ctx: &Context, ns: &str) -> Gathered {
    let s = &ctx.stores;
    let shard = s.shards.get(ns, &pool.spec.shard_ref.name).map(|s| (*s).clone());
    let pods = loads::pods_of(ctx, pool);
    let nodes: Vec<Arc<Node>> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .filter_map(|n| s.nodes.store.get(&kube::runtime::reflector::ObjectRef::new(&n)))
        .collect();
    let sts = s.stateful_sets.get(ns, &bridge::owner(pool).child_name()).map(|s| (*s).clone());
    let running = sts.as_ref().and_then(|s| s.spec.as_ref()?.replicas);
    let update_revision = sts.as_ref().and_then(|s| s.status.as_ref()?.update_revision.clone());
    Gathered { shard, running, update_revision, pods, nodes, sts }
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

/// Pure: the fewest and most bridges the pool runs.
pub fn bounds(pool: &BridgePool) -> (i32, i32) {
    match &pool.spec.autoscaling {
        Some(a) if a.enabled => (a.min_replicas, a.max_replicas.max(a.min_replicas)),
        _ => (pool.spec.replicas.max(0), pool.spec.replicas.max(0)),
    }
}

/// Pure: the address a bridge advertises, as its pool's address source picks it. `None` when
/// it cannot be known here (STUN is discovered by the bridge) or the node lacks the address.
pub fn advertised_address(pool: &BridgePool, node: Option<&Node>) -> Option<String> {
    let node_address = |kind: &str| {
        node?.status.as_ref()?.addresses.as_ref()?.iter().find(|a| a.type_ == kind).map(|a| a.address.clone())
    };
    match pool.spec.public_address.source {
        AddressSource::NodeExternalIp => node_address("ExternalIP"),
        AddressSource::NodeInternalIp => node_address("InternalIP"),
        AddressSource::Static => pool.spec.public_address.static_addresses.first().cloned(),
        AddressSource::Stun => None,
    }
}

/// Pure: one status line per bridge pod, in ordinal order.
pub fn bridge_states(
    pool: &BridgePool,
    pods: &[impl Borrow<Pod>],
    nodes: &[impl Borrow<Node>],
) -> Vec<BridgeState> {
    let mut states: Vec<BridgeState> = pods
        .iter()
        .map(|p| {
            let p = p.borrow();
            let node_name = p.spec.as_ref().and_then(|s| s.node_name.clone());
            let node = nodes.iter().map(Borrow::borrow).find(|n: &&Node| Some(n.name_any()) == node_name);
            BridgeState {
                name: p.name_any(),
                address: node_name.as_ref().and_then(|_| advertised_address(pool, node)),
                node: node_name,
                ready: super::pod_condition(p, "Ready").is_some_and(|c| c.status == "True"),
                draining: p.annotations().get(DRAINING).is_some_and(|v| v == "true"),
                version: p
                    .spec
                    .as_ref()
                    .and_then(|s| s.containers.first()?.image.as_deref())
                    .map(super::image_version),
                ..BridgeState::default()
            }
        })
        .collect();
    states.sort_by_key(|s| ordinal(&s.name));
    states
}

pub fn ordinal(pod: &str) -> u32 {
    pod.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(u32::MAX)
}

/// A bridge whose clients never complete ICE: at least this many of its peer connections failed
/// in the window, and none connected, while another bridge of the pool connects its clients.
pub const ICE_FAILURES_MIN: u64 = 3;
/// No bridge of the pool connects any client: at least this many failures across the pool (a
/// single client that cannot connect anywhere, and retries, should not make it).
pub const ICE_FAILURES_POOL_MIN: u64 = 5;
/// The share of connections relayed through TURN is judged on at least this many.
pub const RELAY_SAMPLE_MIN: u64 = 10;

/// An address source as the BridgePool spec spells it (`NodeExternalIP`).
fn spelled(source: AddressSource) -> String {
    serde_json::to_value(source)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_else(|| format!("{source:?}"))
}

/// Pure: what the clients' ICE reports (`BridgeState::ice`, the last 10 minutes as signaling
/// counted them) say is wrong: clients that reach some bridges but never one of them (its
/// advertised address is wrong or UDP does not reach its node), or no bridge at all; and too
/// many connections going through TURN (UDP blocked for many clients). Bridges that reported
/// no counts are left out.
pub fn ice_health(pool: &BridgePool, bridges: &[BridgeState]) -> (Option<Observed>, Option<Observed>) {
    let counted: Vec<(&BridgeState, crate::crd::bridgepool::BridgeIce)> =
        bridges.iter().filter_map(|b| Some((b, b.ice?))).collect();
    let media = pool.spec.ports.media;
    let source = spelled(pool.spec.public_address.source);
    let stun = pool.spec.public_address.source == AddressSource::Stun;
    let node = |b: &BridgeState| b.node.clone().unwrap_or_else(|| "(no node)".into());
    let address = |b: &BridgeState| match &b.address {
        Some(a) => a.clone(),
        None if stun => "its STUN-discovered address (see convene_bridge_advertised_address_info)".into(),
        None => "no address".into(),
    };
    let connected: i64 = counted.iter().map(|(_, i)| i.connected.max(0)).sum();
    let relayed: i64 = counted.iter().map(|(_, i)| i.relayed.clamp(0, i.connected.max(0))).sum();
    let failed: i64 = counted.iter().map(|(_, i)| i.failed.max(0)).sum();
    let bad: Vec<_> =
        counted.iter().filter(|(_, i)| i.connected <= 0 && i.failed >= ICE_FAILURES_MIN as i64).collect();
    let good: Vec<_> = counted.iter().filter(|(_, i)| i.connected > 0).collect();
    let failing = if !bad.is_empty() && !good.is_empty() {
        let each: Vec<String> = bad
            .iter()
            .map(|(b, i)| {
                format!(
                    "bridge {} (node {}, advertises {}): {} failed, none connected",
                    b.name,
                    node(b),
                    address(b),
                    i.failed
                )
            })
            .collect();
        let others: Vec<String> = good.iter().map(|(b, i)| format!("{} {}", b.name, i.connected)).collect();
        let nodes: Vec<String> = bad.iter().map(|(b, _)| node(b)).collect();
        Some(Observed::new(
            "Degraded",
            true,
            "IceFailing",
            format!(
                "clients never complete ICE with {} in the last 10 minutes, while other bridges of the pool connect theirs (connected: {}): the advertised address is wrong or UDP is blocked. Check that the address is the one clients reach node {} at (spec.publicAddress.source {source}) and that UDP port {media} reaches the node from outside (firewall, cloud security group)",
                each.join("; "),
                others.join(", "),
                nodes.join(", "),
            ),
        ))
    } else if !counted.is_empty() && connected == 0 && failed >= ICE_FAILURES_POOL_MIN as i64 {
        let addresses: Vec<String> =
            counted.iter().map(|(b, _)| format!("{} {}", b.name, address(b))).collect();
        Some(Observed::new(
            "Degraded",
            true,
            "IceFailingEverywhere",
            format!(
                "no client completed ICE with any bridge of the pool: {failed} peer connection(s) failed and none connected in the last 10 minutes. Check that UDP port {media} (and TCP {} for ICE-TCP) reaches the bridges' nodes from outside, that the advertised addresses ({}) are where clients reach the nodes (spec.publicAddress.source {source}), and the shard's TURN servers",
                pool.spec.ports.tcp_fallback,
                addresses.join(", "),
            ),
        ))
    } else {
        None
    };
    let threshold = i64::from(pool.spec.relay_share_warning_percent.clamp(1, 100));
    let relay = (connected >= RELAY_SAMPLE_MIN as i64 && relayed * 100 > connected * threshold).then(|| {
        let nodes: Vec<String> = counted.iter().map(|(b, _)| node(b)).collect();
        Observed::new(
            "Degraded",
            true,
            "RelayShareHigh",
            format!(
                "{relayed} of {connected} clients' peer connections in the last 10 minutes ({}%) went through TURN (more than {threshold}%): UDP is probably blocked for many clients. Check the firewall in front of the bridges' UDP port {media} (nodes {}); if these clients are expected to come through TURN, raise spec.relayShareWarningPercent",
                relayed * 100 / connected,
                nodes.join(", "),
            ),
        )
    });
    (failing, relay)
}

/// Pure: the pool's conditions. Pods the scheduler cannot place (port taken, too few nodes for
/// one bridge each), nodes without the address the pool advertises, clients that cannot
/// complete ICE with a bridge ([`ice_health`]), bridges left on another version after a rollout
/// and clients mostly relayed through TURN make it Degraded, in this order: the first gives
/// the reason, every one adds its message.
pub fn health(
    pool: &BridgePool,
    desired: i32,
    sts: &StatefulSet,
    pods: &[impl Borrow<Pod>],
    bridges: &[BridgeState],
    rolling: Option<String>,
) -> Health {
    let (ready, rolled_out) = stateful_set_progress(Some(sts), desired);
    let unschedulable = super::unschedulable(pods);
    let source = pool.spec.public_address.source;
    let no_address: Vec<&str> = bridges
        .iter()
        .filter(|b| b.node.is_some() && b.address.is_none() && source != AddressSource::Stun)
        .map(|b| b.node.as_deref().unwrap_or_default())
        .collect();
    let skew = super::conditions::version_skew(
        bridges.iter().filter_map(|b| Some((b.name.as_str(), b.version.as_deref()?))),
    );
    let (ice_failing, relay_high) = ice_health(pool, bridges);
    let problems = [
        (!unschedulable.is_empty()).then(|| {
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
        }),
        (!no_address.is_empty()).then(|| {
            Observed::new(
                "Degraded",
                true,
                "NoAdvertisedAddress",
                format!(
                    "node(s) {} have no {} address; clients could not reach these bridges. Set spec.publicAddress.source to match your nodes",
                    no_address.join(", "),
                    spelled(source)
                ),
            )
        }),
        ice_failing,
        skew.filter(|_| rolling.is_none() && rolled_out).map(|skew| {
            Observed::new(
                "Degraded",
                true,
                "MixedVersions",
                format!(
                    "the bridges run different versions after the rollout ended: {skew}. Delete the stragglers' pods or pin one image"
                ),
            )
        }),
        relay_high,
    ];
    let degraded = super::degraded_of(
        problems.into_iter().flatten().collect(),
        Observed::new("Degraded", false, "AsExpected", "all bridges placed with an address"),
    );
    let progressing = if let Some(msg) = rolling {
        Observed::new("Progressing", true, "RollingUpdate", msg)
    } else if rolled_out {
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
