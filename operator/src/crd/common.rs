//! Types shared by the four custom resources.

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group every Convene resource lives in.
pub const GROUP: &str = "convene.dev";

/// A reference to another object in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
pub struct LocalRef {
    /// Name of the referenced object, in the same namespace.
    #[x_kube(validation = Rule::new("self.size() > 0").message("the name of a reference must not be empty"))]
    pub name: String,
}

/// A key inside a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret, in the same namespace.
    pub name: String,
    /// Key inside the Secret's data.
    pub key: String,
}

/// Where the pods of a pool may run.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.tolerations) || self.tolerations.all(t, !has(t.operator) || t.operator in ['Exists', 'Equal'])").message("placement.tolerations[].operator must be Exists or Equal"),
    validation = Rule::new("!has(self.tolerations) || self.tolerations.all(t, !has(t.effect) || t.effect in ['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'])").message("placement.tolerations[].effect must be NoSchedule, PreferNoSchedule or NoExecute (or empty for all)"),
    validation = Rule::new("!has(self.tolerations) || self.tolerations.all(t, !has(t.operator) || t.operator != 'Exists' || !has(t.value) || t.value == '')").message("placement.tolerations[]: operator Exists takes no value")
)]
pub struct Placement {
    /// Only nodes carrying all of these labels are used (for example a node pool of media
    /// nodes with public addresses).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations, so dedicated (tainted) media nodes can be used; at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub tolerations: Vec<Toleration>,
    /// Priority class of the pods; media pods usually deserve a high one so calls are not
    /// preempted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Settings every workload has: image, resources and placement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.resources) || !has(self.resources.requests) || ['cpu', 'memory'].all(k, !(k in self.resources.requests) || (isQuantity(string(self.resources.requests[k])) && quantity(string(self.resources.requests[k])).isLessThan(quantity('0')) == false))").message("resources.requests.cpu and .memory must be quantities of at least zero, such as 500m or 512Mi"),
    validation = Rule::new("!has(self.resources) || !has(self.resources.limits) || ['cpu', 'memory'].all(k, !(k in self.resources.limits) || (isQuantity(string(self.resources.limits[k])) && quantity(string(self.resources.limits[k])).isLessThan(quantity('0')) == false))").message("resources.limits.cpu and .memory must be quantities of at least zero, such as 2 or 1Gi"),
    validation = Rule::new("!has(self.resources) || !has(self.resources.requests) || !has(self.resources.limits) || ['cpu', 'memory'].all(k, !(k in self.resources.requests) || !(k in self.resources.limits) || !isQuantity(string(self.resources.requests[k])) || !isQuantity(string(self.resources.limits[k])) || quantity(string(self.resources.requests[k])).compareTo(quantity(string(self.resources.limits[k]))) <= 0)").message("resources.requests must not be greater than resources.limits (cpu, memory)")
)]
pub struct WorkloadSpec {
    /// Container image. Defaults to the image the operator was installed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory requests and limits. Defaults suit a small deployment; size them for
    /// production (see the examples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node selection for the pods.
    #[serde(default)]
    pub placement: Placement,
    /// Log level of the program (error, warn, info, debug, trace).
    #[serde(default = "default_log_level")]
    #[schemars(regex(pattern = r"^(error|warn|info|debug|trace)$"))]
    pub log_level: String,
}

pub fn default_log_level() -> String {
    "info".into()
}

// By hand: the schema's default for an omitted block must satisfy its own pattern.
impl Default for WorkloadSpec {
    fn default() -> Self {
        Self { image: None, resources: None, placement: Placement::default(), log_level: default_log_level() }
    }
}
