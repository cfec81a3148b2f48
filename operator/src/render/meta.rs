//! Names, labels and owner references shared by every rendered object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// The one field manager every server-side apply of the operator uses.
pub const FIELD_MANAGER: &str = "convene-operator";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "convene-operator";
pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const SHARD: &str = "convene.dev/shard";
/// The kind and name of the custom resource a child belongs to; orphans are found with these.
pub const OWNER_KIND: &str = "convene.dev/owner-kind";
pub const OWNER_NAME: &str = "convene.dev/owner";

/// What a child is for; also the suffix of its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    Signaling,
    Bridge,
    Turn,
    Recorder,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signaling => "signaling",
            Self::Bridge => "bridge",
            Self::Turn => "turn",
            Self::Recorder => "recorder",
        }
    }
}

/// The owner of a set of children: a custom resource, seen through what rendering needs.
#[derive(Clone, Debug)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    pub namespace: String,
    pub shard: String,
    pub component: Component,
    pub reference: OwnerReference,
}

impl Owner {
    /// `shard` is the shard the owner serves (the owner itself for a Shard; none for a shared
    /// TurnPool, which passes its own name).
    pub fn new<K: Resource<DynamicType = ()>>(obj: &K, shard: &str, component: Component) -> Self {
        Self {
            kind: K::kind(&()).to_string(),
            name: obj.name_any(),
            namespace: obj.namespace().unwrap_or_default(),
            shard: shard.to_string(),
            component,
            reference: obj.controller_owner_ref(&()).unwrap_or_default(),
        }
    }

    /// `<owner>-<component>`, the name of the main children.
    pub fn child_name(&self) -> String {
        format!("{}-{}", self.name, self.component.as_str())
    }

    /// Labels that select this owner's pods; stable for the life of the owner.
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME.to_string(), "convene".to_string()),
            (INSTANCE.to_string(), self.name.clone()),
            (COMPONENT.to_string(), self.component.as_str().to_string()),
        ])
    }

    /// Labels on every child: the selector plus ownership and shard.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(MANAGED_BY.into(), MANAGED_BY_VALUE.into());
        labels.insert(OWNER_KIND.into(), self.kind.to_lowercase());
        labels.insert(OWNER_NAME.into(), self.name.clone());
        labels.insert(SHARD.into(), self.shard.clone());
        labels
    }

    /// The labels that find every child of this owner.
    pub fn children_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
            (OWNER_KIND.to_string(), self.kind.to_lowercase()),
            (OWNER_NAME.to_string(), self.name.clone()),
        ])
    }

    /// Metadata of a namespaced child owned (and garbage-collected) through this owner.
    pub fn meta(&self, name: impl Into<String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.reference.clone()]),
            ..ObjectMeta::default()
        }
    }
}
