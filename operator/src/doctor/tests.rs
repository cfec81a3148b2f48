//! The doctor's checks on built facts: a healthy shard, then one thing broken at a time, each
//! named under the right symptom and component.
use super::checks::*;
use super::facts::{BridgeProbe, Facts, Lookup, Probes, RelayProbe, SecretFacts};
use super::probe::Allocation;
use crate::cert::CertInfo;
use crate::crd::{BridgePool, Shard, TurnPool};
use std::collections::BTreeMap;

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn yaml<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_saphyr::from_str(s).expect("fixture")
}

fn secret(keys: &[&str], cert: Option<CertInfo>) -> Lookup<SecretFacts> {
    Lookup::Found(SecretFacts { keys: keys.iter().map(|k| k.to_string()).collect(), cert: cert.map(Ok) })
}

fn healthy() -> Facts {
    let shard: Shard = yaml(
        "apiVersion: convene.dev/v1alpha1\nkind: Shard\nmetadata: {name: meet, namespace: ns}\nspec:\n  domain: meet.example.com\n  ingress: {enabled: true, tlsSecretName: meet-tls}\n  turnPoolRef: {name: relays}\n  auth:\n    jwt: {issuer: app, audience: convene, secretRef: {name: jwt, key: key}}\nstatus:\n  version: '1.2'\n  bridgesReady: 2\n  conditions:\n  - {type: Ready, status: 'True', reason: Ready, message: ok, lastTransitionTime: '2026-01-01T00:00:00Z'}\n",
    );
    let pool: BridgePool = yaml(
        "apiVersion: convene.dev/v1alpha1\nkind: BridgePool\nmetadata: {name: meet, namespace: ns}\nspec:\n  shardRef: {name: meet}\n  replicas: 2\n  publicAddress: {source: NodeInternalIP}\nstatus:\n  replicas: 2\n  readyReplicas: 2\n  desiredReplicas: 2\n  bridges:\n  - {name: meet-bridge-0, node: n0, address: 10.0.0.10, ready: true, endpoints: 4, mbps: 3, stress: 0.1, version: '1.2'}\n  - {name: meet-bridge-1, node: n1, address: 10.0.0.11, ready: true, endpoints: 0, mbps: 0, stress: 0.0, version: '1.2'}\n",
    );
    let turn: TurnPool = yaml(
        "apiVersion: convene.dev/v1alpha1\nkind: TurnPool\nmetadata: {name: relays, namespace: ns}\nspec:\n  realm: meet.example.com\n  tlsSecretName: turn-tls\nstatus:\n  readyReplicas: 1\n  addresses: [10.0.0.20]\n",
    );
    let good = CertInfo { not_after: NOW + 60 * DAY, dns_names: vec!["meet.example.com".into()] };
    let turn_cert = CertInfo { not_after: NOW + 60 * DAY, dns_names: vec!["turn.example.com".into()] };
    let secrets = BTreeMap::from([
        ("meet-tls".to_string(), secret(&["tls.crt", "tls.key"], Some(good))),
        ("jwt".to_string(), secret(&["key"], None)),
        ("meet-bridge-control".to_string(), secret(&["secret"], None)),
        (crate::render::turn::secret_name("relays"), secret(&["secret"], None)),
        ("turn-tls".to_string(), secret(&["tls.crt"], Some(turn_cert))),
    ]);
    let ingress = yaml("metadata: {name: meet}\nstatus: {loadBalancer: {ingress: [{ip: 198.51.100.7}]}}\n");
    let signaling = yaml("metadata: {name: meet-signaling}\nstatus: {replicas: 1, readyReplicas: 1}\n");
    let nodes = BTreeMap::from([
        ("n0".to_string(), vec![("InternalIP".to_string(), "10.0.0.10".to_string())]),
        ("n1".to_string(), vec![("InternalIP".to_string(), "10.0.0.11".to_string())]),
    ]);
    Facts {
        namespace: "ns".into(),
        shard,
        pools: vec![pool],
        turn: Lookup::Found(turn),
        recorder: Lookup::NotReferenced,
        secrets,
        ingress: Lookup::Found(ingress),
        signaling: Lookup::Found(signaling),
        nodes,
        events: vec![],
        probes: Probes {
            dns: Some(Ok(vec!["198.51.100.7".parse().unwrap()])),
            bridges: ["10.0.0.10", "10.0.0.11"]
                .iter()
                .enumerate()
                .map(|(i, ip)| BridgeProbe {
                    bridge: format!("meet-bridge-{i}"),
                    udp: format!("{ip}:10000").parse().unwrap(),
                    binding: Ok("192.0.2.1:40000".parse().unwrap()),
                    tcp: format!("{ip}:4443").parse().unwrap(),
                    tcp_connect: Ok(()),
                })
                .collect(),
            relays: vec![RelayProbe {
                address: "10.0.0.20:3478".parse().unwrap(),
                binding: Ok("192.0.2.1:40001".parse().unwrap()),
                allocation: Some(Allocation::Created("10.0.0.20:50000".parse().unwrap())),
            }],
        },
    }
}

fn not_ok(f: &Facts) -> Vec<(Level, &'static str, String)> {
    diagnose(f, NOW)
        .into_iter()
        .filter(|x| x.level != Level::Ok)
        .map(|x| (x.level, x.symptom, x.component))
        .collect()
}

#[test]
fn a_healthy_shard_passes_every_check() {
    let f = healthy();
    let all = diagnose(&f, NOW);
    assert!(all.iter().all(|x| x.level == Level::Ok), "{}", render(&all));
    // Every symptom with something to look at is walked.
    for s in [PAGE, NO_MEDIA, CORPORATE, ROOMS, JWT] {
        assert!(all.iter().any(|x| x.symptom == s), "{s} missing");
    }
    assert!(render(&all).ends_with(&format!("0 failed, 0 warnings, {} checks\n", all.len())));
}

#[test]
fn each_broken_part_is_named_under_its_symptom() {
    fn bridge(f: &mut Facts) -> &mut crate::crd::bridgepool::BridgeState {
        &mut f.pools[0].status.as_mut().unwrap().bridges[0]
    }

    // A wrong static address: the bridge, under "no audio/video".
    let mut f = healthy();
    f.pools[0].spec.public_address.source = convene_proto::bridge::AddressSource::Static;
    bridge(&mut f).address = Some("203.0.113.9".into());
    assert_eq!(not_ok(&f), vec![(Level::Warn, NO_MEDIA, "bridge meet-bridge-0".into())]);
    // The same with the node's own address as source is a stale status: a failure.
    f.pools[0].spec.public_address.source = convene_proto::bridge::AddressSource::NodeInternalIp;
    assert_eq!(not_ok(&f), vec![(Level::Fail, NO_MEDIA, "bridge meet-bridge-0".into())]);

    // The Ingress's TLS Secret is missing, expiring, expired or for another name.
    let tls = "Ingress TLS (Secret meet-tls)".to_string();
    let mut f = healthy();
    f.secrets.insert("meet-tls".into(), Lookup::Missing("meet-tls".into()));
    assert_eq!(not_ok(&f), vec![(Level::Fail, PAGE, tls.clone())]);
    for (not_after, names, level) in [
        (NOW + 3 * DAY, "meet.example.com", Level::Warn),
        (NOW - DAY, "meet.example.com", Level::Fail),
        (NOW + 60 * DAY, "other.example.com", Level::Fail),
    ] {
        let mut f = healthy();
        let cert = CertInfo { not_after, dns_names: vec![names.into()] };
        f.secrets.insert("meet-tls".into(), secret(&["tls.crt"], Some(cert)));
        assert_eq!(not_ok(&f), vec![(level, PAGE, tls.clone())], "{not_after} {names}");
    }

    // No TURN pool where one is referenced; none referenced at all.
    let mut f = healthy();
    f.turn = Lookup::Missing("relays".into());
    assert_eq!(not_ok(&f), vec![(Level::Fail, CORPORATE, "TurnPool".into())]);
    f.turn = Lookup::NotReferenced;
    assert_eq!(not_ok(&f), vec![(Level::Warn, CORPORATE, "TURN".into())]);

    // The JWT key is not in its Secret.
    let mut f = healthy();
    f.secrets.insert("jwt".into(), secret(&["other"], None));
    assert_eq!(not_ok(&f), vec![(Level::Fail, JWT, "JWT key (Secret jwt)".into())]);

    // Mixed versions; a bridge that does not answer; a stressed bridge.
    let mut f = healthy();
    bridge(&mut f).version = Some("1.3".into());
    assert_eq!(not_ok(&f), vec![(Level::Warn, ROOMS, "versions".into())]);
    let mut f = healthy();
    bridge(&mut f).endpoints = None;
    assert_eq!(not_ok(&f), vec![(Level::Warn, ROOMS, "signaling ↔ bridges".into())]);
    let mut f = healthy();
    bridge(&mut f).stress = Some(0.93);
    assert_eq!(not_ok(&f), vec![(Level::Warn, QUALITY, "bridge meet-bridge-0".into())]);

    // No pool at all; signaling not ready; the shard not Ready.
    let mut f = healthy();
    f.pools.clear();
    assert!(not_ok(&f).contains(&(Level::Fail, NO_MEDIA, "BridgePool".into())));
    let mut f = healthy();
    f.signaling =
        Lookup::Found(yaml("metadata: {name: meet-signaling}\nstatus: {replicas: 1, readyReplicas: 0}\n"));
    assert_eq!(not_ok(&f), vec![(Level::Fail, PAGE, "signaling".into())]);
}

#[test]
fn probes_name_what_does_not_answer_under_its_symptom() {
    let what = |f: &Facts, component: &str| {
        diagnose(f, NOW)
            .into_iter()
            .find(|x| x.component == component && x.level != Level::Ok)
            .map(|x| x.what)
    };
    let all = render(&diagnose(&healthy(), NOW));
    for want in [
        "OK    DNS meet.example.com → resolves to 198.51.100.7, the Ingress's address",
        "OK    bridge meet-bridge-0 → udp 10.0.0.10:10000 answers STUN",
        "OK    bridge meet-bridge-1 → tcp 10.0.0.11:4443 (ICE-TCP) accepts",
        "OK    TURN relay 10.0.0.20:3478 → allocation succeeded",
    ] {
        assert!(all.contains(want), "no `{want}` in\n{all}");
    }

    let dns = "DNS meet.example.com";
    let mut f = healthy();
    f.probes.dns = Some(Err("failed to lookup address information".into()));
    assert_eq!(not_ok(&f), vec![(Level::Fail, PAGE, dns.into())]);
    assert!(what(&f, dns).unwrap().starts_with("domain does not resolve"));
    f.probes.dns = Some(Ok(vec!["203.0.113.5".parse().unwrap()]));
    assert_eq!(
        what(&f, dns).unwrap(),
        "resolves to 203.0.113.5, Ingress has 198.51.100.7: fix the DNS record"
    );

    let mut f = healthy();
    f.probes.bridges[1].binding = Err("no answer within 2s".into());
    f.probes.bridges[0].tcp_connect = Err("Connection refused".into());
    assert_eq!(
        not_ok(&f),
        vec![
            (Level::Fail, NO_MEDIA, "bridge meet-bridge-1".into()),
            (Level::Fail, CORPORATE, "bridge meet-bridge-0".into())
        ]
    );
    // One section per symptom.
    assert_eq!(render(&diagnose(&f, NOW)).matches(CORPORATE).count(), 1);

    let relay = "TURN relay 10.0.0.20:3478";
    let mut f = healthy();
    f.probes.relays[0].allocation = Some(Allocation::Refused);
    assert_eq!(not_ok(&f), vec![(Level::Fail, CORPORATE, relay.into())]);
    assert!(
        what(&f, relay)
            .unwrap()
            .starts_with("credentials refused (the relay's secret differs from Secret relays-turn)")
    );
    f.probes.relays[0].binding = Err("no answer within 2s".into());
    f.probes.relays[0].allocation = Some(Allocation::NoAnswer);
    assert!(what(&f, relay).unwrap().starts_with("no answer on udp/3478"), "{:?}", what(&f, relay));
}

#[test]
fn the_status_screen_shows_pools_bridges_and_load() {
    let s = super::status::render(&healthy());
    assert!(s.starts_with("Shard ns/meet"), "{s}");
    for want in ["BridgePool meet  2/2 ready", "meet-bridge-0", "10.0.0.10", "TurnPool relays  1/"] {
        assert!(s.contains(want), "{want} not in\n{s}");
    }
}
