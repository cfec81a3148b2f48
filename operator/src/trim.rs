//! What the operator's stores keep of each object: only the fields the reconciles read. A
//! kwok or real node's status (images, conditions, capacity) and a pod's spec and status are
//! most of their size, and the stores hold every managed pod and every node.

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{Container, Node, NodeStatus, Pod, PodSpec, PodStatus, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;

/// Dropped from every cached object: `kubectl apply` copies the whole object into it, a
/// Secret's data included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

pub trait Trim {
    fn trim(&mut self);
}

fn meta(m: &mut ObjectMeta) {
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

macro_rules! meta_only {
    ($($k:ty),*) => {$(
        impl Trim for $k {
            fn trim(&mut self) {
                meta(&mut self.metadata);
            }
        }
    )*};
}
meta_only!(crate::crd::Shard, crate::crd::BridgePool, crate::crd::TurnPool, crate::crd::RecorderPool);

impl<K> Trim for PartialObjectMeta<K> {
    fn trim(&mut self) {
        meta(&mut self.metadata);
    }
}

/// Containers keep their name and image (the version the pool reports).
fn containers(cs: &[Container]) -> Vec<Container> {
    cs.iter()
        .map(|c| Container { name: c.name.clone(), image: c.image.clone(), ..Container::default() })
        .collect()
}

impl Trim for Pod {
    fn trim(&mut self) {
        meta(&mut self.metadata);
        if let Some(s) = self.spec.as_mut() {
            *s = PodSpec {
                node_name: s.node_name.take(),
                containers: containers(&s.containers),
                ..PodSpec::default()
            };
        }
        if let Some(s) = self.status.as_mut() {
            *s = PodStatus {
                phase: s.phase.take(),
                pod_ip: s.pod_ip.take(),
                conditions: s.conditions.take(),
                ..PodStatus::default()
            };
        }
    }
}

impl Trim for StatefulSet {
    fn trim(&mut self) {
        meta(&mut self.metadata);
        if let Some(s) = self.spec.as_mut() {
            let template = PodTemplateSpec {
                metadata: None,
                spec: s
                    .template
                    .spec
                    .as_ref()
                    .map(|p| PodSpec { containers: containers(&p.containers), ..PodSpec::default() }),
            };
            *s = StatefulSetSpec {
                replicas: s.replicas,
                selector: std::mem::take(&mut s.selector),
                service_name: s.service_name.take(),
                template,
                ..StatefulSetSpec::default()
            };
        }
    }
}

impl Trim for Node {
    fn trim(&mut self) {
        meta(&mut self.metadata);
        self.metadata.annotations = None;
        self.spec = None;
        if let Some(s) = self.status.as_mut() {
            *s = NodeStatus { addresses: s.addresses.take(), ..NodeStatus::default() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_keep_what_the_reconciles_read() {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "b-0", "labels": {"a": "b"}, "annotations": {
                "convene.dev/draining": "true", LAST_APPLIED: "{}"},
                "managedFields": [{"manager": "x"}]},
            "spec": {"nodeName": "n1", "containers": [{"name": "bridge", "image": "img:1.2",
                "args": ["--x"], "env": [{"name": "A", "value": "B"}]}],
                "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "bridge", "image": "img:1.2", "imageID": "x",
                    "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        pod.trim();
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "b-0", "labels": {"a": "b"},
                    "annotations": {"convene.dev/draining": "true"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "bridge", "image": "img:1.2"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": "True"}]}
            })
        );
    }

    #[test]
    fn nodes_keep_their_addresses_only() {
        let mut node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"l": "v"}, "annotations": {"big": "x"}},
            "spec": {"podCIDR": "10.0.0.0/24"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}],
                "images": [{"names": ["a"], "sizeBytes": 1}], "capacity": {"cpu": "2"}}
        }))
        .unwrap();
        node.trim();
        assert_eq!(
            serde_json::to_value(&node).unwrap(),
            serde_json::json!({"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n1", "labels": {"l": "v"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}]}})
        );
    }
}
