//! One read of everything the doctor and `status` look at, for one Shard. Gathering is the
//! only part that talks to the API server; a failed read is kept as a fact (`Lookup::Error`),
//! so the checks can say what they could not see instead of stopping.
use crate::cert::{self, CertInfo};
use crate::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use crate::doctor::probe::{self, Allocation};
use crate::render::{bridge_control_secret, turn};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Node, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

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
    /// What the reachability probes found (empty until [`probe`] runs: `status` does not).
    pub probes: Probes,
}

#[derive(Clone, Debug, Default)]
pub struct Probes {
    /// The domain's addresses through the system resolver, or why not (None: not probed).
    pub dns: Option<Result<Vec<IpAddr>, String>>,
    pub bridges: Vec<BridgeProbe>,
    pub relays: Vec<RelayProbe>,
}

/// A bridge's advertised address: its media port (STUN Binding) and ICE-TCP port (connect).
#[derive(Clone, Debug)]
pub struct BridgeProbe {
    pub bridge: String,
    pub udp: SocketAddr,
    /// The address the bridge saw the probe from.
    pub binding: Result<SocketAddr, String>,
    pub tcp: SocketAddr,
    pub tcp_connect: Result<(), String>,
}

/// A TURN relay's listening port: a STUN Binding, and an Allocate with minted credentials.
#[derive(Clone, Debug)]
pub struct RelayProbe {
    pub address: SocketAddr,
    pub binding: Result<SocketAddr, String>,
    /// None: the pool's shared secret could not be read, so nothing to mint from.
    pub allocation: Option<Allocation>,
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
        probes: Probes::default(),
    })
}

/// Run the reachability probes of what `f` found, concurrently, each bounded by
/// `probe::TIMEOUT`. Reads the TurnPool's shared secret to mint a TURN credential (the doctor
/// runs with the admin's rights; the value is not kept).
pub async fn probe(client: &Client, f: &Facts) -> Probes {
    let domain = f.shard.spec.domain.clone();
    let dns = async move { Some(probe::resolve(&domain).await) };
    let mut bridges = vec![];
    for p in &f.pools {
        for b in p.status.iter().flat_map(|s| &s.bridges) {
            let Some(ip) = b.address.as_deref().and_then(|a| a.parse::<IpAddr>().ok()) else { continue };
            let (udp, tcp) = (port(ip, p.spec.ports.media), port(ip, p.spec.ports.tcp_fallback));
            let bridge = b.name.clone();
            bridges.push(async move {
                let binding = blocking(move || probe::stun_binding(udp));
                let (binding, tcp_connect) = futures::join!(binding, probe::tcp_connect(tcp));
                BridgeProbe { bridge, udp, binding, tcp, tcp_connect }
            });
        }
    }
    let mut relays = vec![];
    if let Some(t) = f.turn.found() {
        let secret = turn_secret(client, &f.namespace, &turn::secret_name(&t.name_any())).await;
        let expiry = jiff::Timestamp::now().as_second() + 300;
        let username = convene_proto::turn::username(expiry, "doctor");
        let password = secret.map(|s| convene_proto::turn::credential(&s, &username));
        for a in t.status.iter().flat_map(|s| &s.addresses) {
            let Ok(ip) = a.parse::<IpAddr>() else { continue };
            let address = port(ip, t.spec.ports.listening);
            let (username, password) = (username.clone(), password.clone());
            relays.push(async move {
                let binding = blocking(move || probe::stun_binding(address)).await;
                let allocation = match password {
                    None => None,
                    Some(p) => Some(
                        tokio::task::spawn_blocking(move || probe::turn_allocate(address, &username, &p))
                            .await
                            .unwrap_or_else(|e| Allocation::Error(e.to_string())),
                    ),
                };
                RelayProbe { address, binding, allocation }
            });
        }
    }
    let (dns, bridges, relays) =
        futures::join!(dns, futures::future::join_all(bridges), futures::future::join_all(relays));
    Probes { dns, bridges, relays }
}

fn port(ip: IpAddr, port: i32) -> SocketAddr {
    SocketAddr::new(ip, u16::try_from(port).unwrap_or_default())
}

/// A blocking probe on tokio's blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| Err(e.to_string()))
}

/// The value of key `secret` of the TurnPool's shared-secret Secret.
async fn turn_secret(client: &Client, ns: &str, name: &str) -> Option<String> {
    let s = Api::<Secret>::namespaced(client.clone(), ns).get_opt(name).await.ok()??;
    let v = s.data?.get(crate::render::secrets::KEY)?.0.clone();
    String::from_utf8(v).ok()
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
