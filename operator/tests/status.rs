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
