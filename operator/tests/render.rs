//! Rendering of every child object from the shipped examples and hand-made specs, asserting
//! the fields that make a shard work (or break) in production.

use convene_operator::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use convene_operator::render::{self, RenderConfig, bridge, recorder, secrets, signaling, turn};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every document of an example file, with metadata.namespace set as `kubectl apply -n` would.
fn docs(file: &str) -> Vec<Value> {
    let path = format!("{}/../examples/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("example exists");
    let mut out: Vec<Value> = serde_saphyr::from_multiple(&text).expect("example is valid YAML");
    for d in &mut out {
        d["metadata"]["namespace"] = "ns".into();
        d["metadata"]["uid"] = "0000-uid".into();
    }
    out
}

fn one<K: DeserializeOwned>(file: &str, kind: &str, name: &str) -> K {
    let doc = docs(file)
        .into_iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{file} has a {kind} {name}"));
    serde_json::from_value(doc).expect("example matches the CRD types")
}

fn pod(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> &PodSpec {
    sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn env<'a>(c: &'a Container, name: &str) -> Option<&'a k8s_openapi::api::core::v1::EnvVar> {
    c.env.as_ref()?.iter().find(|e| e.name == name)
}

fn assert_hardened(c: &Container) {
    let sc = c.security_context.as_ref().expect("container security context");
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
    assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
    assert_eq!(sc.capabilities.as_ref().unwrap().drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert!(c.resources.as_ref().and_then(|r| r.requests.as_ref()).is_some(), "{} has requests", c.name);
}

#[test]
fn every_example_document_parses_into_its_type() {
    for file in ["trial.yaml", "production.yaml", "jwt-lobby.yaml"] {
        for d in docs(file) {
            let kind = d["kind"].as_str().unwrap().to_string();
            let r = match kind.as_str() {
                "Shard" => serde_json::from_value::<Shard>(d).map(|_| ()),
                "BridgePool" => serde_json::from_value::<BridgePool>(d).map(|_| ()),
                "TurnPool" => serde_json::from_value::<TurnPool>(d).map(|_| ()),
                "RecorderPool" => serde_json::from_value::<RecorderPool>(d).map(|_| ()),
                other => panic!("unexpected kind {other} in {file}"),
            };
            r.unwrap_or_else(|e| panic!("{file} {kind}: {e}"));
        }
    }
}

#[test]
fn bridge_statefulset_uses_host_network_one_per_node_and_the_spec_ports() {
    let pool: BridgePool = one("production.yaml", "BridgePool", "meet-a");
    let objs = bridge::render(&pool, 4, &RenderConfig::default());
    let sts = &objs.stateful_set;
    assert_eq!(sts.name_any(), "meet-a-bridge");
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(4));
    assert_eq!(sts.spec.as_ref().unwrap().pod_management_policy.as_deref(), Some("Parallel"));
    // Template changes are rolled out by the operator, draining each bridge before replacing it.
    let strategy = sts.spec.as_ref().unwrap().update_strategy.as_ref().unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
    let p = pod(sts);
    assert_eq!(p.host_network, Some(true));
    assert_eq!(p.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert_eq!(p.service_account_name.as_deref(), Some("meet-a-bridge"));
    // Drain timeout 900 s + 30 s to stop: long enough to drain, never hours.
    assert_eq!(p.termination_grace_period_seconds, Some(930));
    let terms = p
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap();
    assert_eq!(terms.len(), 1);
    assert_eq!(terms[0].topology_key, "kubernetes.io/hostname");
    assert_eq!(
        terms[0].label_selector.as_ref().unwrap().match_labels.as_ref().unwrap(),
        &bridge::owner(&pool).selector_labels()
    );
    assert_eq!(p.node_selector.as_ref().unwrap()["convene.dev/media"], "true");

    let c = &p.containers[0];
    let ports: Vec<(String, i32, Option<i32>, String)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.name.clone().unwrap(), p.container_port, p.host_port, p.protocol.clone().unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![
            ("media".into(), 10000, Some(10000), "UDP".into()),
            ("tcp-fallback".into(), 4443, Some(4443), "TCP".into()),
            ("http".into(), 8080, Some(8080), "TCP".into()),
        ]
    );
    let ready = c.readiness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    let live = c.liveness_probe.as_ref().unwrap().http_get.as_ref().unwrap();
    assert_eq!(ready.path.as_deref(), Some("/ready"), "readiness turns false while draining");
    assert_eq!(live.path.as_deref(), Some("/health"), "liveness must not restart a draining bridge");
    assert_hardened(c);
    assert_eq!(c.resources.as_ref().unwrap().requests.as_ref().unwrap()["cpu"].0, "4");

    let node = env(c, "NODE_NAME").unwrap().value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
    assert_eq!(node.field_path, "spec.nodeName");
    assert_eq!(env(c, "CONVENE_BRIDGE_ADDRESS_SOURCE").unwrap().value.as_deref(), Some("node-external-ip"));
    assert_eq!(
        env(c, "CONVENE_SIGNALING_URL").unwrap().value.as_deref(),
        Some("ws://meet-a-signaling.ns.svc:8080/bridge")
    );
    let secret = env(c, "CONVENE_BRIDGE_SECRET")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((secret.name.as_str(), secret.key.as_str()), ("meet-a-bridge-control", "secret"));

    // Ownership: garbage-collected with the pool, found again by label.
    let meta = &sts.metadata;
    let owner = &meta.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("BridgePool", "meet-a", Some(true))
    );
    let labels = meta.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "convene-operator");
    assert_eq!(labels["convene.dev/shard"], "meet-a");
}

#[test]
fn bridge_companions_service_pdb_rbac_and_network_policy() {
    let pool: BridgePool = one("trial.yaml", "BridgePool", "trial");
    let cfg = RenderConfig { operator_namespace: "ops".into(), ..RenderConfig::default() };
    let objs = bridge::render(&pool, 1, &cfg);

    let svc = objs.service.spec.as_ref().unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"), "headless: each bridge is scraped on its own");
    assert_eq!(svc.publish_not_ready_addresses, Some(true), "draining bridges stay scrapeable");

    let pdb = objs.pdb.spec.as_ref().unwrap();
    assert_eq!(pdb.max_unavailable, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1)));

    let crb = &objs.cluster_role_binding;
    assert_eq!(crb.role_ref.name, bridge::NODE_READER_ROLE);
    assert!(crb.metadata.owner_references.is_none(), "cluster-scoped: cleaned by finalizer, not owner ref");
    let subject = &crb.subjects.as_ref().unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str(), subject.namespace.as_deref()),
        ("ServiceAccount", "trial-bridge", Some("ns"))
    );
    let role = bridge::node_reader_role();
    let rule = &role.rules.as_ref().unwrap()[0];
    assert_eq!(rule.resources.as_deref(), Some(&["nodes".to_string()][..]));
    assert_eq!(rule.verbs, vec!["get".to_string()], "read-only, nothing more");

    let np = objs.network_policy.spec.as_ref().unwrap();
    let rules = np.ingress.as_ref().unwrap();
    let control = &rules[0];
    assert_eq!(
        control.ports.as_ref().unwrap()[0].port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080))
    );
    let from = control.from.as_ref().unwrap();
    let sig = from[0].pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
    assert_eq!(sig["app.kubernetes.io/component"], "signaling");
    assert_eq!(sig["convene.dev/shard"], "trial");
    let op_ns = from[1].namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap();
    assert_eq!(op_ns["kubernetes.io/metadata.name"], "ops");
    assert!(from.iter().all(|p| p.ip_block.is_none()), "control port is not open to the world");
    let media = &rules[1];
    let protos: Vec<_> = media.ports.as_ref().unwrap().iter().map(|p| p.protocol.clone().unwrap()).collect();
    assert_eq!(protos, vec!["UDP", "TCP"]);
}

#[test]
fn static_and_stun_address_sources_reach_the_bridge() {
    let mut pool: BridgePool = one("trial.yaml", "BridgePool", "trial");
    pool.spec.public_address.source = convene_operator::crd::bridgepool::AddressSource::Static;
    pool.spec.public_address.static_addresses = vec!["203.0.113.7".into(), "2001:db8::7".into()];
    let sts = bridge::render(&pool, 1, &RenderConfig::default()).stateful_set;
    let c = &pod(&sts).containers[0];
    assert_eq!(env(c, "CONVENE_BRIDGE_ADDRESS_SOURCE").unwrap().value.as_deref(), Some("static"));
    assert_eq!(
        env(c, "CONVENE_BRIDGE_STATIC_ADDRESSES").unwrap().value.as_deref(),
        Some("203.0.113.7,2001:db8::7")
    );
    pool.spec.public_address.source = convene_operator::crd::bridgepool::AddressSource::Stun;
    pool.spec.public_address.stun_server = Some("stun.example.com:3478".into());
    let sts = bridge::render(&pool, 1, &RenderConfig::default()).stateful_set;
    let c = &pod(&sts).containers[0];
    assert_eq!(env(c, "CONVENE_BRIDGE_STUN_SERVER").unwrap().value.as_deref(), Some("stun.example.com:3478"));
}

#[test]
fn signaling_renders_one_focus_service_ingress_and_config() {
    // meet-a on its own (the example puts it in a group, whose Ingress is the group's).
    let mut shard: Shard = one("production.yaml", "Shard", "meet-a");
    shard.spec.routing = None;
    shard.spec.domain = "meet-a.example.com".into();
    shard.spec.ingress.tls_secret_name = Some("meet-a-tls".into());
    let inputs = signaling::ShardInputs {
        jwt_key: Some(("meet-a-jwt".into(), "secret".into())),
        turn: Some(signaling::TurnInputs {
            secret_name: "relays-turn".into(),
            uris: vec!["turn:198.51.100.1:3478?transport=udp".into()],
            credential_lifetime_seconds: 86400,
        }),
        recording: true,
    };
    let objs = signaling::render(&shard, &inputs, &RenderConfig::default());
    let sts = &objs.stateful_set;
    assert_eq!(sts.spec.as_ref().unwrap().replicas, Some(1), "one active focus per shard");
    let p = pod(sts);
    assert_ne!(p.host_network, Some(true));
    assert_eq!(p.automount_service_account_token, Some(false), "signaling needs no API access");
    let c = &p.containers[0];
    assert_hardened(c);
    let mounts: Vec<&str> = c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
    assert!(mounts.contains(&"/var/run/secrets/convene/jwt"));
    assert!(mounts.contains(&"/var/run/secrets/convene/turn"));
    assert!(mounts.contains(&"/var/run/secrets/convene/bridge-control"));
    let secret_names: Vec<String> =
        p.volumes.as_ref().unwrap().iter().filter_map(|v| v.secret.as_ref()?.secret_name.clone()).collect();
    assert_eq!(secret_names, vec!["meet-a-bridge-control", "meet-a-jwt", "relays-turn"]);

    let ing = objs.ingress.as_ref().expect("ingress enabled");
    let spec = ing.spec.as_ref().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(spec.tls.as_ref().unwrap()[0].secret_name.as_deref(), Some("meet-a-tls"));
    let rule = &spec.rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("meet-a.example.com"));
    let paths: Vec<_> = rule.http.as_ref().unwrap().paths.iter().map(|p| p.path.clone().unwrap()).collect();
    assert_eq!(paths, vec!["/ws", "/"]);
    assert_eq!(
        ing.metadata.annotations.as_ref().unwrap()["nginx.ingress.kubernetes.io/proxy-read-timeout"],
        "3600"
    );

    let yaml = &objs.config_map.data.as_ref().unwrap()["signaling.yaml"];
    let cfg: Value = serde_saphyr::from_str(yaml).unwrap();
    assert_eq!(cfg["publicUrl"], "https://meet-a.example.com/");
    assert_eq!(cfg["auth"]["jwt"]["algorithm"], "HS256");
    assert_eq!(cfg["auth"]["allowAnonymousRoomCreation"], false);
    assert_eq!(cfg["turn"]["uris"][0], "turn:198.51.100.1:3478?transport=udp");
    assert_eq!(cfg["recording"], true);
    assert!(!yaml.contains("secret:"), "no secret value inline in the ConfigMap");
}

#[test]
fn rendered_signaling_config_reads_back_as_the_contract_type_for_every_example() {
    use convene_proto::config::{SIGNALING_CONFIG_FILE, SignalingConfig};
    let mut shards = 0;
    for file in ["trial.yaml", "production.yaml", "jwt-lobby.yaml"] {
        for d in docs(file).into_iter().filter(|d| d["kind"] == "Shard") {
            let shard: Shard = serde_json::from_value(d).unwrap();
            let inputs = signaling::ShardInputs {
                jwt_key: shard.spec.auth.jwt.as_ref().map(|_| ("s".into(), "key".into())),
                turn: Some(signaling::TurnInputs {
                    secret_name: "t".into(),
                    uris: vec!["turn:192.0.2.1:3478".into()],
                    credential_lifetime_seconds: 600,
                }),
                recording: true,
            };
            let objs = signaling::render(&shard, &inputs, &RenderConfig::default());
            let yaml = &objs.config_map.data.as_ref().unwrap()[SIGNALING_CONFIG_FILE];
            let parsed: SignalingConfig = serde_saphyr::from_str(yaml)
                .unwrap_or_else(|e| panic!("{file} {}: signaling cannot read {yaml}: {e}", shard.name_any()));
            assert_eq!(parsed, signaling::config(&shard, &inputs), "{file} {}", shard.name_any());
            shards += 1;
        }
    }
    assert!(shards >= 4, "every example shard was checked ({shards})");
}

#[test]
fn open_shard_without_ingress_has_no_jwt_and_no_ingress() {
    let mut shard: Shard = one("trial.yaml", "Shard", "trial");
    shard.spec.ingress.enabled = false;
    let objs = signaling::render(&shard, &signaling::ShardInputs::default(), &RenderConfig::default());
    assert!(objs.ingress.is_none());
    let cfg = signaling::config(&shard, &signaling::ShardInputs::default());
    assert!(cfg.auth.jwt.is_none());
    assert_eq!(cfg.auth.allow_anonymous_room_creation, Some(true), "an open shard lets anyone create rooms");
    assert_eq!(signaling::url(&shard), "http://meet.localhost/");
}

#[test]
fn coturn_config_denies_private_ranges_but_allows_bridges() {
    let pool: TurnPool = one("production.yaml", "TurnPool", "relays");
    let bridges = vec!["10.0.3.7".to_string(), "10.0.3.8".to_string()];
    let conf = turn::config(&pool, &bridges);
    let lines: Vec<&str> = conf.lines().collect();
    for expected in [
        "use-auth-secret",
        "realm=example.com",
        "listening-port=3478",
        "tls-listening-port=5349",
        "alt-tls-listening-port=443",
        "min-port=49152",
        "max-port=65535",
        "cert=/etc/coturn/tls/tls.crt",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "allowed-peer-ip=10.0.3.7",
        "allowed-peer-ip=10.0.3.8",
    ] {
        assert!(lines.contains(&expected), "missing `{expected}` in\n{conf}");
    }
    assert!(!conf.contains("static-auth-secret"), "the secret is never in the ConfigMap");
    assert!(!lines.contains(&"no-tls"));

    let objs = turn::render(&pool, &bridges, &RenderConfig::default());
    let p = pod(&objs.stateful_set);
    assert_eq!(p.host_network, Some(true));
    assert_eq!(objs.stateful_set.spec.as_ref().unwrap().replicas, Some(2));
    let c = &p.containers[0];
    assert_hardened(c);
    let caps = c.security_context.as_ref().unwrap().capabilities.as_ref().unwrap();
    assert_eq!(caps.add.as_deref(), Some(&["NET_BIND_SERVICE".to_string()][..]), "443 needs it");
    assert!(c.args.as_ref().unwrap().contains(&"--static-auth-secret=$(TURN_SECRET)".to_string()));
    let s = env(c, "TURN_SECRET").unwrap().value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(s.name, "relays-turn");
    let ports: Vec<(i32, String)> = c
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .map(|p| (p.host_port.unwrap(), p.protocol.clone().unwrap()))
        .collect();
    assert_eq!(
        ports,
        vec![(3478, "UDP".into()), (3478, "TCP".into()), (5349, "TCP".into()), (443, "TCP".into())]
    );
    assert_eq!(turn::uris(&pool, "198.51.100.1").len(), 4);
}

#[test]
fn coturn_without_tls_disables_it_and_keeps_defaults_when_no_bridges() {
    let mut pool: TurnPool = one("production.yaml", "TurnPool", "relays");
    pool.spec.tls_secret_name = None;
    pool.spec.ports.tls = None;
    pool.spec.ports.tls443 = false;
    let conf = turn::config(&pool, &[]);
    assert!(conf.lines().any(|l| l == "no-tls"));
    assert!(!conf.contains("allowed-peer-ip"));
    let objs = turn::render(&pool, &[], &RenderConfig::default());
    let c = &pod(&objs.stateful_set).containers[0];
    assert!(c.security_context.as_ref().unwrap().capabilities.as_ref().unwrap().add.is_none());
}

#[test]
fn recorder_with_volume_claims_storage_and_with_s3_gets_credentials() {
    let vol: RecorderPool = one("production.yaml", "RecorderPool", "meet-b-recorders");
    let sts = recorder::render(&vol, &RenderConfig::default());
    let claims = sts.spec.as_ref().unwrap().volume_claim_templates.as_ref().unwrap();
    let req = claims[0].spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap();
    assert_eq!(req["storage"].0, "200Gi");
    assert_hardened(&pod(&sts).containers[0]);

    let s3: RecorderPool = one("production.yaml", "RecorderPool", "meet-a-recorders");
    let sts = recorder::render(&s3, &RenderConfig::default());
    assert!(sts.spec.as_ref().unwrap().volume_claim_templates.is_none());
    let c = &pod(&sts).containers[0];
    let key = env(c, "AWS_SECRET_ACCESS_KEY")
        .unwrap()
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!((key.name.as_str(), key.key.as_str()), ("recordings-s3", "secretAccessKey"));
    assert_eq!(env(c, "CONVENE_RECORDER_MAX_RECORDINGS").unwrap().value.as_deref(), Some("10"));
    assert_eq!(
        env(c, "CONVENE_SIGNALING_URL").unwrap().value.as_deref(),
        Some("ws://meet-a-signaling.ns.svc:8080/recorder")
    );
}

#[test]
fn generated_secrets_are_random_owned_and_marked() {
    let shard: Shard = one("trial.yaml", "Shard", "trial");
    let a = secrets::random_value();
    let b = secrets::random_value();
    assert_ne!(a, b);
    assert!(a.len() >= 43, "32 random bytes");
    let s = secrets::render(&signaling::owner(&shard), &render::bridge_control_secret("trial"), &a);
    assert_eq!(s.metadata.name.as_deref(), Some("trial-bridge-control"));
    assert_eq!(s.data.as_ref().unwrap()[secrets::KEY].0, a.as_bytes());
    assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].kind, "Shard");
    assert!(s.metadata.annotations.as_ref().unwrap().contains_key("convene.dev/generated"));
}

#[test]
fn rendering_is_deterministic() {
    let pool: BridgePool = one("production.yaml", "BridgePool", "meet-b");
    let a = serde_json::to_string(&bridge::render(&pool, 4, &RenderConfig::default()).stateful_set).unwrap();
    let b = serde_json::to_string(&bridge::render(&pool, 4, &RenderConfig::default()).stateful_set).unwrap();
    assert_eq!(a, b, "same input, same object: no spurious writes");
}

#[test]
fn coturn_peer_ranges_accept_cidr_and_add_to_the_private_defaults() {
    assert_eq!(turn::coturn_range("10.0.0.0/8"), "10.0.0.0-10.255.255.255");
    assert_eq!(turn::coturn_range("192.168.7.9/24"), "192.168.7.0-192.168.7.255", "host bits masked");
    assert_eq!(turn::coturn_range("203.0.113.7/32"), "203.0.113.7-203.0.113.7");
    assert_eq!(turn::coturn_range("fd00::/8"), "fd00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    assert_eq!(turn::coturn_range("10.1.1.1-10.1.1.9"), "10.1.1.1-10.1.1.9");
    assert_eq!(turn::coturn_range("10.1.1.1"), "10.1.1.1");

    let mut pool: TurnPool = one("production.yaml", "TurnPool", "relays");
    pool.spec.denied_peer_ranges = Some(vec!["203.0.113.0/24".into(), "10.0.0.0/8".into()]);
    pool.spec.allowed_peer_ranges = vec!["10.9.0.0/16".into()];
    let conf = turn::config(&pool, &["10.0.3.7".to_string()]);
    let lines: Vec<&str> = conf.lines().collect();
    for expected in [
        "denied-peer-ip=203.0.113.0-203.0.113.255",
        // A given list never replaces the defaults: every private range stays denied.
        "denied-peer-ip=172.16.0.0-172.31.255.255",
        "denied-peer-ip=192.168.0.0-192.168.255.255",
        "denied-peer-ip=127.0.0.0-127.255.255.255",
        "allowed-peer-ip=10.9.0.0-10.9.255.255",
        "allowed-peer-ip=10.0.3.7",
    ] {
        assert!(lines.contains(&expected), "missing `{expected}` in\n{conf}");
    }
    assert_eq!(lines.iter().filter(|l| **l == "denied-peer-ip=10.0.0.0-10.255.255.255").count(), 1);
    assert!(!lines.iter().any(|l| l.contains("peer-ip=") && l.contains('/')), "no CIDR reaches coturn");
}

#[test]
fn shared_notes_url_reaches_the_signaling_config_only_when_set() {
    let mut shard: Shard = one("trial.yaml", "Shard", "trial");
    let inputs = signaling::ShardInputs::default();
    let yaml = |shard: &Shard| {
        let objs = signaling::render(shard, &inputs, &RenderConfig::default());
        objs.config_map.data.as_ref().unwrap()["signaling.yaml"].clone()
    };
    let off = yaml(&shard);
    assert!(!off.contains("notesUrl"), "no notes link unless configured: {off}");
    shard.spec.web.notes_url = Some("https://pad.example.com/p/convene-{room}".into());
    let on = yaml(&shard);
    let cfg: Value = serde_saphyr::from_str(&on).unwrap();
    assert_eq!(cfg["web"]["notesUrl"], "https://pad.example.com/p/convene-{room}");
    let parsed: convene_proto::config::SignalingConfig = serde_saphyr::from_str(&on).unwrap();
    assert_eq!(parsed.web.notes_url.as_deref(), Some("https://pad.example.com/p/convene-{room}"));
}

#[test]
fn signaling_trusts_the_ingress_for_client_addresses_and_serves_tls_in_cluster_when_asked() {
    let mut shard: Shard = one("production.yaml", "Shard", "meet-a");
    let inputs = signaling::ShardInputs::default();
    // Behind an Ingress every client would share the controller's address: trust private peers.
    let cfg = signaling::config(&shard, &inputs);
    assert!(cfg.trusted_proxies.contains(&"10.0.0.0/8".to_string()), "{:?}", cfg.trusted_proxies);
    assert!(cfg.tls.is_none(), "in-cluster TLS is off by default");
    shard.spec.ingress.enabled = false;
    assert!(signaling::config(&shard, &inputs).trusted_proxies.is_empty(), "no Ingress: no proxy is trusted");
    shard.spec.serving.trusted_proxies = Some(vec!["192.0.2.7".into()]);
    assert_eq!(signaling::config(&shard, &inputs).trusted_proxies, ["192.0.2.7"]);

    shard.spec.serving.tls_secret_name = Some("meet-a-internal".into());
    let cfg = signaling::config(&shard, &inputs);
    let tls = cfg.tls.expect("TLS files in the config");
    let objs = signaling::render(&shard, &inputs, &RenderConfig::default());
    let c = &pod(&objs.stateful_set).containers[0];
    let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "tls").expect("TLS mounted");
    assert!(tls.cert_file.starts_with(&mount.mount_path) && tls.key_file.starts_with(&mount.mount_path));
    let vol = pod(&objs.stateful_set).volumes.as_ref().unwrap().iter().find(|v| v.name == "tls").unwrap();
    let keys: Vec<&str> =
        vol.secret.as_ref().unwrap().items.as_ref().unwrap().iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys, ["tls.crt", "tls.key"]);
    for probe in [&c.readiness_probe, &c.liveness_probe] {
        let get = probe.as_ref().unwrap().http_get.as_ref().unwrap();
        assert_eq!(get.scheme.as_deref(), Some("HTTPS"), "probes speak TLS to a TLS server");
    }
}

#[test]
fn bridges_dial_signaling_over_wss_and_verify_it_when_signaling_serves_tls() {
    let pool: BridgePool = one("production.yaml", "BridgePool", "meet-a");
    let mut sts = bridge::render(&pool, 2, &RenderConfig::default()).stateful_set;
    let url = |sts: &k8s_openapi::api::apps::v1::StatefulSet| {
        env(&pod(sts).containers[0], convene_proto::bridge::env::SIGNALING_URL)
            .unwrap()
            .value
            .clone()
            .unwrap()
    };
    assert!(url(&sts).starts_with("ws://"), "plain in-cluster by default");
    bridge::dial_signaling_over_tls(&mut sts, "meet-a-internal");
    assert!(url(&sts).starts_with("wss://meet-a-signaling."), "{}", url(&sts));
    let c = &pod(&sts).containers[0];
    let ca = env(c, convene_proto::bridge::env::CONTROL_CA_FILE).unwrap().value.clone().unwrap();
    let mount = c.volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "signaling-ca").unwrap();
    assert!(ca.starts_with(&mount.mount_path), "{ca} under {}", mount.mount_path);
    let vol = pod(&sts).volumes.as_ref().unwrap().iter().find(|v| v.name == "signaling-ca").unwrap();
    let secret = vol.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("meet-a-internal"));
    assert_eq!(secret.items.as_ref().unwrap()[0].key, "ca.crt");
}

#[test]
fn recorders_dial_signaling_over_wss_too_when_signaling_serves_tls() {
    let pool: RecorderPool = one("production.yaml", "RecorderPool", "meet-a-recorders");
    let mut sts = recorder::render(&pool, &RenderConfig::default());
    let renv = |sts: &k8s_openapi::api::apps::v1::StatefulSet, name: &str| {
        env(&pod(sts).containers[0], name).and_then(|v| v.value.clone())
    };
    let url = renv(&sts, convene_proto::recorder::env::SIGNALING_URL).unwrap();
    assert!(url.starts_with("ws://") && url.ends_with(convene_proto::paths::SIGNALING_RECORDER_WS), "{url}");
    assert_eq!(renv(&sts, convene_proto::recorder::env::CONTROL_CA_FILE), None);
    recorder::dial_signaling_over_tls(&mut sts, "meet-a-internal");
    assert!(renv(&sts, convene_proto::recorder::env::SIGNALING_URL).unwrap().starts_with("wss://"));
    let ca = renv(&sts, convene_proto::recorder::env::CONTROL_CA_FILE).unwrap();
    let mount =
        pod(&sts).containers[0].volume_mounts.as_ref().unwrap().iter().find(|m| m.name == "signaling-ca");
    assert!(ca.starts_with(&mount.unwrap().mount_path), "{ca}");
}

fn annotations(sts: &k8s_openapi::api::apps::v1::StatefulSet) -> std::collections::BTreeMap<String, String> {
    let meta = sts.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
    meta.annotations.clone().unwrap_or_default()
}

#[test]
fn pods_carry_scrape_annotations_and_prometheus_may_reach_the_bridges() {
    // Signaling: its HTTP port, https when it serves TLS in the cluster.
    let mut shard: Shard = one("production.yaml", "Shard", "meet-a");
    let inputs = signaling::ShardInputs::default();
    let a = annotations(&signaling::render(&shard, &inputs, &RenderConfig::default()).stateful_set);
    assert_eq!(
        (
            a["prometheus.io/scrape"].as_str(),
            a["prometheus.io/port"].as_str(),
            a["prometheus.io/path"].as_str()
        ),
        ("true", "8080", "/metrics")
    );
    assert_eq!(a["prometheus.io/scheme"], "http");
    shard.spec.serving.tls_secret_name = Some("meet-a-internal".into());
    let a = annotations(&signaling::render(&shard, &inputs, &RenderConfig::default()).stateful_set);
    assert_eq!(a["prometheus.io/scheme"], "https");

    // Bridges: the pool's own HTTP port, and their NetworkPolicy admits Prometheus' namespaces.
    let mut pool: BridgePool = one("trial.yaml", "BridgePool", "trial");
    pool.spec.ports.http = 9099;
    let plain = bridge::render(&pool, 1, &RenderConfig::default());
    assert_eq!(annotations(&plain.stateful_set)["prometheus.io/port"], "9099");
    let peers = |objs: &bridge::BridgeObjects| {
        objs.network_policy.spec.as_ref().unwrap().ingress.as_ref().unwrap()[0].from.clone().unwrap()
    };
    assert_eq!(peers(&plain).len(), 2, "signaling and the operator only, unless told");
    let cfg = RenderConfig { metrics_namespaces: vec!["monitoring".into()], ..RenderConfig::default() };
    let told = bridge::render(&pool, 1, &cfg);
    let prom = &peers(&told)[2];
    assert_eq!(
        prom.namespace_selector.as_ref().unwrap().match_labels.as_ref().unwrap()["kubernetes.io/metadata.name"],
        "monitoring"
    );
    assert!(
        prom.pod_selector.is_none() && prom.ip_block.is_none(),
        "any pod of that namespace, nothing wider"
    );
}

/// The production example is one site over two shards: every member's signaling reads the
/// group's membership and secret, the group's Ingress takes users to any member and each
/// member's prefix to it, and what a member disagrees on is named.
#[test]
fn the_production_shards_are_one_group_on_one_domain() {
    use convene_operator::render::group;
    use convene_proto::routing::GroupMembership;
    let shards: Vec<std::sync::Arc<Shard>> = ["meet-a", "meet-b"]
        .iter()
        .map(|n| {
            let mut s: Shard = one("production.yaml", "Shard", n);
            s.metadata.namespace = Some("convene".into());
            s.metadata.uid = Some(format!("uid-{n}"));
            std::sync::Arc::new(s)
        })
        .collect();
    let members = group::members(&shards[1], &shards);
    assert_eq!(members.iter().map(|s| s.name_any()).collect::<Vec<_>>(), ["meet-a", "meet-b"]);
    let (ok, refused) = group::split(&members);
    assert_eq!((ok.len(), refused.len()), (2, 0));

    let m = group::membership("meet", &members);
    assert_eq!(m.members[1].url, "wss://meet.example.com/_shard/meet-b/ws");
    assert_eq!(m.members[1].internal_url, "http://meet-b-signaling.convene.svc:8080");
    assert!(!m.members[0].ready, "no status yet: not Ready, owns no rooms");
    // Rooms and participants per member and per region, from the members' status.
    let mut loaded: Vec<Shard> = members.iter().map(|s| (*s).clone()).collect();
    loaded[1].spec.region = Some("us-east".into());
    for (s, (rooms, people)) in loaded.iter_mut().zip([(3, 10), (2, 4)]) {
        s.status = Some(convene_operator::crd::ShardStatus {
            conferences: Some(rooms),
            participants: Some(people),
            ..Default::default()
        });
    }
    let loaded_refs: Vec<&Shard> = loaded.iter().collect();
    let st = group::status(&group::membership("meet", &loaded_refs), &loaded_refs);
    let per_region: Vec<(String, i64, i64)> =
        st.regions.iter().map(|r| (r.region.clone(), r.rooms, r.participants)).collect();
    assert_eq!(per_region, [("eu-central".to_string(), 3, 10), ("us-east".to_string(), 2, 4)]);
    assert_eq!((st.members[1].rooms, st.members[1].region.as_deref()), (Some(2), Some("us-east")));

    let objs = group::render("meet", "convene", &members, &m);
    let json = &objs.config_map.data.as_ref().unwrap()["group.json"];
    let read: GroupMembership = serde_json::from_str(json).expect("signaling reads the membership");
    assert_eq!(read, m);
    assert!(read.validate().is_ok());
    let owners: Vec<String> =
        objs.config_map.metadata.owner_references.as_ref().unwrap().iter().map(|o| o.name.clone()).collect();
    assert_eq!(owners, ["meet-a", "meet-b"], "owned by every member, gone with the last");

    let ing = objs.ingress.as_ref().expect("the group's Ingress");
    let spec = ing.spec.as_ref().unwrap();
    assert_eq!(spec.tls.as_ref().unwrap()[0].secret_name.as_deref(), Some("meet-tls"));
    let rule = &spec.rules.as_ref().unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("meet.example.com"));
    let routes: Vec<(String, String)> = rule
        .http
        .as_ref()
        .unwrap()
        .paths
        .iter()
        .map(|p| (p.path.clone().unwrap(), p.backend.service.as_ref().unwrap().name.clone()))
        .collect();
    let want = [
        ("/ws", "meet-group"),
        ("/", "meet-group"),
        ("/_shard/meet-a", "meet-a-signaling"),
        ("/_shard/meet-b", "meet-b-signaling"),
    ];
    assert_eq!(routes, want.map(|(p, s)| (p.to_string(), s.to_string())));
    let selector = objs.service.spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(selector[group::GROUP], "meet");

    // Each member: no Ingress of its own, the group label the Service selects, the group's
    // files mounted where its config says, the shared token secret.
    for shard in &members {
        let inputs = signaling::ShardInputs {
            jwt_key: Some((group::jwt_secret_name("meet"), "secret".into())),
            ..Default::default()
        };
        let objs = signaling::render(shard, &inputs, &RenderConfig::default());
        assert!(objs.ingress.is_none());
        let sts = &objs.stateful_set;
        let labels = sts.spec.as_ref().unwrap().template.metadata.as_ref().unwrap().labels.clone().unwrap();
        assert_eq!(labels[group::GROUP], "meet");
        for (k, v) in &selector {
            assert_eq!(labels.get(k), Some(v), "the group Service selects {}", shard.name_any());
        }
        let cfg = signaling::config(shard, &inputs);
        let routing = cfg.routing.expect("routing");
        assert_eq!((routing.group.as_str(), routing.shard), ("meet", shard.name_any()));
        let c = &pod(sts).containers[0];
        let mounts: Vec<&str> =
            c.volume_mounts.as_ref().unwrap().iter().map(|m| m.mount_path.as_str()).collect();
        for file in [&routing.members_file, &routing.secret_file] {
            let dir = std::path::Path::new(file).parent().unwrap().to_str().unwrap();
            assert!(mounts.contains(&dir), "{file} is mounted ({mounts:?})");
        }
    }

    // A member on another domain or with other token settings is left out and told why; the
    // group's first (oldest) member decides, whatever the names.
    let mut odd: Shard = (*shards[0]).clone();
    odd.metadata.name = Some("aaa".into());
    odd.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2030-01-01T00:00:00Z".parse().unwrap()));
    odd.spec.domain = "other.example.com".into();
    odd.spec.auth.allow_guests = false;
    let mut first: Shard = (*shards[1]).clone();
    first.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2029-01-01T00:00:00Z".parse().unwrap()));
    let (ok, refused) = group::split(&[&odd, &first]);
    assert_eq!(ok.iter().map(|s| s.name_any()).collect::<Vec<_>>(), ["meet-b"]);
    let why = &refused[0].1;
    assert_eq!(refused[0].0.name_any(), "aaa");
    assert!(why.starts_with("left out of group meet: spec.domain (\"other.example.com\""), "{why}");
    assert!(why.contains("spec.auth") && why.contains("from meet-b"), "{why}");
}
