//! One read of everything the doctor and `status` look at, for one Shard. Gathering is the
//! only part that talks to the API server; a failed read is kept as a fact (`Lookup::Error`),
//! so the checks can say what they could not see instead of stopping.
use crate::cert::{self, CertInfo};
use crate::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use crate::render::{bridge_control_secret, turn};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;

/// An object that is referenced (or expected), as found.
#[derive(Clone, Debug)]
pub enum Lookup<T> {
    /// Nothing refers to one.
    NotReferenced,
    Missing(String),
    Found(T),
    /// The read failed (no rights, API error): the message.
    Error(String),
}

impl<T> Lookup<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// What the doctor needs of a Secret: its keys, and the certificate when it has `tls.crt`.
#[derive(Clone, Debug, Default)]
pub struct SecretFacts {
    pub keys: Vec<String>,
    pub cert: Option<Result<CertInfo, String>>,
}

impl SecretFacts {
    pub fn from_secret(s: &Secret) -> Self {
        let data = s.data.clone().unwrap_or_default();
        let cert = data.get("tls.crt").map(|c| cert::parse(&c.0));
        Self { keys: data.keys().cloned().collect(), cert }
    }
}

#[derive(Clone, Debug)]
pub struct Facts {
    pub namespace: String,
    pub shard: Shard,
    /// The BridgePools whose shardRef names the shard.
    pub pools: Vec<BridgePool>,
    pub turn: Lookup<TurnPool>,
    pub recorder: Lookup<RecorderPool>,
    /// Secrets the shard and its TURN pool refer to, by name.
    pub secrets: BTreeMap<String, Lookup<SecretFacts>>,
    /// The Ingress the operator renders (named like the shard) when the shard asks for one.
    pub ingress: Lookup<Ingress>,
    pub signaling: Lookup<StatefulSet>,
    /// Node name → its addresses (type, address).
    pub nodes: BTreeMap<String, Vec<(String, String)>>,
    /// Recent Events about the shard and its pools, oldest first: (time, type, object, reason,
    /// message).
    pub events: Vec<(String, String, String, String, String)>,
}

fn lookup<T>(r: Result<Option<T>, kube::Error>, name: &str) -> Lookup<T> {
    match r {
        Ok(Some(t)) => Lookup::Found(t),
        Ok(None) => Lookup::Missing(name.to_string()),
        Err(e) => Lookup::Error(e.to_string()),
    }
}

/// Read the shard `name` in `ns` and what it refers to. Fails only when the shard itself
/// cannot be read.
pub async fn gather(client: &Client, ns: &str, name: &str) -> anyhow::Result<Facts> {
    let shards: Api<Shard> = Api::namespaced(client.clone(), ns);
    let shard =
        shards.get_opt(name).await?.ok_or_else(|| anyhow::anyhow!("no Shard {name} in namespace {ns}"))?;
    let pools: Vec<BridgePool> = Api::<BridgePool>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.spec.shard_ref.name == name)
        .collect();
    let turn = match &shard.spec.turn_pool_ref {
        None => Lookup::NotReferenced,
        Some(r) => lookup(Api::<TurnPool>::namespaced(client.clone(), ns).get_opt(&r.name).await, &r.name),
    };
    let recorder = match &shard.spec.recorder_pool_ref {
        None => Lookup::NotReferenced,
        Some(r) => {
            lookup(Api::<RecorderPool>::namespaced(client.clone(), ns).get_opt(&r.name).await, &r.name)
        }
    };
    let mut secret_names = crate::controller::shard_secret_refs(&shard);
    secret_names.push(bridge_control_secret(name));
    if let Some(t) = turn.found() {
        secret_names.push(turn::secret_name(&t.name_any()));
        secret_names.extend(t.spec.tls_secret_name.clone());
    }
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut secrets = BTreeMap::new();
    for s in secret_names {
        let found = lookup(secrets_api.get_opt(&s).await, &s);
        let facts = match found {
            Lookup::Found(sec) => Lookup::Found(SecretFacts::from_secret(&sec)),
            Lookup::Missing(n) => Lookup::Missing(n),
            Lookup::Error(e) => Lookup::Error(e),
            Lookup::NotReferenced => Lookup::NotReferenced,
        };
        secrets.insert(s, facts);
    }
    let ingress = if shard.spec.ingress.enabled {
        lookup(Api::<Ingress>::namespaced(client.clone(), ns).get_opt(name).await, name)
    } else {
        Lookup::NotReferenced
    };
    let sts = format!("{name}-signaling");
    let signaling = lookup(Api::<StatefulSet>::namespaced(client.clone(), ns).get_opt(&sts).await, &sts);
    let nodes = match Api::<Node>::all(client.clone()).list(&ListParams::default()).await {
        Ok(l) => l
            .items
            .iter()
            .map(|n| {
                let addrs = n.status.as_ref().and_then(|s| s.addresses.clone()).unwrap_or_default();
                (n.name_any(), addrs.into_iter().map(|a| (a.type_, a.address)).collect())
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    let mut about: Vec<String> = vec![name.to_string()];
    about.extend(pools.iter().map(|p| p.name_any()));
    let events = recent_events(client, ns, &about).await;
    Ok(Facts {
        namespace: ns.into(),
        shard,
        pools,
        turn,
        recorder,
        secrets,
        ingress,
        signaling,
        nodes,
        events,
    })
}

/// Events about `names` in `ns`, oldest first, at most the last 10.
async fn recent_events(
    client: &Client,
    ns: &str,
    names: &[String],
) -> Vec<(String, String, String, String, String)> {
    let Ok(list) = Api::<Event>::namespaced(client.clone(), ns).list(&ListParams::default()).await else {
        return vec![];
    };
    let mut out: Vec<_> = list
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_ref().is_some_and(|n| names.contains(n)))
        .map(|e| {
            let time = e
                .last_timestamp
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.map(|t| t.0.to_string()))
                .unwrap_or_default();
            let object = format!(
                "{}/{}",
                e.involved_object.kind.unwrap_or_default(),
                e.involved_object.name.unwrap_or_default()
            );
            (
                time,
                e.type_.unwrap_or_default(),
                object,
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    let skip = out.len().saturating_sub(10);
    out.drain(..skip);
    out
}
