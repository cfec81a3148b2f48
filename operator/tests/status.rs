//! The pure parts of the BridgePool reconcile: desired replicas, advertised addresses per
//! address source, and the conditions that tell an admin what is wrong.

use convene_operator::crd::BridgePool;
use convene_operator::crd::bridgepool::AddressSource;
use convene_operator::reconcile::bridgepool::{advertised_address, bridge_states, desired_replicas, health};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

fn pool(extra: serde_json::Value) -> BridgePool {
    let mut spec = json!({"shardRef": {"name": "s"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "convene.dev/v1alpha1", "kind": "BridgePool",
        "metadata": {"name": "p", "namespace": "ns"}, "spec": spec
    }))
    .unwrap()
}

fn node(name: &str, internal: &str, external: Option<&str>) -> Node {
    let mut addrs = vec![json!({"type": "InternalIP", "address": internal})];
    if let Some(e) = external {
        addrs.push(json!({"type": "ExternalIP", "address": e}));
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "status": {"addresses": addrs}})).unwrap()
}

fn pod(name: &str, node: Option<&str>, ready: bool, unschedulable: Option<&str>) -> Pod {
    let mut conds = vec![json!({"type": "Ready", "status": if ready {"True"} else {"False"}})];
    if let Some(msg) = unschedulable {
        conds.push(
            json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": msg}),
        );
    }
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": [], "nodeName": node},
        "status": {"conditions": conds}
    }))
    .unwrap()
}

fn sts(replicas: i32, ready: i32) -> StatefulSet {
    StatefulSet {
        metadata: kube::api::ObjectMeta { generation: Some(1), ..Default::default() },
        status: Some(StatefulSetStatus {
            replicas,
            ready_replicas: Some(ready),
            updated_replicas: Some(replicas),
            observed_generation: Some(1),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn desired_replicas_follow_spec_without_autoscaling_and_stay_in_bounds_with_it() {
    assert_eq!(desired_replicas(&pool(json!({"replicas": 3})), 7), 3);
    let auto = pool(json!({"replicas": 9, "autoscaling": {"minReplicas": 2, "maxReplicas": 5}}));
    assert_eq!(desired_replicas(&auto, 0), 2, "starts at min");
    assert_eq!(desired_replicas(&auto, 4), 4, "keeps the last decision");
    assert_eq!(desired_replicas(&auto, 8), 5, "clamped to max after max was lowered");
    let off =
        pool(json!({"replicas": 1, "autoscaling": {"enabled": false, "minReplicas": 2, "maxReplicas": 5}}));
    assert_eq!(desired_replicas(&off, 4), 1, "autoscaling off: spec.replicas (the scale subresource) rules");
}

#[test]
fn advertised_address_follows_the_source() {
    let n = node("n1", "10.0.0.5", Some("203.0.113.5"));
    assert_eq!(advertised_address(&pool(json!({})), Some(&n)).as_deref(), Some("203.0.113.5"));
    let internal = pool(json!({"publicAddress": {"source": "NodeInternalIP"}}));
    assert_eq!(advertised_address(&internal, Some(&n)).as_deref(), Some("10.0.0.5"));
    let fixed = pool(json!({"publicAddress": {"source": "Static", "staticAddresses": ["198.51.100.9"]}}));
    assert_eq!(advertised_address(&fixed, Some(&n)).as_deref(), Some("198.51.100.9"));
    let stun = pool(json!({"publicAddress": {"source": "STUN", "stunServer": "stun:3478"}}));
    assert_eq!(advertised_address(&stun, Some(&n)), None, "discovered by the bridge itself");
    // A cloud-less node has no ExternalIP: no address, never a wrong one.
    assert_eq!(advertised_address(&pool(json!({})), Some(&node("n2", "10.0.0.6", None))), None);
    assert_eq!(pool(json!({})).spec.public_address.source, AddressSource::NodeExternalIp);
}

#[test]
fn bridges_are_listed_in_ordinal_order_with_node_address_and_readiness() {
    let p = pool(json!({"publicAddress": {"source": "NodeInternalIP"}}));
    let pods = vec![
        pod("p-bridge-10", Some("n2"), true, None),
        pod("p-bridge-2", Some("n1"), false, None),
        pod("p-bridge-3", None, false, Some("0/2 nodes are available")),
    ];
    let nodes = vec![node("n1", "10.0.0.1", None), node("n2", "10.0.0.2", None)];
    let states = bridge_states(&p, &pods, &nodes);
    let names: Vec<&str> = states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["p-bridge-2", "p-bridge-3", "p-bridge-10"]);
    assert_eq!(states[0].address.as_deref(), Some("10.0.0.1"));
    assert!(!states[0].ready);
    assert_eq!(states[1].node, None);
    assert_eq!(states[2].address.as_deref(), Some("10.0.0.2"));
    assert!(states[2].ready);
}

#[test]
fn unschedulable_pods_make_the_pool_degraded_with_the_schedulers_reason() {
    let p = pool(json!({"replicas": 3, "publicAddress": {"source": "NodeInternalIP"}}));
    let pods = vec![
        pod("p-bridge-0", Some("n1"), true, None),
        pod("p-bridge-1", None, false, Some("0/1 nodes are available: 1 node(s) didn't have free ports")),
    ];
    let nodes = vec![node("n1", "10.0.0.1", None)];
    let h = health(&p, 3, &sts(2, 1), &pods, &bridge_states(&p, &pods, &nodes), None);
    assert!(h.degraded.status);
    assert_eq!(h.degraded.reason, "Unschedulable");
    assert!(h.degraded.message.contains("didn't have free ports"), "{}", h.degraded.message);
    assert!(h.progressing.status, "1 of 3 is still progressing");
    assert!(h.ready.status, "one bridge can take conferences");
    assert_eq!(h.ready.reason, "SomeBridgesReady");
}

#[test]
fn a_node_without_the_advertised_address_is_called_out() {
    let p = pool(json!({"replicas": 1}));
    let pods = vec![pod("p-bridge-0", Some("n1"), true, None)];
    let nodes = vec![node("n1", "10.0.0.1", None)];
    let h = health(&p, 1, &sts(1, 1), &pods, &bridge_states(&p, &pods, &nodes), None);
    assert!(h.degraded.status);
    assert_eq!(h.degraded.reason, "NoAdvertisedAddress");
    assert!(h.degraded.message.contains("n1") && h.degraded.message.contains("publicAddress.source"));
    assert!(
        h.degraded.message.contains("no NodeExternalIP address"),
        "as the spec spells it: {}",
        h.degraded.message
    );
}

#[test]
fn a_rolled_out_pool_is_ready_stable_and_not_degraded() {
    let p = pool(json!({"replicas": 2, "publicAddress": {"source": "NodeInternalIP"}}));
    let pods = vec![pod("p-bridge-0", Some("n1"), true, None), pod("p-bridge-1", Some("n2"), true, None)];
    let nodes = vec![node("n1", "10.0.0.1", None), node("n2", "10.0.0.2", None)];
    let h = health(&p, 2, &sts(2, 2), &pods, &bridge_states(&p, &pods, &nodes), None);
    assert!(h.ready.status && !h.progressing.status && !h.degraded.status, "{h:?}");
    let zero = health(&p, 0, &sts(0, 0), &[] as &[Pod], &[], None);
    assert!(!zero.ready.status);
    assert_eq!(zero.ready.reason, "ScaledToZero");
}

#[test]
fn bridges_left_on_another_version_after_a_rollout_are_called_out() {
    let p = pool(json!({"replicas": 2, "publicAddress": {"source": "NodeInternalIP"}}));
    let pods = vec![pod("p-bridge-0", Some("n1"), true, None), pod("p-bridge-1", Some("n2"), true, None)];
    let nodes = vec![node("n1", "10.0.0.1", None), node("n2", "10.0.0.2", None)];
    let mut states = bridge_states(&p, &pods, &nodes);
    states[0].version = Some("1.2".into());
    states[1].version = Some("1.3".into());
    let h = health(&p, 2, &sts(2, 2), &pods, &states, None);
    assert!(h.degraded.status);
    assert_eq!(h.degraded.reason, "MixedVersions");
    assert!(h.degraded.message.contains("1.2 (p-bridge-0), 1.3 (p-bridge-1)"), "{}", h.degraded.message);
    // While a rollout runs, two versions are expected.
    let rolling = health(&p, 2, &sts(2, 2), &pods, &states, Some("replacing p-bridge-0".into()));
    assert!(!rolling.degraded.status);
}

// ---- clients' ICE reports (issue 15 item 5) --------------------------------------------------

use convene_operator::crd::bridgepool::{BridgeIce, BridgeState};
use convene_operator::reconcile::bridgepool::ice_health;

/// A running, ready pool of `n` bridges on nodes n0.. with internal addresses 10.0.0.<i>.
fn ready_pool(n: usize, extra: serde_json::Value) -> (BridgePool, Vec<Pod>, Vec<BridgeState>) {
    let mut spec = json!({"replicas": n, "publicAddress": {"source": "NodeInternalIP"}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    let p = pool(spec);
    let pods: Vec<Pod> =
        (0..n).map(|i| pod(&format!("p-bridge-{i}"), Some(&format!("n{i}")), true, None)).collect();
    let nodes: Vec<Node> = (0..n).map(|i| node(&format!("n{i}"), &format!("10.0.0.{i}"), None)).collect();
    let states = bridge_states(&p, &pods, &nodes);
    (p, pods, states)
}

fn ice(connected: i64, relayed: i64, failed: i64) -> Option<BridgeIce> {
    Some(BridgeIce { connected, relayed, failed })
}

#[test]
fn one_bridge_clients_cannot_reach_among_good_ones_is_named_with_what_to_check() {
    let (p, pods, mut states) = ready_pool(3, json!({"ports": {"media": 10500}}));
    states[0].ice = ice(12, 1, 0);
    states[1].ice = ice(0, 0, 4);
    states[2].ice = ice(7, 0, 1);
    let (failing, relay) = ice_health(&p, &states);
    let failing = failing.expect("IceFailing");
    assert_eq!(failing.reason, "IceFailing");
    let m = &failing.message;
    for want in [
        "bridge p-bridge-1",
        "node n1",
        "advertises 10.0.0.1",
        "4 failed",
        "UDP port 10500",
        "spec.publicAddress.source NodeInternalIP",
    ] {
        assert!(m.contains(want), "{want:?} in {m}");
    }
    assert!(
        !m.contains("bridge p-bridge-0 ") && !m.contains("bridge p-bridge-2 "),
        "only the bad one is blamed: {m}"
    );
    assert!(relay.is_none(), "1 of 19 relayed");
    // Through health: Degraded with that reason (and so a Warning Event on the change).
    let h = health(&p, 3, &sts(3, 3), &pods, &states, None);
    assert!(h.degraded.status);
    assert_eq!((h.degraded.reason.as_str(), h.degraded.message.as_str()), ("IceFailing", m.as_str()));
    assert!(h.ready.status, "the other bridges still take conferences");
}

#[test]
fn too_few_failures_or_one_success_is_not_a_failing_bridge() {
    let (p, pods, mut states) = ready_pool(2, json!({}));
    states[0].ice = ice(9, 0, 0);
    states[1].ice = ice(0, 0, 2);
    assert_eq!(ice_health(&p, &states), (None, None), "2 failures are not enough");
    states[1].ice = ice(1, 0, 5);
    assert_eq!(ice_health(&p, &states), (None, None), "a bridge some clients reach is not unreachable");
    // No counts at all (bridges older than the reports, or signaling down): nothing said.
    states[0].ice = None;
    states[1].ice = None;
    assert_eq!(ice_health(&p, &states), (None, None));
    let h = health(&p, 2, &sts(2, 2), &pods, &states, None);
    assert!(!h.degraded.status, "{h:?}");
}

#[test]
fn every_bridge_failing_is_the_pool_not_one_bridge() {
    let (p, _, mut states) = ready_pool(2, json!({}));
    states[0].ice = ice(0, 0, 3);
    states[1].ice = ice(0, 0, 3);
    let (failing, _) = ice_health(&p, &states);
    let failing = failing.expect("a pool-wide failure");
    assert_eq!(failing.reason, "IceFailingEverywhere");
    let m = &failing.message;
    assert!(m.contains("any bridge of the pool") && m.contains("6 peer connection(s) failed"), "{m}");
    assert!(m.contains("p-bridge-0 10.0.0.0") && m.contains("p-bridge-1 10.0.0.1"), "{m}");
    assert!(m.contains("UDP port 10000") && m.contains("TCP 4443") && m.contains("TURN"), "{m}");
    // One client that cannot connect anywhere and retries a few times is not enough.
    states[0].ice = ice(0, 0, 2);
    states[1].ice = ice(0, 0, 2);
    assert_eq!(ice_health(&p, &states).0, None);
    // A single bridge's pool: its failures are the pool's.
    let (p1, _, mut one) = ready_pool(1, json!({}));
    one[0].ice = ice(0, 0, 5);
    assert_eq!(ice_health(&p1, &one).0.map(|o| o.reason), Some("IceFailingEverywhere".to_string()));
}

#[test]
fn relay_share_above_the_threshold_with_enough_connections() {
    let (p, pods, mut states) = ready_pool(2, json!({}));
    states[0].ice = ice(5, 3, 0);
    states[1].ice = ice(5, 3, 0);
    let (_, relay) = ice_health(&p, &states);
    let relay = relay.expect("6 of 10 relayed");
    assert_eq!(relay.reason, "RelayShareHigh");
    let m = &relay.message;
    assert!(m.contains("6 of 10") && m.contains("60%") && m.contains("more than 50%"), "{m}");
    assert!(
        m.contains("UDP port 10000") && m.contains("n0, n1") && m.contains("relayShareWarningPercent"),
        "{m}"
    );
    assert_eq!(health(&p, 2, &sts(2, 2), &pods, &states, None).degraded.reason, "RelayShareHigh");
    // Half is not more than half.
    states[0].ice = ice(5, 2, 0);
    assert_eq!(ice_health(&p, &states).1, None);
    // Too few connections to tell.
    states[0].ice = ice(4, 4, 0);
    states[1].ice = ice(5, 5, 0);
    assert_eq!(ice_health(&p, &states).1, None, "9 connections");
    // The pool's own threshold; 100 never fires.
    states[1].ice = ice(6, 6, 0);
    assert!(ice_health(&p, &states).1.is_some(), "10 of 10");
    let (lenient, _, _) = ready_pool(2, json!({"relayShareWarningPercent": 100}));
    assert_eq!(ice_health(&lenient, &states).1, None);
}

#[test]
fn ice_problems_rank_after_placement_and_address_and_add_their_message() {
    let p = pool(json!({"replicas": 3, "publicAddress": {"source": "NodeInternalIP"}}));
    let pods = vec![
        pod("p-bridge-0", Some("n0"), true, None),
        pod("p-bridge-1", Some("n1"), true, None),
        pod("p-bridge-2", None, false, Some("0/2 nodes are available: 2 node(s) didn't have free ports")),
    ];
    let nodes = vec![node("n0", "10.0.0.0", None), node("n1", "10.0.0.1", None)];
    let mut states = bridge_states(&p, &pods, &nodes);
    states[0].ice = ice(10, 8, 0);
    states[1].ice = ice(0, 0, 3);
    let h = health(&p, 3, &sts(3, 2), &pods, &states, None);
    assert_eq!(h.degraded.reason, "Unschedulable", "the placement problem comes first");
    let m = &h.degraded.message;
    assert!(
        m.contains("didn't have free ports")
            && m.contains("bridge p-bridge-1")
            && m.contains("went through TURN"),
        "{m}"
    );
    // ICE failing outranks a version left behind, which outranks the relay share.
    let pods = &pods[..2];
    let mut states = bridge_states(&p, pods, &nodes);
    states[0].version = Some("1.2".into());
    states[1].version = Some("1.3".into());
    states[0].ice = ice(10, 8, 0);
    states[1].ice = ice(0, 0, 3);
    let h = health(&p, 2, &sts(2, 2), pods, &states, None);
    assert_eq!(h.degraded.reason, "IceFailing");
    assert!(h.degraded.message.contains("1.2 (p-bridge-0), 1.3 (p-bridge-1)"), "{}", h.degraded.message);
    states[1].ice = ice(2, 0, 0);
    assert_eq!(health(&p, 2, &sts(2, 2), pods, &states, None).degraded.reason, "MixedVersions");
    states[0].version = Some("1.3".into());
    assert_eq!(health(&p, 2, &sts(2, 2), pods, &states, None).degraded.reason, "RelayShareHigh");
    // A STUN pool's address is the bridge's own: the message says where to find it.
    let stun =
        pool(json!({"replicas": 2, "publicAddress": {"source": "STUN", "stunServer": "stun.example:3478"}}));
    let mut states = bridge_states(&stun, pods, &nodes);
    states[0].ice = ice(3, 0, 0);
    states[1].ice = ice(0, 0, 3);
    let m = ice_health(&stun, &states).0.expect("IceFailing").message;
    assert!(m.contains("STUN-discovered") && m.contains("advertised_address_info"), "{m}");
}
