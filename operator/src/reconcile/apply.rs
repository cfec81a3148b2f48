//! Writing to the cluster: server-side apply of children under one field manager, secrets that
//! are created once, deletion of orphaned children, and status patches.

use super::error::Result;
use crate::crd::common::SecretKeyRef;
use crate::render::meta::FIELD_MANAGER;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fn params() -> PatchParams {
    // Force: the operator owns these fields; a hand edit is put back, as a controller should.
    PatchParams::apply(FIELD_MANAGER).force()
}

/// Server-side apply a namespaced child. Applying an unchanged object is a no-op on the server
/// (no new resourceVersion), so steady-state reconciles write nothing.
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), obj.meta().namespace.as_deref().unwrap_or_default());
    Ok(api.patch(&obj.name_any(), &params(), &Patch::Apply(with_type_meta(obj))).await?)
}

/// Server-side apply a cluster-scoped object.
pub async fn apply_cluster<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::all(client.clone());
    Ok(api.patch(&obj.name_any(), &params(), &Patch::Apply(with_type_meta(obj))).await?)
}

/// k8s-openapi types serialize without apiVersion/kind, which apply needs.
fn with_type_meta<K: Resource<DynamicType = ()> + Serialize>(obj: &K) -> serde_json::Value {
    let mut value = serde_json::to_value(obj).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
    }
    value
}

/// Create a generated Secret unless it exists (the Secret watch says whether it does).
/// Returns whether it was created. An existing Secret is never read back into or
/// overwritten by the operator.
pub async fn create_secret_once(ctx: &super::context::Context, secret: &Secret) -> Result<bool> {
    let ns = secret.meta().namespace.as_deref().unwrap_or_default();
    if ctx.stores.secrets.get(ns, &secret.name_any()).is_some() {
        return Ok(false);
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    match api
        .create(&PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() }, secret)
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Pure: what is wrong with a referenced Secret key, if anything: the Secret is missing, or it
/// exists without the key (the keys it has are named, never their values).
pub fn secret_problem(
    secret: Option<&Secret>,
    r: &SecretKeyRef,
    field: &str,
) -> Option<(&'static str, String)> {
    let Some(secret) = secret else {
        return Some(("SecretNotFound", format!("Secret {} ({field}) does not exist", r.name)));
    };
    let mut keys: Vec<&String> = secret
        .data
        .iter()
        .flat_map(|d| d.keys())
        .chain(secret.string_data.iter().flat_map(|d| d.keys()))
        .collect();
    if keys.iter().any(|k| **k == r.key) {
        return None;
    }
    keys.sort();
    let has = if keys.is_empty() {
        "no keys".to_string()
    } else {
        format!("only {}", keys.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", "))
    };
    Some((
        "SecretKeyNotFound",
        format!("Secret {} ({field}) exists but has no key {}: it has {has}", r.name, r.key),
    ))
}

/// The shard's bridge-control secret (what bridges and recorders take as a bearer token on
/// `/drain`); empty when it cannot be read (the drain is then refused and asked again).
pub async fn bridge_control_secret_value(
    ctx: &super::context::Context,
    ns: &str,
    shard: &str,
) -> Result<String> {
    let secret = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(ctx.client.clone(), ns)
        .get_opt(&crate::render::bridge_control_secret(shard))
        .await?;
    Ok(secret
        .and_then(|s| s.data?.get("secret").map(|v| String::from_utf8_lossy(&v.0).into_owned()))
        .unwrap_or_default())
}

/// Say what is wrong with a referenced Secret, if anything: missing per the Secret watch, else
/// read to check its keys (the operator caches no Secret data).
pub async fn check_secret(
    ctx: &super::context::Context,
    namespace: &str,
    r: &SecretKeyRef,
    field: &str,
) -> Result<Option<(&'static str, String)>> {
    if ctx.stores.secrets.get(namespace, &r.name).is_none() {
        return Ok(secret_problem(None, r, field));
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(secret_problem(api.get_opt(&r.name).await?.as_ref(), r, field))
}

/// Delete the named objects of kind `K` (already gone is fine). Returns the names deleted.
pub async fn delete_all<K>(client: &Client, namespace: &str, names: &[String]) -> Result<Vec<String>>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut deleted = vec![];
    for name in names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => deleted.push(name.clone()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(deleted)
}

/// Server-side apply of a custom resource's status.
pub async fn patch_status<K, S>(client: &Client, obj: &K, status: &S) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + DeserializeOwned + Clone + Debug,
    S: Serialize,
{
    let api: Api<K> = Api::namespaced(client.clone(), obj.namespace().as_deref().unwrap_or_default());
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&obj.name_any(), &params(), &Patch::Apply(body)).await?;
    Ok(())
}
