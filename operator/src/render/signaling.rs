//! A Shard's children: the signaling StatefulSet (one active focus), its Service, Ingress and
//! ConfigMap.

use super::meta::{Component, Owner};
use super::pod::{self, env, env_from_field, http_probe};
use super::{RenderConfig, SIGNALING_PORT, bridge_control_secret};
use crate::crd::Shard;
use crate::crd::shard::PRIVATE_RANGES;
use convene_proto::bridge::common_env;
use convene_proto::config::{
    AuthConfig, JwtConfig, RoutingConfig, SIGNALING_CONFIG_FILE, SignalingConfig, TlsConfig, TurnConfig,
    WebConfig,
};
use convene_proto::paths;
use convene_proto::routing::GROUP_MEMBERSHIP_FILE;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, KeyToPath, PodSpec, SecretVolumeSource,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
    IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// Where secrets are mounted in the signaling pod (the config names files below it).
pub const SECRETS_DIR: &str = "/var/run/secrets/convene";
const CONFIG_DIR: &str = "/etc/convene";
/// Where a group member's signaling finds the group's membership (a ConfigMap it watches).
pub const GROUP_DIR: &str = "/etc/convene-group";

/// What the shard's references resolved to, gathered before rendering.
#[derive(Clone, Debug, Default)]
pub struct ShardInputs {
    /// The Secret and key with the HS256 secret or RS/ES public keys (None: open shard).
    pub jwt_key: Option<(String, String)>,
    /// TURN relays: addresses, ports, Secret with the shared secret, credential lifetime.
    pub turn: Option<TurnInputs>,
    /// Whether a RecorderPool serves the shard.
    pub recording: bool,
}

#[derive(Clone, Debug, Default)]
pub struct TurnInputs {
    pub secret_name: String,
    pub uris: Vec<String>,
    pub credential_lifetime_seconds: i32,
}

/// Everything a Shard renders to.
#[derive(Clone, Debug)]
pub struct SignalingObjects {
    pub config_map: ConfigMap,
    pub stateful_set: StatefulSet,
    pub service: Service,
    pub ingress: Option<Ingress>,
}

pub fn owner(shard: &Shard) -> Owner {
    Owner::new(shard, &kube::ResourceExt::name_any(shard), Component::Signaling)
}

/// The URL users open.
pub fn url(shard: &Shard) -> String {
    let scheme = if shard.spec.ingress.tls_secret_name.is_some() { "https" } else { "http" };
    format!("{scheme}://{}/", shard.spec.domain)
}

pub fn config(shard: &Shard, inputs: &ShardInputs) -> SignalingConfig {
    let s = &shard.spec;
    SignalingConfig {
        domain: s.domain.clone(),
        public_url: url(shard),
        listen: format!("0.0.0.0:{SIGNALING_PORT}"),
        region: s.region.clone(),
        bridge_secret_file: Some(format!("{SECRETS_DIR}/bridge-control/secret")),
        auth: AuthConfig {
            jwt: s.auth.jwt.as_ref().map(|j| JwtConfig {
                algorithm: j.algorithm,
                issuer: j.issuer.clone(),
                audience: j.audience.clone(),
                key_file: format!("{SECRETS_DIR}/jwt/key"),
            }),
            allow_guests: Some(s.auth.allow_guests),
            allow_anonymous_room_creation: Some(s.auth.jwt.is_none() || s.auth.allow_anonymous_room_creation),
        },
        lobby_by_default: s.lobby.enabled_by_default,
        web: WebConfig {
            start_audio_muted: s.web.start_audio_muted,
            start_video_muted: s.web.start_video_muted,
            max_resolution: s.web.max_resolution,
            last_n: s.web.last_n,
            notes_url: s.web.notes_url.clone(),
        },
        turn: inputs.turn.as_ref().map(|t| TurnConfig {
            uris: t.uris.clone(),
            secret_file: format!("{SECRETS_DIR}/turn/secret"),
            credential_lifetime_seconds: t.credential_lifetime_seconds.into(),
        }),
        recording: inputs.recording,
        trusted_proxies: trusted_proxies(shard),
        tls: s.serving.tls_secret_name.as_ref().map(|_| TlsConfig {
            cert_file: format!("{SECRETS_DIR}/tls/tls.crt"),
            key_file: format!("{SECRETS_DIR}/tls/tls.key"),
        }),
        routing: s.routing.as_ref().map(|r| RoutingConfig {
            group: r.group.clone(),
            shard: kube::ResourceExt::name_any(shard),
            members_file: format!("{GROUP_DIR}/{GROUP_MEMBERSHIP_FILE}"),
            secret_file: format!("{SECRETS_DIR}/group/secret"),
            region_header: r.region_header.clone(),
            region_claim: r.region_claim.clone(),
        }),
        ..Default::default()
    }
}

/// Pure: the proxies signaling believes for clients' addresses: as given, else the private
/// ranges behind an Ingress (its controller is the only peer then), else none.
pub fn trusted_proxies(shard: &Shard) -> Vec<String> {
    match &shard.spec.serving.trusted_proxies {
        Some(list) => list.clone(),
        None if shard.spec.ingress.enabled => PRIVATE_RANGES.iter().map(|r| r.to_string()).collect(),
        None => vec![],
    }
}

/// Pure: the scheme signaling serves in the cluster (`https` with `serving.tlsSecretName`).
pub fn in_cluster_tls(shard: &Shard) -> bool {
    shard.spec.serving.tls_secret_name.is_some()
}

pub fn render(shard: &Shard, inputs: &ShardInputs, cfg: &RenderConfig) -> SignalingObjects {
    let o = owner(shard);
    let name = o.child_name();
    let yaml = serde_saphyr::to_string(&config(shard, inputs)).unwrap_or_default();
    SignalingObjects {
        config_map: ConfigMap {
            metadata: o.meta(&name),
            data: Some(BTreeMap::from([(SIGNALING_CONFIG_FILE.to_string(), yaml)])),
            ..Default::default()
        },
        stateful_set: stateful_set(shard, &o, inputs, cfg),
        service: service(o.meta(&name), o.selector_labels()),
        // A group's members are reached through the group's Ingress (super::group).
        ingress: (shard.spec.ingress.enabled && shard.spec.routing.is_none()).then(|| ingress(shard, &o)),
    }
}

/// A Service on signaling's HTTP port for the pods `selector` picks (a shard's, a group's).
pub fn service(metadata: ObjectMeta, selector: BTreeMap<String, String>) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: SIGNALING_PORT,
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: &str, key: &str, path: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            items: Some(vec![KeyToPath { key: key.into(), path: path.into(), ..Default::default() }]),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.into(), mount_path: path.into(), read_only: Some(true), ..Default::default() }
}

fn stateful_set(shard: &Shard, o: &Owner, inputs: &ShardInputs, cfg: &RenderConfig) -> StatefulSet {
    let spec = &shard.spec.signaling;
    let name = o.child_name();
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource { name: name.clone(), ..Default::default() }),
            ..Default::default()
        },
        secret_volume("bridge-control", &bridge_control_secret(&o.name), "secret", "secret"),
    ];
    let mut mounts =
        vec![mount("config", CONFIG_DIR), mount("bridge-control", &format!("{SECRETS_DIR}/bridge-control"))];
    if let Some((secret, key)) = &inputs.jwt_key {
        volumes.push(secret_volume("jwt", secret, key, "key"));
        mounts.push(mount("jwt", &format!("{SECRETS_DIR}/jwt")));
    }
    if let Some(turn) = &inputs.turn {
        volumes.push(secret_volume("turn", &turn.secret_name, "secret", "secret"));
        mounts.push(mount("turn", &format!("{SECRETS_DIR}/turn")));
    }
    if let Some(tls) = &shard.spec.serving.tls_secret_name {
        let mut v = secret_volume("tls", tls, "tls.crt", "tls.crt");
        if let Some(items) = v.secret.as_mut().and_then(|s| s.items.as_mut()) {
            items.push(KeyToPath { key: "tls.key".into(), path: "tls.key".into(), ..Default::default() });
        }
        volumes.push(v);
        mounts.push(mount("tls", &format!("{SECRETS_DIR}/tls")));
    }
    if let Some(group) = super::group::group_of(shard) {
        volumes.push(Volume {
            name: "group".into(),
            config_map: Some(ConfigMapVolumeSource { name: super::group::name(group), ..Default::default() }),
            ..Default::default()
        });
        mounts.push(mount("group", GROUP_DIR));
        volumes.push(secret_volume("group-secret", &super::group::secret_name(group), "secret", "secret"));
        mounts.push(mount("group-secret", &format!("{SECRETS_DIR}/group")));
    }
    let probe = |path, period, failures, delay| {
        let mut p = http_probe(path, "http", period, failures, delay);
        if in_cluster_tls(shard)
            && let Some(get) = p.http_get.as_mut()
        {
            get.scheme = Some("HTTPS".into());
        }
        p
    };
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        containers: vec![Container {
            name: "signaling".into(),
            image: Some(spec.image.clone().unwrap_or_else(|| cfg.media_image.clone())),
            command: Some(vec!["/usr/local/bin/convene-signaling".into()]),
            args: Some(vec!["--config".into(), format!("{CONFIG_DIR}/{SIGNALING_CONFIG_FILE}")]),
            env: Some(vec![
                env_from_field("POD_NAME", "metadata.name"),
                env(common_env::LOG_FORMAT, "json"),
                env(common_env::LOG_FILTER, spec.log_level.clone()),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: SIGNALING_PORT,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            readiness_probe: Some(probe(paths::READY, 5, 2, 1)),
            liveness_probe: Some(probe(paths::HEALTH, 10, 3, 10)),
            resources: Some(pod::resources(spec, "250m", "512Mi")),
            security_context: Some(pod::container_security(&[])),
            volume_mounts: Some(mounts),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    };
    // One active focus per shard: conference state lives in this process.
    let mut sts = pod::stateful_set(o, 1, false, &spec.placement, pod::RUN_AS_USER, pod);
    pod::scrape(&mut sts, SIGNALING_PORT, in_cluster_tls(shard));
    if let (Some(group), Some(spec)) = (super::group::group_of(shard), sts.spec.as_mut()) {
        // The group Service selects every member's signaling by this label.
        let meta = spec.template.metadata.get_or_insert_with(Default::default);
        meta.labels.get_or_insert_with(Default::default).insert(super::group::GROUP.into(), group.into());
    }
    sts
}

fn ingress(shard: &Shard, o: &Owner) -> Ingress {
    let ing = &shard.spec.ingress;
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: o.child_name(),
            port: Some(ServiceBackendPort { name: Some("http".into()), ..Default::default() }),
        }),
        ..Default::default()
    };
    let path = |p: &str, kind: &str| HTTPIngressPath {
        path: Some(p.into()),
        path_type: kind.into(),
        backend: backend.clone(),
    };
    let mut meta = o.meta(&o.name);
    if !ing.annotations.is_empty() {
        meta.annotations = Some(ing.annotations.clone());
    }
    Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: ing.class_name.clone(),
            tls: ing.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![shard.spec.domain.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(shard.spec.domain.clone()),
                http: Some(HTTPIngressRuleValue {
                    // `/ws` is listed on its own so controllers that route WebSockets by path
                    // (and admins reading the Ingress) see it; `/` serves the app and rooms.
                    paths: vec![path(paths::SIGNALING_CLIENT_WS, "Exact"), path("/", "Prefix")],
                }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
