//! Wires the four reconcilers to one watch per kind: each controller is woken by its own
//! kind's spec changes, its children, and the other kinds whose changes matter to it; the
//! load watch wakes a bridge pool when its load or the autoscaler's decision changes.

use crate::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use crate::reconcile::context::{Context, Shared};
use crate::reconcile::{self};
use crate::render::meta::{COMPONENT, MANAGED_BY, MANAGED_BY_VALUE, OWNER_NAME};
use crate::stores::{self, Stores, spec_key};
use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::fmt::Debug;
use std::pin::Pin;
use std::sync::Arc;

/// The API of `K` in one namespace, or in all of them.
fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn wc() -> watcher::Config {
    watcher::Config::default().any_semantic()
}

/// Log each reconcile's outcome; the reconcilers count and publish errors themselves.
async fn drain<S, T, E>(kind: &'static str, stream: S)
where
    S: futures::Stream<Item = Result<T, E>>,
    E: Debug,
{
    stream
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(kind, error = ?e, "reconcile did not complete");
            }
        })
        .await;
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One watch per kind the operator reads, and the futures that drive them.
fn watch_all(client: &Client, ns: Option<&str>) -> (Stores, Vec<Task>) {
    let managed = wc().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));
    let mut tasks: Vec<Task> = vec![];
    macro_rules! watched {
        ($w:expr) => {{
            let (w, drive) = $w;
            tasks.push(Box::pin(drive));
            w
        }};
    }
    let stores = Stores {
        shards: watched!(stores::watch(api::<Shard>(client, ns), wc())),
        bridge_pools: watched!(stores::watch(api::<BridgePool>(client, ns), wc())),
        turn_pools: watched!(stores::watch(api::<TurnPool>(client, ns), wc())),
        recorder_pools: watched!(stores::watch(api::<RecorderPool>(client, ns), wc())),
        stateful_sets: watched!(stores::watch(api::<StatefulSet>(client, ns), managed.clone())),
        pods: watched!(stores::watch(api::<Pod>(client, ns), managed.clone())),
        nodes: watched!(stores::watch(Api::<Node>::all(client.clone()), wc())),
        secrets: watched!(stores::watch(api::<PartialObjectMeta<Secret>>(client, ns), wc())),
        ingresses: watched!(stores::watch(api::<PartialObjectMeta<Ingress>>(client, ns), managed)),
    };
    (stores, tasks)
}

/// Objects in `store` (same namespace as `other`) that `refers` says refer to `other`.
fn referrers<K, O>(store: &Store<K>, other: &O, refers: impl Fn(&K, &str) -> bool) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    O: Resource,
{
    let (name, ns) = (other.name_any(), other.namespace());
    store
        .state()
        .into_iter()
        .filter(|k| k.namespace() == ns && refers(k, &name))
        .map(|k| ObjectRef::from_obj(&*k))
        .collect()
}

/// The pool a managed pod of `component` belongs to (its owner label).
fn pod_owner<K: Resource<DynamicType = ()>>(pod: &Pod, component: &str) -> Option<ObjectRef<K>> {
    if pod.labels().get(COMPONENT).map(String::as_str) != Some(component) {
        return None;
    }
    Some(ObjectRef::new(pod.labels().get(OWNER_NAME)?).within(&pod.namespace().unwrap_or_default()))
}

/// The pools (by owner label) with a `component` pod on `node`: a node's addresses are what
/// its bridges or relays advertise.
fn pools_on_node<K: Resource<DynamicType = ()>>(
    pods: &Store<Pod>,
    node: &Node,
    component: &str,
) -> Vec<ObjectRef<K>> {
    let name = node.name_any();
    pods.state()
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()) == Some(&name))
        .filter_map(|p| pod_owner(p, component))
        .collect()
}

fn node_addresses(n: &Node) -> Option<Vec<(String, String)>> {
    let addresses = n.status.as_ref()?.addresses.as_ref()?;
    Some(addresses.iter().map(|a| (a.type_.clone(), a.address.clone())).collect())
}

/// Run all four controllers and the load watch for one namespace (`None`: every namespace)
/// until `shutdown`.
pub async fn run<F>(shared: Shared, ns: Option<String>, shutdown: F)
where
    F: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    let (stores, drivers) = watch_all(&shared.client, ns.as_deref());
    let ctx = Arc::new(Context::new(shared, stores));
    let s = &ctx.stores;

    let shard_store = s.shards.store.clone();
    let shards = Controller::for_shared_stream(s.shards.changes_of(spec_key), shard_store.clone())
        .owns_shared_stream(s.stateful_sets.changes())
        // What the shard's status shows of its pools.
        .watches_shared_stream(
            s.bridge_pools.changes_of(|p| {
                let st = p.status.as_ref();
                let load = st.and_then(|s| s.load.as_ref()).map(|l| (l.conferences, l.endpoints));
                (p.spec.shard_ref.name.clone(), st.map(|s| s.ready_replicas), load)
            }),
            |pool| {
                Some(ObjectRef::new(&pool.spec.shard_ref.name).within(&pool.namespace().unwrap_or_default()))
            },
        )
        .watches_shared_stream(s.secrets.changes(), {
            let store = shard_store.clone();
            move |secret| {
                referrers(&store, &*secret, |s, name| shard_secret_refs(s).iter().any(|r| r == name))
            }
        })
        .watches_shared_stream(
            s.turn_pools
                .changes_of(|t| (t.metadata.generation, t.status.as_ref().map(|s| s.addresses.clone()))),
            {
                let store = shard_store.clone();
                move |tp| {
                    referrers(&store, &*tp, |s, name| {
                        s.spec.turn_pool_ref.as_ref().is_some_and(|r| r.name == name)
                    })
                }
            },
        )
        .watches_shared_stream(s.recorder_pools.changes_of(|r| r.metadata.deletion_timestamp.is_some()), {
            let store = shard_store.clone();
            move |rp| {
                referrers(&store, &*rp, |s, name| {
                    s.spec.recorder_pool_ref.as_ref().is_some_and(|r| r.name == name)
                })
            }
        })
        // A group's members render its membership from each other: a member that joins, leaves,
        // turns Ready or drains changes every member's (any grouped Shard of the namespace, as
        // one that left a group is no longer named by it).
        .watches_shared_stream(s.shards.changes_of(group_key), {
            let store = shard_store.clone();
            move |shard| referrers(&store, &*shard, |s, _| s.spec.routing.is_some())
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::shard::reconcile, reconcile::error_policy, ctx.clone());

    let (wake, woken) = futures::channel::mpsc::unbounded();
    let pool_store = s.bridge_pools.store.clone();
    let pools = Controller::for_shared_stream(s.bridge_pools.changes_of(spec_key), pool_store.clone())
        .owns_shared_stream(s.stateful_sets.changes())
        .watches_shared_stream(s.pods.changes(), |pod| pod_owner::<BridgePool>(&pod, "bridge"))
        .watches_shared_stream(s.nodes.changes_of(node_addresses), {
            let pods = s.pods.store.clone();
            move |node| pools_on_node::<BridgePool>(&pods, &node, "bridge")
        })
        .watches_shared_stream(s.shards.changes_of(spec_key), {
            let store = pool_store.clone();
            move |shard| referrers(&store, &*shard, |p, name| p.spec.shard_ref.name == name)
        })
        .reconcile_on(woken)
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::bridgepool::reconcile, reconcile::error_policy, ctx.clone());

    let turn_store = s.turn_pools.store.clone();
    let turns = Controller::for_shared_stream(s.turn_pools.changes_of(spec_key), turn_store.clone())
        .owns_shared_stream(s.stateful_sets.changes())
        .watches_shared_stream(s.pods.changes(), |pod| pod_owner::<TurnPool>(&pod, "turn"))
        .watches_shared_stream(s.nodes.changes_of(node_addresses), {
            let pods = s.pods.store.clone();
            move |node| pools_on_node::<TurnPool>(&pods, &node, "turn")
        })
        .watches_shared_stream(s.secrets.changes(), {
            let store = turn_store.clone();
            move |secret| {
                referrers(&store, &*secret, |t, name| t.spec.tls_secret_name.as_deref() == Some(name))
            }
        })
        // Bridge addresses feed `allowed-peer-ip`.
        .watches_shared_stream(
            s.bridge_pools.changes_of(|p| {
                let addresses: Vec<Option<String>> =
                    p.status.iter().flat_map(|s| s.bridges.iter().map(|b| b.address.clone())).collect();
                (p.spec.shard_ref.name.clone(), addresses)
            }),
            {
                let store = turn_store.clone();
                move |pool| referrers(&store, &*pool, |_, _| true)
            },
        )
        .watches_shared_stream(
            s.shards.changes_of(|s| s.spec.turn_pool_ref.as_ref().map(|r| r.name.clone())),
            {
                let store = turn_store.clone();
                move |shard| referrers(&store, &*shard, |_, _| true)
            },
        )
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::turnpool::reconcile, reconcile::error_policy, ctx.clone());

    let recorder_store = s.recorder_pools.store.clone();
    let recorders =
        Controller::for_shared_stream(s.recorder_pools.changes_of(spec_key), recorder_store.clone())
            .owns_shared_stream(s.stateful_sets.changes())
            .watches_shared_stream(s.secrets.changes(), {
                let store = recorder_store.clone();
                move |secret| {
                    referrers(&store, &*secret, |r, name| {
                        r.spec.storage.s3.as_ref().is_some_and(|s3| s3.credentials_secret_name == name)
                    })
                }
            })
            .watches_shared_stream(s.shards.changes_of(spec_key), {
                let store = recorder_store.clone();
                move |shard| referrers(&store, &*shard, |r, name| r.spec.shard_ref.name == name)
            })
            .graceful_shutdown_on(shutdown.clone())
            .run(reconcile::recorderpool::reconcile, reconcile::error_policy, ctx.clone());

    // Watches and the load watch stop with the controllers.
    let background = futures::future::join_all(
        drivers.into_iter().chain([Box::pin(crate::loads::run(ctx.clone(), wake)) as Task]),
    );
    let controllers = async {
        ctx.stores.ready().await;
        tracing::info!(namespace = ns.as_deref().unwrap_or("(all)"), "watches listed; reconciling");
        tokio::join!(
            drain("Shard", shards),
            drain("BridgePool", pools),
            drain("TurnPool", turns),
            drain("RecorderPool", recorders)
        )
    };
    tokio::select! {
        _ = controllers => {}
        _ = background => {}
    }
}

/// What a Shard's group members see of it: membership, readiness, draining, its domain.
fn group_key(s: &Shard) -> (Option<crate::crd::shard::RoutingSpec>, String, bool, bool) {
    let ready = crate::render::group::ready(s);
    (s.spec.routing.clone(), s.spec.domain.clone(), ready, s.metadata.deletion_timestamp.is_some())
}

/// Pure: the Secrets a Shard references (JWT keys, TLS certificate).
pub fn shard_secret_refs(shard: &Shard) -> Vec<String> {
    let mut out = vec![];
    if let Some(jwt) = &shard.spec.auth.jwt {
        out.extend(jwt.secret_ref.iter().chain(&jwt.public_keys_ref).map(|r| r.name.clone()));
    }
    out.extend(shard.spec.ingress.tls_secret_name.clone());
    out.extend(shard.spec.serving.tls_secret_name.clone());
    out
}

/// Fails with instructions when a CRD is not installed, instead of crash-looping on watch
/// errors.
/// `ns`: a watched namespace (an operator limited to some namespaces may not list cluster-wide).
pub async fn check_crds(client: &Client, ns: Option<&str>) -> Result<(), String> {
    async fn probe<K>(client: &Client, ns: Option<&str>) -> Result<(), String>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + Debug
            + serde::de::DeserializeOwned,
    {
        let api: Api<K> = api(client, ns);
        match api.list_metadata(&kube::api::ListParams::default().limit(1)).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Err(format!(
                "the CustomResourceDefinition {}.{} is not installed. Install the CRDs with `kubectl apply -f crds/` \
                 (or `helm install convene charts/convene`), then start the operator again",
                K::plural(&()),
                K::group(&())
            )),
            Err(e) => Err(format!("cannot list {}: {e}", K::plural(&()))),
        }
    }
    probe::<Shard>(client, ns).await?;
    probe::<BridgePool>(client, ns).await?;
    probe::<TurnPool>(client, ns).await?;
    probe::<RecorderPool>(client, ns).await
}
