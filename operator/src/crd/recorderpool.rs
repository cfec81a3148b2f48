//! `RecorderPool`: recorder workers for one Shard.

use super::common::{LocalRef, WorkloadSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Recorders that join a shard's conferences as hidden participants and write WebM, without a
/// browser or transcoding, several recordings per pod.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "convene.dev",
    version = "v1alpha1",
    kind = "RecorderPool",
    namespaced,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label: lowercase letters, digits and '-', starting with a letter, no dots (it names Services, StatefulSets and pods)"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: it prefixes the names of the objects the operator creates"),
    status = "RecorderPoolStatus",
    shortname = "rp",
    category = "convene",
    doc = "Convene recorders for one Shard.",
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shardRef.name"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Per pod", type_ = "integer", json_path = ".spec.recordingsPerPod"),
    printcolumn(name = "Active", type_ = "integer", json_path = ".status.recordingsActive", description = "recordings capturing now"),
    printcolumn(name = "Free", type_ = "integer", json_path = ".status.capacityFree", description = "recordings that can start now"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Capacity", type_ = "integer", json_path = ".status.capacity", priority = "1", description = "recordings that can run at once"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Degraded\")].reason", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct RecorderPoolSpec {
    /// The Shard whose conferences are recorded (same namespace).
    pub shard_ref: LocalRef,
    /// Number of recorder pods.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,
    /// Recordings one pod runs at once.
    #[serde(default = "default_per_pod")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 200").message("recordingsPerPod must be between 1 and 200"))]
    pub recordings_per_pod: i32,
    /// Where recordings are written.
    pub storage: StorageSpec,
    /// Image, resources and placement of the recorder pods.
    #[serde(default)]
    pub recorder: WorkloadSpec,
    /// Size the pool from its recordings (replaces `replicas` when enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<RecorderAutoscalingSpec>,
}

/// Recorders follow the recordings: enough pods that `headroomPercent` of the capacity stays
/// free; a recorder is drained (no new recordings) and removed only when its recordings
/// ended, or at `drainTimeoutSeconds` (its recordings then continue on another recorder).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct RecorderAutoscalingSpec {
    /// Turn the autoscaler on. When off, `spec.replicas` is used as it is.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewest recorders, however idle (0: none while nobody records; the first recording then
    /// waits for a pod).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("autoscaling.minReplicas must not be negative"))]
    pub min_replicas: i32,
    /// Most recorders, however many recordings.
    #[serde(default = "default_max")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1000").message("autoscaling.maxReplicas must be between 1 and 1000"))]
    pub max_replicas: i32,
    /// Capacity to keep free, in percent, so a recording starts without waiting for a pod.
    #[serde(default = "default_headroom")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 90").message("autoscaling.headroomPercent must be between 0 and 90"))]
    pub headroom_percent: i32,
    /// Recordings must stay fewer this long before a recorder is drained.
    #[serde(default = "default_down_window")]
    #[x_kube(validation = Rule::new("self >= 0").message("autoscaling.scaleDownStabilizationSeconds must not be negative"))]
    pub scale_down_stabilization_seconds: i32,
    /// A draining recorder is removed at the latest this long after its drain began.
    #[serde(default = "default_drain")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 86400").message("autoscaling.drainTimeoutSeconds must be between 0 and 86400"))]
    pub drain_timeout_seconds: i32,
}

fn yes() -> bool {
    true
}
fn default_max() -> i32 {
    10
}
fn default_headroom() -> i32 {
    20
}
fn default_down_window() -> i32 {
    300
}
fn default_drain() -> i32 {
    14_400
}

fn one() -> i32 {
    1
}
fn default_per_pod() -> i32 {
    10
}

/// Exactly one storage backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.volume) != has(self.s3)").message("storage needs exactly one of volume or s3"))]
pub struct StorageSpec {
    /// A PersistentVolumeClaim per recorder pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeStorage>,
    /// S3-compatible object storage; recordings are uploaded when they finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Storage>,
}

/// A volume claimed per recorder pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStorage {
    /// Size of each claim, for example `100Gi`.
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.volume.size must be a quantity greater than zero, such as 100Gi"))]
    #[schemars(length(max = 64))]
    pub size: String,
    /// StorageClass; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// S3-compatible object storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Storage {
    /// Endpoint URL, for example `https://s3.eu-central-1.amazonaws.com` or a MinIO service.
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("storage.s3.endpoint must be an http:// or https:// URL"))]
    pub endpoint: String,
    /// Bucket recordings go to (must not be empty).
    #[x_kube(validation = Rule::new("self.size() > 0").message("storage.s3.bucket must not be empty"))]
    pub bucket: String,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret with keys `accessKeyId` and `secretAccessKey` (same namespace).
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("storage.s3.credentialsSecretName must be the name of a Secret"))]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret_name: String,
}

/// Observed state of a RecorderPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecorderPoolStatus {
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Recorder pods ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Recordings that can run at once across ready pods.
    #[serde(default)]
    pub capacity: i32,
    /// Recordings capturing now, as the recorders report (absent while none answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recordings_active: Option<i32>,
    /// Recordings that could start now: free places of recorders that answer and are not draining.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_free: Option<i32>,
    /// Recorder pods the pool should run (the autoscaler's choice, or `spec.replicas`).
    #[serde(default)]
    pub desired_replicas: i32,
    /// Each recorder pod, as it reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recorders: Vec<RecorderState>,
    /// The last change of size and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<super::bridgepool::ScaleDecisionStatus>,
}

/// One recorder pod.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecorderState {
    pub name: String,
    pub ready: bool,
    /// Recordings capturing (absent: it did not answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<i32>,
    /// Recordings composing or uploading after their capture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finishing: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i32>,
    #[serde(default)]
    pub draining: bool,
    /// Recordings it started, and those that failed, since it started (its own counters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i64>,
}
