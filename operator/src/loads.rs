//! The load watch: every few seconds each pool's bridges are scraped and, with autoscaling
//! on, the autoscaler decides. A pool is reconciled only when something its status or its
//! drain logic reads has changed, not on every scrape.

use crate::autoscale::{self, BridgeLoad, Decision};
use crate::crd::BridgePool;
use crate::reconcile::context::Context;
use crate::reconcile::scrape;
use crate::render::bridge;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How often bridges are scraped and the autoscaler decides.
pub const PERIOD: Duration = Duration::from_secs(5);

/// What the load watch last saw of one pool.
#[derive(Clone, Debug)]
pub struct PoolLoads {
    /// Each bridge's load by pod uid (a replaced pod starts unknown, never with its
    /// predecessor's figures).
    pub bridges: BTreeMap<String, BridgeLoad>,
    /// The autoscaler's decision (pools with autoscaling on).
    pub decision: Option<Decision>,
}

/// One bridge as a reconcile reads it: figures rounded as the status shows them, and the
/// drain facts the drain logic acts on.
#[derive(Clone, Debug, PartialEq)]
pub struct BridgeSignature {
    pub pod: String,
    pub endpoints: Option<u64>,
    pub conferences: Option<u64>,
    pub mbps: Option<i64>,
    pub stress_percent: Option<i64>,
    pub draining: bool,
    pub deadline_passed: bool,
    /// Clients' ICE outcomes (the status shows them, and the pool's conditions read them).
    pub ice: Option<convene_proto::load::IceCounts>,
}

/// Pure: what in a pool's loads would change its reconcile's outcome.
pub fn signature(p: &PoolLoads) -> (Option<i32>, Vec<BridgeSignature>) {
    let bridges = p
        .bridges
        .iter()
        .map(|(pod, l)| BridgeSignature {
            pod: pod.clone(),
            endpoints: l.endpoints,
            conferences: l.conferences,
            mbps: l.mbps.map(|m| m.round() as i64),
            stress_percent: l.stress.map(|s| (s * 100.0).round() as i64),
            draining: l.drain.is_some(),
            deadline_passed: l.drain.is_some_and(|d| d.elapsed_ms >= d.deadline_ms),
            ice: l.ice,
        })
        .collect();
    (p.decision.as_ref().map(|d| d.desired), bridges)
}

pub fn pool_key(pool: &BridgePool) -> String {
    format!("{}/{}", pool.namespace().unwrap_or_default(), pool.name_any())
}

/// The pool's bridge pods, from the pod store.
pub fn pods_of(ctx: &Context, pool: &BridgePool) -> Vec<Arc<Pod>> {
    let ns = pool.namespace().unwrap_or_default();
    ctx.stores.pods.labelled(&ns, &bridge::owner(pool).selector_labels())
}

/// Scrape `pods` (those with an address) at the pool's HTTP port, concurrently.
pub async fn scrape(pool: &BridgePool, pods: &[Arc<Pod>]) -> BTreeMap<String, BridgeLoad> {
    let port = pool.spec.ports.http;
    let futures = pods.iter().map(|p| async move {
        let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
        let load = match ip {
            Some(ip) => scrape::load(&ip, port).await,
            None => BridgeLoad::default(),
        };
        (p.uid().unwrap_or_default(), load)
    });
    futures::future::join_all(futures).await.into_iter().collect()
}

/// The autoscaler's decision for `pool` from its last decided size `from` (0: none yet), at
/// `now` since the operator started (scrapes of one tick share one time, so a window of N
/// scrape periods ends on a tick, not one tick later by the scrape's own duration).
pub fn decide(
    ctx: &Context,
    pool: &BridgePool,
    from: i32,
    loads: &[BridgeLoad],
    now: Duration,
) -> Option<Decision> {
    let a = pool.spec.autoscaling.as_ref().filter(|a| a.enabled)?;
    let targets = autoscale::Targets {
        nouns: autoscale::Nouns::BRIDGES,
        min: a.min_replicas,
        max: a.max_replicas,
        endpoints_per_bridge: a.target_endpoints_per_bridge,
        mbps_per_bridge: a.target_mbps_per_bridge,
        headroom_percent: a.headroom_percent,
        scale_up_window: Duration::from_secs(a.scale_up_stabilization_seconds.max(0) as u64),
        scale_down_window: Duration::from_secs(a.scale_down_stabilization_seconds.max(0) as u64),
    };
    let current = crate::reconcile::bridgepool::desired_replicas(pool, from);
    let mut windows = ctx.windows.lock().unwrap_or_else(|e| e.into_inner());
    let w = windows.entry(pool_key(pool)).or_default();
    Some(autoscale::decide(current, loads, &targets, w, now))
}

/// The pool's load gauges (also set by a reconcile that scraped a bridge the watch had not
/// seen yet).
pub fn publish(ctx: &Context, pool: &BridgePool, total: &crate::crd::bridgepool::PoolLoad) {
    let ns = pool.namespace().unwrap_or_default();
    let labels = [ns.as_str(), &pool.name_any()];
    let m = &ctx.metrics;
    m.pool_endpoints.with_label_values(&labels).set(total.endpoints);
    m.pool_mbps.with_label_values(&labels).set(total.mbps);
    m.pool_unknown.with_label_values(&labels).set(i64::from(total.unknown_bridges));
}

/// A deleted pool's gauges go with it (an alert on them would otherwise fire forever).
pub fn forget(ctx: &Context, pool: &BridgePool) {
    let ns = pool.namespace().unwrap_or_default();
    let labels = [ns.as_str(), &pool.name_any()];
    let m = &ctx.metrics;
    for g in [&m.pool_desired, &m.pool_running, &m.pool_endpoints, &m.pool_mbps, &m.pool_unknown] {
        let _ = g.remove_label_values(&labels);
    }
}

/// Run the load watch until the process stops; `wake` asks for a pool's reconcile.
pub async fn run(ctx: Arc<Context>, wake: futures::channel::mpsc::UnboundedSender<ObjectRef<BridgePool>>) {
    let mut tick = tokio::time::interval(PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: HashMap<String, (Option<i32>, Vec<BridgeSignature>)> = HashMap::new();
    loop {
        let now = tick.tick().await.into_std().saturating_duration_since(ctx.started);
        let pools: Vec<Arc<BridgePool>> = ctx
            .stores
            .bridge_pools
            .store
            .state()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        let scraped = futures::future::join_all(pools.iter().map(|pool| {
            let pods = pods_of(&ctx, pool);
            async move { scrape(pool, &pods).await }
        }))
        .await;
        let mut live = HashSet::new();
        for (pool, bridges) in pools.iter().zip(scraped) {
            let key = pool_key(pool);
            live.insert(key.clone());
            let loads: Vec<BridgeLoad> = bridges.values().cloned().collect();
            let from = ctx
                .loads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&key)
                .and_then(|l| l.decision.as_ref().map(|d| d.desired))
                .or_else(|| pool.status.as_ref().map(|s| s.desired_replicas))
                .unwrap_or(0);
            let decision = decide(&ctx, pool, from, &loads, now);
            publish(&ctx, pool, &crate::reconcile::bridgepool::pool_load(&loads));
            let p = PoolLoads { bridges, decision };
            let sig = signature(&p);
            ctx.loads.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), p);
            if last.get(&key) != Some(&sig) {
                tracing::debug!(pool = %key, desired = ?sig.0, bridges = ?sig.1, "load changed; reconciling");
                last.insert(key, sig);
                let _ = wake.unbounded_send(ObjectRef::from_obj(&**pool));
            }
        }
        last.retain(|k, _| live.contains(k));
        ctx.loads.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
        ctx.windows.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
        ctx.prune(&ctx.stores.live_uids());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convene_proto::load::Drain;

    fn load(endpoints: u64, mbps: f64, drain: Option<Drain>) -> BridgeLoad {
        BridgeLoad {
            endpoints: Some(endpoints),
            conferences: Some(1),
            mbps: Some(mbps),
            stress: Some(0.1),
            drain,
            ice: None,
        }
    }

    fn pool(bridges: &[(&str, BridgeLoad)], desired: Option<i32>) -> PoolLoads {
        PoolLoads {
            bridges: bridges.iter().map(|(k, l)| (k.to_string(), l.clone())).collect(),
            decision: desired.map(|d| Decision { desired: d, needed: d, reason: format!("load {d}") }),
        }
    }

    #[test]
    fn steady_load_is_no_change_but_what_status_shows_is() {
        let a = pool(&[("a", load(10, 20.2, None))], Some(2));
        assert_eq!(signature(&a), signature(&pool(&[("a", load(10, 19.9, None))], Some(2))));
        assert_ne!(signature(&a), signature(&pool(&[("a", load(11, 20.2, None))], Some(2))), "endpoints");
        assert_ne!(signature(&a), signature(&pool(&[("a", load(10, 21.0, None))], Some(2))), "Mbps shown");
        assert_ne!(signature(&a), signature(&pool(&[("a", load(10, 20.2, None))], Some(3))), "decision");
        assert_ne!(
            signature(&a),
            signature(&pool(&[("a", BridgeLoad::default())], Some(2))),
            "a bridge that stops answering"
        );
        let ice = |failed| BridgeLoad {
            ice: Some(convene_proto::load::IceCounts { connected: 0, relayed: 0, failed }),
            ..load(10, 20.2, None)
        };
        assert_ne!(
            signature(&a),
            signature(&pool(&[("a", ice(1))], Some(2))),
            "ICE counts (shown, and decide conditions)"
        );
        assert_ne!(signature(&pool(&[("a", ice(1))], Some(2))), signature(&pool(&[("a", ice(3))], Some(2))));
    }

    #[test]
    fn a_drain_changes_when_it_starts_and_when_its_deadline_passes_not_every_tick() {
        let drain = |elapsed_ms| Some(Drain { elapsed_ms, deadline_ms: 60_000 });
        let at = |ms| signature(&pool(&[("a", load(4, 8.0, drain(ms)))], Some(1)));
        assert_ne!(signature(&pool(&[("a", load(4, 8.0, None))], Some(1))), at(0));
        assert_eq!(at(5_000), at(10_000), "time passing in a drain is not a change");
        assert_ne!(at(10_000), at(60_000), "the deadline passing is");
    }
}
