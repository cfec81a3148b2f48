//! `BridgePool`: the SFU bridges of one Shard, one per node, scaled from their live load.

use super::common::{LocalRef, WorkloadSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pool of SFU media bridges for one Shard. Each bridge runs on its own node with host
/// networking, so the UDP media port a client is told is the node's own.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "convene.dev",
    version = "v1alpha1",
    kind = "BridgePool",
    namespaced,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label: lowercase letters, digits and '-', starting with a letter, no dots (it names Services, StatefulSets and pods)"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: it prefixes the names of the objects the operator creates"),
    status = "BridgePoolStatus",
    shortname = "bp",
    category = "convene",
    doc = "A pool of Convene SFU media bridges for one Shard.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Shard", type_ = "string", json_path = ".spec.shardRef.name"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".status.desiredReplicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Min", type_ = "integer", json_path = ".status.minReplicas", description = "fewest bridges the pool runs (spec.replicas without autoscaling)"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".status.maxReplicas", description = "most bridges the pool runs (spec.replicas without autoscaling)"),
    printcolumn(name = "Endpoints", type_ = "integer", json_path = ".status.load.endpoints"),
    printcolumn(name = "Mbps", type_ = "integer", json_path = ".status.load.mbps"),
    printcolumn(name = "Nodes", type_ = "string", json_path = ".status.bridges[*].node", priority = "1", description = "nodes the bridges run on"),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".status.bridges[*].address", priority = "1", description = "addresses the bridges advertise to clients"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.bridges[*].version", priority = "1", description = "image tag each bridge pod runs (mixed during a rollout)"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct BridgePoolSpec {
    /// The Shard whose conferences these bridges carry (same namespace).
    pub shard_ref: LocalRef,
    /// Region of these bridges; the shard prefers bridges in a participant's region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Number of bridges when autoscaling is off. `kubectl scale`, an HPA or KEDA set this
    /// through the scale subresource.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,
    /// Scaling from the bridges' live endpoint and bitrate load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// Ports each bridge binds on its node.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self.tcpFallback != self.http").message("ports.tcpFallback and ports.http must differ: both are TCP ports on the node"))]
    pub ports: BridgePorts,
    /// How each bridge learns the address it advertises to clients.
    #[serde(default)]
    pub public_address: PublicAddressSpec,
    /// Load one bridge is sized for; the bridge's stress (0..1) is its load against this.
    #[serde(default)]
    pub capacity: BridgeCapacity,
    /// The pool is Degraded (reason `RelayShareHigh`) while more than this percent of the
    /// clients' peer connections to its bridges in the last 10 minutes went through TURN (of at
    /// least 10): UDP to the bridges is probably blocked for many clients. 100 turns this off,
    /// for pools whose clients are expected to come through TURN.
    #[serde(default = "default_relay_share")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("relayShareWarningPercent must be between 1 and 100"))]
    pub relay_share_warning_percent: i32,
    /// Image, resources and placement of the bridge pods.
    #[serde(default)]
    pub bridge: WorkloadSpec,
}

fn one() -> i32 {
    1
}
fn default_relay_share() -> i32 {
    50
}

/// Autoscaling targets. The operator keeps enough bridges that the load per bridge stays under
/// the targets with the given headroom spare.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas must not be greater than autoscaling.maxReplicas"))]
pub struct AutoscalingSpec {
    /// Turn the autoscaler on. When off, `spec.replicas` is used as it is.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fewest bridges, however idle.
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.minReplicas must be at least 1"))]
    pub min_replicas: i32,
    /// Most bridges, however loaded. Usually the number of media nodes.
    #[serde(default = "default_max")]
    #[x_kube(validation = Rule::new("self <= 1000").message("autoscaling.maxReplicas must be at most 1000"))]
    pub max_replicas: i32,
    /// Endpoints (participant connections) one bridge should carry.
    #[serde(default = "default_target_endpoints")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.targetEndpointsPerBridge must be at least 1"))]
    pub target_endpoints_per_bridge: i32,
    /// Media bitrate (in + out, megabits per second) one bridge should carry.
    #[serde(default = "default_target_mbps")]
    #[x_kube(validation = Rule::new("self >= 1").message("autoscaling.targetMbpsPerBridge must be at least 1"))]
    pub target_mbps_per_bridge: i32,
    /// Spare capacity to keep, in percent of the targets (25–35 is what Jitsi operators run
    /// with), so a burst of joins finds room before new bridges are up.
    #[serde(default = "default_headroom")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 90").message("autoscaling.headroomPercent must be between 0 and 90"))]
    pub headroom_percent: i32,
    /// Load must stay above target this long before bridges are added.
    #[serde(default = "default_up_window")]
    #[x_kube(validation = Rule::new("self >= 0").message("autoscaling.scaleUpStabilizationSeconds must not be negative"))]
    pub scale_up_stabilization_seconds: i32,
    /// Load must stay below target this long before a bridge is drained and removed.
    #[serde(default = "default_down_window")]
    #[x_kube(validation = Rule::new("self >= 0").message("autoscaling.scaleDownStabilizationSeconds must not be negative"))]
    pub scale_down_stabilization_seconds: i32,
    /// How long a draining bridge may keep participants before the shard moves them to
    /// another bridge and the bridge is removed.
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
fn default_target_endpoints() -> i32 {
    200
}
fn default_target_mbps() -> i32 {
    500
}
fn default_headroom() -> i32 {
    30
}
fn default_up_window() -> i32 {
    30
}
fn default_down_window() -> i32 {
    300
}
fn default_drain() -> i32 {
    600
}

/// Ports a bridge binds on its node (host networking).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgePorts {
    /// UDP port for all media (ICE, DTLS, SRTP); clients must reach it on the node's address.
    #[serde(default = "default_media_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("ports.media must be between 1024 and 65535"))]
    pub media: i32,
    /// TCP port for clients whose UDP is blocked (ICE-TCP).
    #[serde(default = "default_tcp_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("ports.tcpFallback must be between 1024 and 65535"))]
    pub tcp_fallback: i32,
    /// TCP port of the bridge's HTTP endpoint: metrics, health, readiness and drain. Only
    /// signaling and the operator may reach it.
    #[serde(default = "default_http_port")]
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("ports.http must be between 1024 and 65535"))]
    pub http: i32,
}

fn default_media_port() -> i32 {
    10000
}
fn default_tcp_port() -> i32 {
    4443
}
fn default_http_port() -> i32 {
    8080
}

impl Default for BridgePorts {
    fn default() -> Self {
        Self { media: default_media_port(), tcp_fallback: default_tcp_port(), http: default_http_port() }
    }
}

/// How a bridge finds the address it advertises. A wrong one is the classic "two people can
/// talk, three cannot" failure, so the choice is explicit and reported in the status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.source != 'Static' || (has(self.staticAddresses) && size(self.staticAddresses) > 0)").message("publicAddress.staticAddresses must list at least one address when source is Static"),
    validation = Rule::new("self.source != 'STUN' || has(self.stunServer)").message("publicAddress.stunServer is required when source is STUN")
)]
pub struct PublicAddressSpec {
    /// `NodeExternalIP` (default: the node's ExternalIP), `NodeInternalIP` (nodes reachable
    /// directly, e.g. on a LAN), `Static` (the listed addresses) or `STUN` (asks a STUN server;
    /// only right when the node's egress address is also where UDP arrives).
    #[serde(default)]
    pub source: AddressSource,
    /// Addresses to advertise when `source` is `Static`: IPv4 or IPv6 addresses, at most 32.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 45)))]
    #[x_kube(validation = Rule::new("self.all(a, isIP(a))").message("publicAddress.staticAddresses must be IP addresses such as 203.0.113.10"))]
    pub static_addresses: Vec<String>,
    /// `host:port` of a STUN server when `source` is `STUN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stun_server: Option<String>,
}

pub use convene_proto::bridge::AddressSource;

/// What one bridge is sized for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeCapacity {
    /// Endpoints at which the bridge reports full stress and takes no new conferences.
    #[serde(default = "default_cap_endpoints")]
    #[x_kube(validation = Rule::new("self >= 1").message("capacity.endpoints must be at least 1"))]
    pub endpoints: i32,
    /// Bitrate (in + out, Mbps) at which the bridge reports full stress.
    #[serde(default = "default_cap_mbps")]
    #[x_kube(validation = Rule::new("self >= 1").message("capacity.mbps must be at least 1"))]
    pub mbps: i32,
}

fn default_cap_endpoints() -> i32 {
    400
}
fn default_cap_mbps() -> i32 {
    1000
}

impl Default for BridgeCapacity {
    fn default() -> Self {
        Self { endpoints: default_cap_endpoints(), mbps: default_cap_mbps() }
    }
}

/// Observed state of a BridgePool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgePoolStatus {
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Bridges the pool should run now (what the autoscaler or `spec.replicas` asks for).
    #[serde(default)]
    pub desired_replicas: i32,
    /// The fewest bridges the pool runs: `autoscaling.minReplicas`, or `spec.replicas` when
    /// autoscaling is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    /// The most bridges the pool runs: `autoscaling.maxReplicas`, or `spec.replicas` when
    /// autoscaling is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    /// Bridge pods that exist (for the scale subresource).
    #[serde(default)]
    pub replicas: i32,
    /// Bridges that are ready for new conferences.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the bridge pods (for the scale subresource, HPA and KEDA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Total load across the pool, from the bridges' own reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<PoolLoad>,
    /// Each bridge: where it runs, what it advertises, its load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<BridgeState>,
    /// The last scaling decision and why it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale: Option<ScaleDecisionStatus>,
}

/// Load summed over a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolLoad {
    /// Endpoints on all bridges.
    pub endpoints: i64,
    /// Conferences on all bridges.
    pub conferences: i64,
    /// Media bitrate in + out, Mbps.
    pub mbps: i64,
    /// Bridges that did not answer the last scrape; their load is unknown, not zero.
    pub unknown_bridges: i32,
}

/// One bridge of a pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeState {
    /// Pod name.
    pub name: String,
    /// Node the bridge runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Address clients are told to send media to, as chosen by the pool's address source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether the pod is ready (false while draining).
    pub ready: bool,
    /// Whether the bridge is draining before removal.
    #[serde(default)]
    pub draining: bool,
    /// Endpoints on the bridge at the last scrape; absent when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<i64>,
    /// Media bitrate in + out (Mbps) at the last scrape; absent when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mbps: Option<i64>,
    /// The bridge's stress (0..1) against its capacity; absent when it did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stress: Option<f64>,
    /// The tag of the image the bridge pod runs (the whole image when it has no tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Clients' peer connections to the bridge in the last 10 minutes, as signaling counted the
    /// clients' reports; absent when the bridge did not report them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice: Option<BridgeIce>,
}

/// How clients' ICE went with one bridge (the last 10 minutes).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BridgeIce {
    /// Peer connections that connected.
    pub connected: i64,
    /// Of those, the ones relayed through TURN (the client's side of the selected pair).
    pub relayed: i64,
    /// Peer connections whose ICE failed or that did not connect in time.
    pub failed: i64,
}

impl From<convene_proto::load::IceCounts> for BridgeIce {
    fn from(c: convene_proto::load::IceCounts) -> Self {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Self { connected: n(c.connected), relayed: n(c.relayed), failed: n(c.failed) }
    }
}

/// A scaling decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecisionStatus {
    /// When it was made.
    pub time: Time,
    /// Bridges before.
    pub from: i32,
    /// Bridges after.
    pub to: i32,
    /// Why, in words.
    pub reason: String,
}
