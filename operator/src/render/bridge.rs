//! A BridgePool's children: host-network StatefulSet (one bridge per node), headless Service,
//! PodDisruptionBudget, ServiceAccount with read access to Nodes, NetworkPolicy.

use super::meta::{Component, Owner};
use super::pod::{self, env, env_from_field, env_from_secret, http_probe};
use super::{RenderConfig, SIGNALING_PORT, bridge_control_secret, signaling_host};
use crate::crd::BridgePool;
use convene_proto::bridge::{common_env, env as benv};
use convene_proto::paths;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, Service, ServiceAccount, ServicePort, ServiceSpec,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The default name of the ClusterRole every bridge ServiceAccount is bound to: read Nodes, to
/// learn the node's address. RBAC cannot narrow this to "its own" node, so it is read-only and
/// nothing more. The Helm chart installs it (`<release>-bridge-node-reader`) and tells the
/// operator its name; the operator only binds it, so `helm uninstall` removes it.
pub const NODE_READER_ROLE: &str = "convene-bridge-node-reader";

/// Everything a BridgePool renders to.
#[derive(Clone, Debug)]
pub struct BridgeObjects {
    pub stateful_set: StatefulSet,
    pub service: Service,
    pub pdb: PodDisruptionBudget,
    pub service_account: ServiceAccount,
    pub network_policy: NetworkPolicy,
    /// Cluster-scoped: cannot be owned by the namespaced pool, so the pool's finalizer removes it.
    pub cluster_role_binding: ClusterRoleBinding,
}

pub fn owner(pool: &BridgePool) -> Owner {
    Owner::new(pool, &pool.spec.shard_ref.name, Component::Bridge)
}

/// Name of the cluster-scoped binding of one pool.
pub fn cluster_role_binding_name(namespace: &str, pool: &str) -> String {
    format!("convene-bridge-{namespace}-{pool}")
}

/// The shared node-reader ClusterRole (what the chart installs; for installs without Helm).
pub fn node_reader_role() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(NODE_READER_ROLE.into()),
            labels: Some(BTreeMap::from([
                (super::meta::MANAGED_BY.into(), super::meta::MANAGED_BY_VALUE.into()),
                (super::meta::NAME.into(), "convene".into()),
            ])),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["nodes".into()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
        ..Default::default()
    }
}

/// Render a pool with `replicas` bridges.
pub fn render(pool: &BridgePool, replicas: i32, cfg: &RenderConfig) -> BridgeObjects {
    let o = owner(pool);
    let name = o.child_name();
    let selector = LabelSelector { match_labels: Some(o.selector_labels()), ..Default::default() };
    BridgeObjects {
        stateful_set: stateful_set(pool, &o, replicas, cfg),
        service: Service {
            metadata: o.meta(&name),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                // Draining bridges stay scrapeable: their load decides when they may go.
                publish_not_ready_addresses: Some(true),
                selector: Some(o.selector_labels()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: pool.spec.ports.http,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        },
        pdb: PodDisruptionBudget {
            metadata: o.meta(&name),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(selector.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        service_account: ServiceAccount {
            metadata: o.meta(&name),
            automount_service_account_token: Some(true),
            ..Default::default()
        },
        network_policy: network_policy(pool, &o, cfg),
        cluster_role_binding: ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some(cluster_role_binding_name(&o.namespace, &o.name)),
                labels: Some(o.labels()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: cfg.node_reader_role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: name.clone(),
                namespace: Some(o.namespace.clone()),
                ..Default::default()
            }]),
        },
    }
}

fn stateful_set(pool: &BridgePool, o: &Owner, replicas: i32, cfg: &RenderConfig) -> StatefulSet {
    let spec = &pool.spec;
    let drain = spec.autoscaling.as_ref().map_or(600, |a| a.drain_timeout_seconds);
    let port = |name: &str, port: i32, protocol: &str| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        // With host networking the container port is the node's port; declaring it as a host
        // port lets the scheduler refuse a node where it is taken.
        host_port: Some(port),
        protocol: Some(protocol.into()),
        ..Default::default()
    };
    let mut vars = vec![
        env(benv::UDP_PORT, spec.ports.media.to_string()),
        env(benv::TCP_PORT, spec.ports.tcp_fallback.to_string()),
        env(benv::HTTP_PORT, spec.ports.http.to_string()),
        env(benv::ADDRESS_SOURCE, spec.public_address.source.flag()),
        env_from_field(benv::NODE_NAME, "spec.nodeName"),
        env_from_field(benv::ID, "metadata.name"),
        env(
            benv::SIGNALING_URL,
            format!(
                "ws://{}:{SIGNALING_PORT}{}",
                signaling_host(&o.shard, &o.namespace),
                paths::SIGNALING_BRIDGE_WS
            ),
        ),
        env_from_secret(benv::SECRET, &bridge_control_secret(&o.shard), "secret"),
        env(benv::MAX_ENDPOINTS, spec.capacity.endpoints.to_string()),
        env(benv::MAX_BITRATE_MBPS, spec.capacity.mbps.to_string()),
        env(common_env::LOG_FORMAT, "json"),
        env(common_env::LOG_FILTER, spec.bridge.log_level.clone()),
    ];
    if !spec.public_address.static_addresses.is_empty() {
        vars.push(env(benv::STATIC_ADDRESSES, spec.public_address.static_addresses.join(",")));
    }
    if let Some(stun) = &spec.public_address.stun_server {
        vars.push(env(benv::STUN_SERVER, stun.clone()));
    }
    if let Some(region) = &spec.region {
        vars.push(env(benv::REGION, region.clone()));
    }
    let container = Container {
        name: "bridge".into(),
        image: Some(spec.bridge.image.clone().unwrap_or_else(|| cfg.media_image.clone())),
        command: Some(vec!["/usr/local/bin/convene-bridge".into()]),
        env: Some(vars),
        ports: Some(vec![
            port("media", spec.ports.media, "UDP"),
            port("tcp-fallback", spec.ports.tcp_fallback, "TCP"),
            port("http", spec.ports.http, "TCP"),
        ]),
        // Readiness turns false while draining (no new conferences); liveness only asks whether
        // the process is stuck, so a draining bridge is never restarted.
        readiness_probe: Some(http_probe(paths::READY, "http", 5, 1, 2)),
        liveness_probe: Some(http_probe(paths::HEALTH, "http", 10, 3, 10)),
        resources: Some(pod::resources(&spec.bridge, "1", "1Gi")),
        security_context: Some(pod::container_security(&[])),
        ..Default::default()
    };
    let pod = PodSpec {
        service_account_name: Some(o.child_name()),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        // Enough time to finish draining, never hours.
        termination_grace_period_seconds: Some(i64::from(drain) + 30),
        affinity: Some(pod::one_per_node(o.selector_labels())),
        containers: vec![container],
        ..Default::default()
    };
    let mut sts = pod::stateful_set(o, replicas, true, &spec.bridge.placement, pod::RUN_AS_USER, pod);
    pod::scrape(&mut sts, spec.ports.http, false);
    if let Some(s) = sts.spec.as_mut() {
        // The operator replaces bridges itself, draining each first: a rolling update by the
        // StatefulSet controller would delete pods with calls on them.
        s.update_strategy =
            Some(StatefulSetUpdateStrategy { type_: Some("OnDelete".into()), rolling_update: None });
    }
    sts
}

/// Only the shard's signaling, the operator and Prometheus' namespaces reach the bridge's HTTP
/// (control and metrics) port; media ports are open to the world. Note: most CNIs do not enforce policies on
/// host-network pods; this documents and, where enforced, guarantees the intent.
fn network_policy(pool: &BridgePool, o: &Owner, cfg: &RenderConfig) -> NetworkPolicy {
    let spec = &pool.spec;
    let tcp = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let signaling = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([
                (super::meta::NAME.to_string(), "convene".to_string()),
                (super::meta::COMPONENT.to_string(), "signaling".to_string()),
                (super::meta::SHARD.to_string(), o.shard.clone()),
            ])),
            ..Default::default()
        }),
        ..Default::default()
    };
    let operator = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                cfg.operator_namespace.clone(),
            )])),
            ..Default::default()
        }),
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                super::meta::NAME.to_string(),
                "convene-operator".to_string(),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Prometheus, where the operator was told its namespaces (`--metrics-namespaces`).
    let prometheus = cfg.metrics_namespaces.iter().map(|ns| NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.clone())])),
            ..Default::default()
        }),
        ..Default::default()
    });
    let anywhere = NetworkPolicyPeer {
        ip_block: Some(IPBlock { cidr: "0.0.0.0/0".into(), ..Default::default() }),
        ..Default::default()
    };
    NetworkPolicy {
        metadata: o.meta(o.child_name()),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(o.selector_labels()),
                ..Default::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    from: Some([signaling, operator].into_iter().chain(prometheus).collect()),
                    ports: Some(vec![tcp(spec.ports.http)]),
                },
                NetworkPolicyIngressRule {
                    from: Some(vec![anywhere]),
                    ports: Some(vec![
                        NetworkPolicyPort {
                            port: Some(IntOrString::Int(spec.ports.media)),
                            protocol: Some("UDP".into()),
                            ..Default::default()
                        },
                        tcp(spec.ports.tcp_fallback),
                    ]),
                },
            ]),
            ..Default::default()
        }),
    }
}

/// Pure: point the bridges at signaling served over TLS in the cluster (`Shard`
/// `spec.serving.tlsSecretName`): dial `wss://` and verify against the Secret's `ca.crt`.
pub fn dial_signaling_over_tls(sts: &mut StatefulSet, tls_secret: &str) {
    pod::dial_signaling_over_tls(sts, tls_secret, benv::SIGNALING_URL, benv::CONTROL_CA_FILE);
}
