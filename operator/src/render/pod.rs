//! Pod-level pieces every workload shares: security, resources, placement, probes.

use crate::crd::common::{Placement, WorkloadSpec};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath,
    ObjectFieldSelector, PodAffinityTerm, PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec,
    Probe, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext,
    TCPSocketAction, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// The unprivileged user our images run as.
pub const RUN_AS_USER: i64 = 10001;

/// Non-root, default seccomp profile; volumes writable by the pod's group.
pub fn pod_security(user: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(user),
        run_as_group: Some(user),
        fs_group: Some(user),
        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".into(), ..Default::default() }),
        ..Default::default()
    }
}

/// No privilege escalation, read-only root, every capability dropped except those asked for
/// (coturn needs NET_BIND_SERVICE for ports below 1024).
pub fn container_security(add: &[&str]) -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: (!add.is_empty()).then(|| add.iter().map(|c| c.to_string()).collect()),
        }),
        ..Default::default()
    }
}

/// The spec's resources, or `default` (cpu request, memory request and limit) when unset.
pub fn resources(spec: &WorkloadSpec, cpu: &str, memory: &str) -> ResourceRequirements {
    spec.resources.clone().unwrap_or_else(|| ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(cpu.into())),
            ("memory".to_string(), Quantity(memory.into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), Quantity(memory.into()))])),
        ..Default::default()
    })
}

pub fn node_selector(p: &Placement) -> Option<BTreeMap<String, String>> {
    (!p.node_selector.is_empty()).then(|| p.node_selector.clone())
}

pub fn tolerations(p: &Placement) -> Option<Vec<k8s_openapi::api::core::v1::Toleration>> {
    (!p.tolerations.is_empty()).then(|| p.tolerations.clone())
}

pub fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() }
}

pub fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn env_from_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: path.into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An HTTP probe on a named port.
pub fn http_probe(path: &str, port: &str, period: i32, failures: i32, initial_delay: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        initial_delay_seconds: Some(initial_delay),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// A TCP connect probe.
pub fn tcp_probe(port: i32, period: i32, failures: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction { port: IntOrString::Int(port), ..Default::default() }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Default::default()
    }
}

/// Annotations for Prometheus' annotation-based scraping (`ops/prometheus/prometheus-convene.yml`
/// keeps pods with `prometheus.io/scrape` and scrapes the port, path and scheme given).
pub const SCRAPE: &str = "prometheus.io/scrape";
pub const SCRAPE_PORT: &str = "prometheus.io/port";
pub const SCRAPE_PATH: &str = "prometheus.io/path";
pub const SCRAPE_SCHEME: &str = "prometheus.io/scheme";

/// Pure: mark the pods of `sts` for scraping on `port` (`https` when `tls`).
pub fn scrape(sts: &mut StatefulSet, port: i32, tls: bool) {
    let Some(spec) = sts.spec.as_mut() else { return };
    let a = spec
        .template
        .metadata
        .get_or_insert_with(Default::default)
        .annotations
        .get_or_insert_with(BTreeMap::new);
    a.insert(SCRAPE.into(), "true".into());
    a.insert(SCRAPE_PORT.into(), port.to_string());
    a.insert(SCRAPE_PATH.into(), convene_proto::paths::METRICS.into());
    a.insert(SCRAPE_SCHEME.into(), if tls { "https" } else { "http" }.into());
}

/// Required anti-affinity on the hostname: at most one of these pods per node. Host-network
/// media pods need it, since the port they announce is the node's.
pub fn one_per_node(selector: BTreeMap<String, String>) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector { match_labels: Some(selector), ..Default::default() }),
                topology_key: "kubernetes.io/hostname".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The StatefulSet running `owner`'s pods: selected and labelled by the owner, `replicas` of
/// them (started in parallel when `parallel`, since media pods do not depend on each other), the
/// pod spec placed as `placement` says, with the hardened pod security context and a scratch
/// `/tmp` (the root filesystem is read-only).
pub fn stateful_set(
    owner: &super::meta::Owner,
    replicas: i32,
    parallel: bool,
    placement: &Placement,
    user: i64,
    mut pod: PodSpec,
) -> StatefulSet {
    pod.node_selector = node_selector(placement);
    pod.tolerations = tolerations(placement);
    pod.priority_class_name = placement.priority_class_name.clone();
    pod.security_context = Some(pod_security(user));
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "tmp".into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    for c in &mut pod.containers {
        c.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
            name: "tmp".into(),
            mount_path: "/tmp".into(),
            ..Default::default()
        });
    }
    StatefulSet {
        metadata: owner.meta(owner.child_name()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(owner.child_name()),
            pod_management_policy: parallel.then(|| "Parallel".into()),
            selector: LabelSelector { match_labels: Some(owner.selector_labels()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(owner.labels()), ..Default::default() }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Where a bridge or recorder finds the CA that signaling's in-cluster certificate chains to.
const SIGNALING_CA_DIR: &str = "/var/run/secrets/convene/signaling-ca";

/// Pure: make a control client (bridge, recorder) dial signaling served over TLS in the cluster:
/// its `url_env` becomes `wss://`, and `ca_env` names the Secret's `ca.crt`, mounted read-only.
pub fn dial_signaling_over_tls(sts: &mut StatefulSet, tls_secret: &str, url_env: &str, ca_env: &str) {
    let Some(pod) = sts.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else { return };
    pod.volumes.get_or_insert_with(Vec::new).push(Volume {
        name: "signaling-ca".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(tls_secret.into()),
            items: Some(vec![KeyToPath {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    });
    let Some(c) = pod.containers.first_mut() else { return };
    c.volume_mounts.get_or_insert_with(Vec::new).push(VolumeMount {
        name: "signaling-ca".into(),
        mount_path: SIGNALING_CA_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    });
    let vars = c.env.get_or_insert_with(Vec::new);
    for v in vars.iter_mut().filter(|v| v.name == url_env) {
        if let Some(url) =
            v.value.as_mut().and_then(|u| u.strip_prefix("ws://").map(|rest| format!("wss://{rest}")))
        {
            v.value = Some(url);
        }
    }
    vars.push(env(ca_env, format!("{SIGNALING_CA_DIR}/ca.crt")));
}
