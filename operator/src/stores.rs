//! One watch per kind for the operator (per watched namespace). Each feeds a reflector store
//! that the reconcilers read instead of asking the API server, and fans its changes out to
//! every controller that reacts to them, so no kind is listed or watched twice.

use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::Arc;

use crate::trim::Trim;

/// Changes a slow controller may fall behind by before the watch waits for it.
const BUFFER: usize = 1024;

/// One change seen by a watch.
#[derive(Clone)]
struct Change<K> {
    obj: Arc<K>,
    deleted: bool,
}

/// A kind's store and its stream of changes.
pub struct Watched<K: reflector::Lookup<DynamicType = ()> + Clone + 'static> {
    pub store: Store<K>,
    changes: async_broadcast::InactiveReceiver<Change<K>>,
}

impl<K> Watched<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static,
{
    /// Every applied or deleted object, from now on.
    pub fn changes(&self) -> impl Stream<Item = Arc<K>> + Send + use<K> {
        self.changes.activate_cloned().map(|c| c.obj)
    }

    /// Only the changes that alter `key(obj)` (and every deletion): a controller that reads a
    /// kind's spec is not woken by status writes, its own included.
    pub fn changes_of<T, F>(&self, key: F) -> impl Stream<Item = Arc<K>> + Send + use<K, T, F>
    where
        T: PartialEq + Send + 'static,
        F: Fn(&K) -> T + Send + 'static,
    {
        let mut seen: HashMap<ObjectRef<K>, T> = HashMap::new();
        self.changes.activate_cloned().filter_map(move |c| {
            let r = ObjectRef::from_obj(&*c.obj);
            let pass = if c.deleted {
                seen.remove(&r);
                true
            } else {
                let k = key(&c.obj);
                let changed = seen.get(&r) != Some(&k);
                seen.insert(r, k);
                changed
            };
            std::future::ready(pass.then_some(c.obj))
        })
    }

    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        self.store.get(&ObjectRef::new(name).within(namespace))
    }

    /// Objects in `namespace` whose labels include all of `labels`.
    pub fn labelled(&self, namespace: &str, labels: &BTreeMap<String, String>) -> Vec<Arc<K>> {
        self.store
            .state()
            .into_iter()
            .filter(|o| o.namespace().as_deref() == Some(namespace))
            .filter(|o| labels.iter().all(|(k, v)| o.labels().get(k) == Some(v)))
            .collect()
    }

    /// Objects in `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.store.state().into_iter().filter(|o| o.namespace().as_deref() == Some(namespace)).collect()
    }
}

/// Start watching `api`: the store and change feed, and the future that drives them (run it
/// until shutdown). An `Api<PartialObjectMeta<_>>` watches metadata only (the API server sends
/// no Secret data, for one).
pub fn watch<K>(api: Api<K>, config: watcher::Config) -> (Watched<K>, impl Future<Output = ()> + Send)
where
    K: Resource<DynamicType = ()> + Trim + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    feed(watcher(api, config))
}

/// Objects are trimmed to what the reconciles read before caching (`Trim`).
fn feed<K>(
    events: impl Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
) -> (Watched<K>, impl Future<Output = ()> + Send)
where
    K: Resource<DynamicType = ()> + Trim + Clone + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let (mut tx, rx) = async_broadcast::broadcast::<Change<K>>(BUFFER);
    // Back-pressure instead of dropping changes; and a kind nobody subscribes to (Nodes, read
    // from the store only) must not stall its watch.
    tx.set_overflow(false);
    tx.set_await_active(false);
    let changes = rx.deactivate();
    let kind = K::kind(&());
    let drive = async move {
        let events = events.default_backoff().modify(|o: &mut K| o.trim()).reflect(writer);
        futures::pin_mut!(events);
        // A relist's objects are announced once it is complete (InitDone), when the store
        // holds them: a reconcile triggered earlier would not find its object.
        let mut listing: Vec<Arc<K>> = vec![];
        while let Some(event) = events.next().await {
            let out: Vec<Change<K>> = match event {
                Ok(watcher::Event::Apply(o)) => vec![Change { obj: Arc::new(o), deleted: false }],
                Ok(watcher::Event::Delete(o)) => vec![Change { obj: Arc::new(o), deleted: true }],
                Ok(watcher::Event::Init) => {
                    listing.clear();
                    vec![]
                }
                Ok(watcher::Event::InitApply(o)) => {
                    listing.push(Arc::new(o));
                    vec![]
                }
                Ok(watcher::Event::InitDone) => {
                    listing.drain(..).map(|obj| Change { obj, deleted: false }).collect()
                }
                Err(e) => {
                    tracing::warn!(kind = %kind, error = %e, "watch failed; retrying with backoff");
                    vec![]
                }
            };
            for c in out {
                // Err only when no controller listens (a store-only kind).
                let _ = tx.broadcast_direct(c).await;
            }
        }
    };
    (Watched { store, changes }, drive)
}

/// A key that changes with an object's spec (generation) or its deletion, not its status.
pub fn spec_key<K: Resource>(o: &K) -> (Option<i64>, bool, Vec<String>) {
    let m = o.meta();
    (m.generation, m.deletion_timestamp.is_some(), m.finalizers.clone().unwrap_or_default())
}

/// Every kind the operator reads, in one watched namespace (or all).
pub struct Stores {
    pub shards: Watched<crate::crd::Shard>,
    pub bridge_pools: Watched<crate::crd::BridgePool>,
    pub turn_pools: Watched<crate::crd::TurnPool>,
    pub recorder_pools: Watched<crate::crd::RecorderPool>,
    /// StatefulSets and pods the operator manages (by label).
    pub stateful_sets: Watched<k8s_openapi::api::apps::v1::StatefulSet>,
    pub pods: Watched<k8s_openapi::api::core::v1::Pod>,
    /// Cluster-wide: where bridges and relays run, and the addresses they advertise.
    pub nodes: Watched<k8s_openapi::api::core::v1::Node>,
    /// Metadata only: the operator never caches Secret data.
    pub secrets: Watched<PartialObjectMeta<k8s_openapi::api::core::v1::Secret>>,
    /// Metadata of managed Ingresses (to delete a disabled shard's).
    pub ingresses: Watched<PartialObjectMeta<k8s_openapi::api::networking::v1::Ingress>>,
}

impl Stores {
    /// Once every watch has listed its kind: a reconcile before that would see a reference as
    /// missing (a Shard without its pools) and write a wrong status.
    pub async fn ready(&self) {
        let _ = futures::join!(
            self.shards.store.wait_until_ready(),
            self.bridge_pools.store.wait_until_ready(),
            self.turn_pools.store.wait_until_ready(),
            self.recorder_pools.store.wait_until_ready(),
            self.stateful_sets.store.wait_until_ready(),
            self.pods.store.wait_until_ready(),
            self.nodes.store.wait_until_ready(),
            self.secrets.store.wait_until_ready(),
            self.ingresses.store.wait_until_ready(),
        );
    }

    /// The uids of every custom resource in the stores.
    pub fn live_uids(&self) -> std::collections::HashSet<String> {
        fn uids<K: Resource<DynamicType = ()> + Clone + Debug + Send + Sync + 'static>(
            w: &Watched<K>,
        ) -> impl Iterator<Item = String> {
            w.store.state().into_iter().filter_map(|o| o.meta().uid.clone())
        }
        uids(&self.shards)
            .chain(uids(&self.bridge_pools))
            .chain(uids(&self.turn_pools))
            .chain(uids(&self.recorder_pools))
            .collect()
    }
}
