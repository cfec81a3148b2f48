//! Wires the four reconcilers to watches: each kind, the children it owns, and the other kinds
//! whose changes matter to it.

use crate::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use crate::reconcile::{self, context::Context};
use crate::render::meta::{COMPONENT, MANAGED_BY, MANAGED_BY_VALUE, OWNER_NAME};
use futures::{Future, StreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use std::fmt::Debug;
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

/// Changes to Secrets, metadata only (the operator never caches Secret data): a referenced
/// Secret that appears (or gains its key) is acted on within seconds, not at the next retry.
fn secrets(
    client: &Client,
    ns: Option<&str>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static {
    let api: Api<PartialObjectMeta<Secret>> = match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    watcher(api, watcher::Config::default()).default_backoff().touched_objects()
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

/// Run all four controllers for one namespace (`None`: every namespace) until `shutdown`.
pub async fn run<F>(ctx: Arc<Context>, ns: Option<String>, shutdown: F)
where
    F: Future<Output = ()> + Send + Sync + Clone + 'static,
{
    let client = ctx.client.clone();
    let ns = ns.as_deref();

    let shards = Controller::new(api::<Shard>(&client, ns), wc());
    let shard_store = shards.store();
    let shard_store_secrets = shards.store();
    let shards = shards
        .owns(api::<StatefulSet>(&client, ns), wc())
        .watches(api::<BridgePool>(&client, ns), wc(), |pool| {
            Some(ObjectRef::new(&pool.spec.shard_ref.name).within(&pool.namespace().unwrap_or_default()))
        })
        .watches_stream(secrets(&client, ns), {
            let store = shard_store_secrets.clone();
            move |secret| {
                let (name, sns) = (secret.name_any(), secret.namespace());
                store
                    .state()
                    .into_iter()
                    .filter(move |s| s.namespace() == sns && shard_secret_refs(s).contains(&name))
                    .map(|s| ObjectRef::from_obj(&*s))
            }
        })
        .watches(api::<TurnPool>(&client, ns), wc(), move |tp| {
            let (name, tns) = (tp.name_any(), tp.namespace());
            shard_store
                .state()
                .into_iter()
                .filter(move |s| {
                    s.namespace() == tns && s.spec.turn_pool_ref.as_ref().is_some_and(|r| r.name == name)
                })
                .map(|s| ObjectRef::from_obj(&*s))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::shard::reconcile, reconcile::error_policy, ctx.clone());

    let bridge_pods = wc().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE},{COMPONENT}=bridge"));
    let pools = Controller::new(api::<BridgePool>(&client, ns), wc());
    let pool_store = pools.store();
    let pools = pools
        .owns(api::<StatefulSet>(&client, ns), wc())
        .watches(api::<Pod>(&client, ns), bridge_pods, |pod| {
            let owner = pod.labels().get(OWNER_NAME)?;
            Some(ObjectRef::new(owner).within(&pod.namespace().unwrap_or_default()))
        })
        .watches(api::<Shard>(&client, ns), wc(), move |shard| {
            let (name, sns) = (shard.name_any(), shard.namespace());
            pool_store
                .state()
                .into_iter()
                .filter(move |p| p.namespace() == sns && p.spec.shard_ref.name == name)
                .map(|p| ObjectRef::from_obj(&*p))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::bridgepool::reconcile, reconcile::error_policy, ctx.clone());

    let turns = Controller::new(api::<TurnPool>(&client, ns), wc());
    let turn_store = turns.store();
    let turn_store2 = turns.store();
    let turn_store3 = turns.store();
    let turns = turns
        .owns(api::<StatefulSet>(&client, ns), wc())
        .watches_stream(secrets(&client, ns), move |secret| {
            let (name, sns) = (secret.name_any(), secret.namespace());
            turn_store3
                .state()
                .into_iter()
                .filter(move |t| t.namespace() == sns && t.spec.tls_secret_name.as_ref() == Some(&name))
                .map(|t| ObjectRef::from_obj(&*t))
        })
        // Bridge addresses feed `allowed-peer-ip`: any pool change may matter.
        .watches(api::<BridgePool>(&client, ns), wc(), move |pool| {
            let pns = pool.namespace();
            turn_store
                .state()
                .into_iter()
                .filter(move |t| t.namespace() == pns)
                .map(|t| ObjectRef::from_obj(&*t))
        })
        .watches(api::<Shard>(&client, ns), wc(), move |shard| {
            let sns = shard.namespace();
            turn_store2
                .state()
                .into_iter()
                .filter(move |t| t.namespace() == sns)
                .map(|t| ObjectRef::from_obj(&*t))
        })
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::turnpool::reconcile, reconcile::error_policy, ctx.clone());

    let recorders = Controller::new(api::<RecorderPool>(&client, ns), wc());
    let recorder_store = recorders.store();
    let recorder_store2 = recorders.store();
    let recorders = recorders
        .owns(api::<StatefulSet>(&client, ns), wc())
        .watches_stream(secrets(&client, ns), move |secret| {
            let (name, sns) = (secret.name_any(), secret.namespace());
            recorder_store2
                .state()
                .into_iter()
                .filter(move |r| {
                    r.namespace() == sns
                        && r.spec.storage.s3.as_ref().is_some_and(|s3| s3.credentials_secret_name == name)
                })
                .map(|r| ObjectRef::from_obj(&*r))
        })
        .watches(api::<Shard>(&client, ns), wc(), move |shard| {
            let (name, sns) = (shard.name_any(), shard.namespace());
            recorder_store
                .state()
                .into_iter()
                .filter(move |r| r.namespace() == sns && r.spec.shard_ref.name == name)
                .map(|r| ObjectRef::from_obj(&*r))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile::recorderpool::reconcile, reconcile::error_policy, ctx);

    tokio::join!(
        drain("Shard", shards),
        drain("BridgePool", pools),
        drain("TurnPool", turns),
        drain("RecorderPool", recorders)
    );
}

/// Pure: the Secrets a Shard references (JWT keys, TLS certificate).
pub fn shard_secret_refs(shard: &Shard) -> Vec<String> {
    let mut out = vec![];
    if let Some(jwt) = &shard.spec.auth.jwt {
        out.extend(jwt.secret_ref.iter().chain(&jwt.public_keys_ref).map(|r| r.name.clone()));
    }
    out.extend(shard.spec.ingress.tls_secret_name.clone());
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
