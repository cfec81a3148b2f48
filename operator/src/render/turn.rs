//! A TurnPool's children: coturn StatefulSet on host networking (one relay per node) and its
//! rendered `turnserver.conf`. The shared secret is a Secret of its own (see `secrets`).

use super::RenderConfig;
use super::meta::{Component, Owner};
use super::pod::{self, env_from_secret, tcp_probe};
use crate::crd::TurnPool;
use crate::crd::turnpool::DEFAULT_DENIED_PEER_RANGES;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, PodSpec, SecretVolumeSource, Volume,
    VolumeMount,
};
use std::collections::BTreeMap;

/// coturn's image runs as `nobody`.
const COTURN_USER: i64 = 65534;

pub fn owner(pool: &TurnPool) -> Owner {
    Owner::new(pool, &kube::ResourceExt::name_any(pool), Component::Turn)
}

/// Name of the Secret with the TURN shared secret (key `secret`).
pub fn secret_name(pool: &str) -> String {
    format!("{pool}-turn")
}

/// The URIs clients get for one relay address.
pub fn uris(pool: &TurnPool, address: &str) -> Vec<String> {
    let p = &pool.spec.ports;
    let mut uris = vec![
        format!("turn:{address}:{}?transport=udp", p.listening),
        format!("turn:{address}:{}?transport=tcp", p.listening),
    ];
    if let Some(tls) = p.tls {
        uris.push(format!("turns:{address}:{tls}?transport=tcp"));
    }
    if p.tls443 {
        uris.push(format!("turns:{address}:443?transport=tcp"));
    }
    uris
}

/// `turnserver.conf`. `bridge_addresses` are allowed through the denied ranges: without them a
/// relayed client could not reach a bridge on a private node address.
pub fn config(pool: &TurnPool, bridge_addresses: &[String]) -> String {
    let s = &pool.spec;
    let mut lines = vec![
        "# Rendered by convene-operator; edit the TurnPool instead.".to_string(),
        format!("listening-port={}", s.ports.listening),
        format!("realm={}", s.realm),
        // Ephemeral REST-style credentials (username `expiry:user`, HMAC-SHA1 password); the
        // shared secret is passed on the command line from a Secret, never stored here.
        "use-auth-secret".into(),
        "fingerprint".into(),
        format!("min-port={}", s.relay_ports.min),
        format!("max-port={}", s.relay_ports.max),
        "no-cli".into(),
        "no-multicast-peers".into(),
        "no-software-attribute".into(),
        "no-tlsv1".into(),
        "no-tlsv1_1".into(),
        "stale-nonce=600".into(),
        "log-file=stdout".into(),
        "simple-log".into(),
        "pidfile=/tmp/turnserver.pid".into(),
    ];
    if s.tls_secret_name.is_some() {
        lines.push("cert=/etc/coturn/tls/tls.crt".into());
        lines.push("pkey=/etc/coturn/tls/tls.key".into());
        if let Some(tls) = s.ports.tls {
            lines.push(format!("tls-listening-port={tls}"));
        }
        if s.ports.tls443 {
            lines.push("alt-tls-listening-port=443".into());
        }
    } else {
        lines.push("no-tls".into());
        lines.push("no-dtls".into());
    }
    // The private ranges always stay denied; a given list adds to them.
    let mut denied: Vec<String> = DEFAULT_DENIED_PEER_RANGES.iter().map(|r| r.to_string()).collect();
    for r in s.denied_peer_ranges.iter().flatten().map(|r| coturn_range(r)) {
        if !denied.contains(&r) {
            denied.push(r);
        }
    }
    lines.extend(denied.iter().map(|r| format!("denied-peer-ip={r}")));
    let mut allowed: Vec<String> =
        bridge_addresses.iter().chain(&s.allowed_peer_ranges).map(|r| coturn_range(r)).collect();
    allowed.sort();
    allowed.dedup();
    lines.extend(allowed.iter().map(|r| format!("allowed-peer-ip={r}")));
    lines.join("\n") + "\n"
}

/// Pure: an address, CIDR or range in coturn's syntax (`a.b.c.d` or `a.b.c.d-e.f.g.h`):
/// coturn refuses CIDR notation ("Wrong address format") and would start without the rule.
pub fn coturn_range(entry: &str) -> String {
    use std::net::IpAddr;
    let Some((ip, bits)) = entry.split_once('/') else { return entry.to_string() };
    let (Ok(ip), Ok(bits)) = (ip.parse::<IpAddr>(), bits.parse::<u32>()) else { return entry.to_string() };
    match ip {
        IpAddr::V4(v4) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            let first = u32::from(v4) & mask;
            let last = first | !mask;
            format!("{}-{}", std::net::Ipv4Addr::from(first), std::net::Ipv4Addr::from(last))
        }
        IpAddr::V6(v6) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            let first = u128::from(v6) & mask;
            let last = first | !mask;
            format!("{}-{}", std::net::Ipv6Addr::from(first), std::net::Ipv6Addr::from(last))
        }
        _ => entry.to_string(),
    }
}

/// Everything a TurnPool renders to (besides its Secret).
#[derive(Clone, Debug)]
pub struct TurnObjects {
    pub config_map: ConfigMap,
    pub stateful_set: StatefulSet,
}

pub fn render(pool: &TurnPool, bridge_addresses: &[String], cfg: &RenderConfig) -> TurnObjects {
    let o = owner(pool);
    let name = o.child_name();
    let s = &pool.spec;
    let mut ports = vec![("turn-udp", s.ports.listening, "UDP"), ("turn-tcp", s.ports.listening, "TCP")];
    if s.tls_secret_name.is_some() {
        if let Some(tls) = s.ports.tls {
            ports.push(("turns", tls, "TCP"));
        }
        if s.ports.tls443 {
            ports.push(("turns-443", 443, "TCP"));
        }
    }
    let low_port = ports.iter().any(|(_, p, _)| *p < 1024);
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource { name: name.clone(), ..Default::default() }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "config".into(),
        mount_path: "/etc/coturn".into(),
        read_only: Some(true),
        ..Default::default()
    }];
    if let Some(tls) = &s.tls_secret_name {
        volumes.push(Volume {
            name: "tls".into(),
            secret: Some(SecretVolumeSource { secret_name: Some(tls.clone()), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: "tls".into(),
            mount_path: "/etc/coturn/tls".into(),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let container = Container {
        name: "coturn".into(),
        image: Some(s.turn.image.clone().unwrap_or_else(|| cfg.turn_image.clone())),
        args: Some(vec![
            "-c".into(),
            "/etc/coturn/turnserver.conf".into(),
            // Kubernetes expands $(VAR) from the container's environment.
            "--static-auth-secret=$(TURN_SECRET)".into(),
        ]),
        env: Some(vec![env_from_secret("TURN_SECRET", &secret_name(&o.name), "secret")]),
        ports: Some(
            ports
                .iter()
                .map(|(n, p, proto)| ContainerPort {
                    name: Some((*n).into()),
                    container_port: *p,
                    host_port: Some(*p),
                    protocol: Some((*proto).into()),
                    ..Default::default()
                })
                .collect(),
        ),
        readiness_probe: Some(tcp_probe(s.ports.listening, 5, 2)),
        liveness_probe: Some(tcp_probe(s.ports.listening, 10, 3)),
        resources: Some(pod::resources(&s.turn, "500m", "512Mi")),
        security_context: Some(pod::container_security(if low_port { &["NET_BIND_SERVICE"] } else { &[] })),
        volume_mounts: Some(mounts),
        ..Default::default()
    };
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        host_network: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".into()),
        affinity: Some(pod::one_per_node(o.selector_labels())),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    TurnObjects {
        config_map: ConfigMap {
            metadata: o.meta(&name),
            data: Some(BTreeMap::from([("turnserver.conf".to_string(), config(pool, bridge_addresses))])),
            ..Default::default()
        },
        stateful_set: pod::stateful_set(&o, s.replicas, true, &s.turn.placement, COTURN_USER, pod),
    }
}
