//! `Shard`: one signaling/focus unit with its public domain.

use super::common::{LocalRef, SecretKeyRef, WorkloadSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Convene shard: the web app, signaling and conference focus for one public domain, using
/// the BridgePools that name it and optionally a TurnPool and a RecorderPool.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "convene.dev",
    version = "v1alpha1",
    kind = "Shard",
    namespaced,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label: lowercase letters, digits and '-', starting with a letter, no dots (it names Services, StatefulSets and pods)"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: it prefixes the names of the objects the operator creates"),
    validation = Rule::new("!has(self.spec.routing) || !has(self.spec.serving) || !has(self.spec.serving.tlsSecretName)").message("spec.routing cannot be combined with spec.serving.tlsSecretName yet: the signalings of a group ask each other about rooms over plain HTTP inside the cluster"),
    status = "ShardStatus",
    shortname = "shard",
    category = "convene",
    doc = "A Convene shard: web app, signaling and conference focus for one public domain.",
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Group", type_ = "string", json_path = ".spec.routing.group", description = "the group of shards sharing the domain"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Bridges", type_ = "integer", json_path = ".status.bridgesReady", description = "bridges ready across the shard's BridgePools"),
    printcolumn(name = "Conferences", type_ = "integer", json_path = ".status.conferences"),
    printcolumn(name = "Participants", type_ = "integer", json_path = ".status.participants"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain", priority = "1"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = "1", description = "why the shard is (not) ready"),
    printcolumn(name = "Version", type_ = "string", json_path = ".status.version", priority = "1", description = "image tag signaling runs"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    /// Public DNS name users open, for example `meet.example.com`. The web app is served at
    /// `https://<domain>/<room>`.
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')").message("domain must be a lowercase DNS name such as meet.example.com"),
        validation = Rule::new("!isIP(self)").message("domain must be a DNS name, not an IP address: browsers and TLS certificates need a name"),
        validation = Rule::new("self.split('.').all(l, l.size() <= 63)").message("each label of domain (between dots) must be at most 63 characters")
    )]
    #[schemars(length(min = 1, max = 253))]
    pub domain: String,
    /// How the shard is exposed through an Ingress.
    #[serde(default)]
    pub ingress: IngressSpec,
    /// Who may join and create rooms.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Lobby defaults for new rooms.
    #[serde(default)]
    pub lobby: LobbySpec,
    /// Defaults the web app starts with.
    #[serde(default)]
    pub web: WebSpec,
    /// Region of this shard; bridges in the same region are preferred for its conferences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The TurnPool whose relays clients of this shard use when UDP to the bridges is blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_pool_ref: Option<LocalRef>,
    /// The RecorderPool that records this shard's conferences. Recording is off without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorder_pool_ref: Option<LocalRef>,
    /// Image, resources and placement of the signaling pod.
    #[serde(default)]
    pub signaling: WorkloadSpec,
    /// How signaling serves inside the cluster: TLS, and which proxies it trusts for clients'
    /// addresses.
    #[serde(default)]
    pub serving: ServingSpec,
    /// Membership of a group of shards that share one domain: users open any room at the
    /// domain, and signaling sends them to the shard that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingSpec>,
}

/// A Shard in a group. Shards of one namespace naming the same group share `domain`, the
/// Ingress settings and the token settings; each room lives on one of them (rendezvous hashing
/// over the Ready members, a live room stays where it is).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RoutingSpec {
    /// The group's name (a DNS label; it names the group's Service, Ingress and ConfigMap
    /// `<group>-group`).
    #[x_kube(validation = Rule::new("self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("routing.group must be a DNS label: lowercase letters, digits and '-', starting with a letter"))]
    #[schemars(length(min = 1, max = 40))]
    pub group: String,
    /// Take no new rooms; the rooms live here stay until they empty. Set it before removing
    /// a shard from the group.
    #[serde(default)]
    pub draining: bool,
    /// Request header in which the edge names the participant's region (for example a geo
    /// header of the load balancer); bridges in that region are preferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9-]+$')").message("routing.regionHeader must be an HTTP header name (letters, digits, '-')"))]
    #[schemars(length(min = 1, max = 64))]
    pub region_header: Option<String>,
    /// Token claim naming the participant's region (used when the header is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub region_claim: Option<String>,
}

/// How signaling serves inside the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServingSpec {
    /// A Secret (type kubernetes.io/tls, with `ca.crt`) whose certificate signaling serves
    /// HTTPS and WSS with inside the cluster; bridges then dial it over `wss://` and verify it
    /// against `ca.crt`. Off by default (the Ingress terminates TLS). With it, tell your ingress
    /// controller to speak HTTPS to the backend, for example with the ingress annotation
    /// `nginx.ingress.kubernetes.io/backend-protocol: HTTPS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
    /// Proxies (CIDRs such as `10.0.0.0/8`, or addresses) whose `Forwarded` and
    /// `X-Forwarded-For` headers signaling believes for a client's address, which its
    /// per-address limits count. Defaults to the private ranges when the Ingress is enabled
    /// (its controller is then the only peer; without it every client would share its
    /// address), and to none without an Ingress. At most 32 entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(x, isCIDR(x) || isIP(x))").message("trustedProxies entries must be CIDRs (10.0.0.0/8) or IP addresses"))]
    #[schemars(length(max = 32), inner(length(max = 49)))]
    pub trusted_proxies: Option<Vec<String>>,
}

/// Private ranges: the peers an in-cluster ingress controller connects from.
pub const PRIVATE_RANGES: &[&str] =
    &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"];

/// Ingress settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Render an Ingress for the domain. Turn off to expose the signaling Service yourself.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// IngressClass to use; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for the domain (type kubernetes.io/tls). Without it the
    /// Ingress serves plain HTTP, which browsers only allow for camera access on localhost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations on the Ingress, for example cert-manager's issuer or the WebSocket
    /// timeouts of your ingress controller.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for IngressSpec {
    fn default() -> Self {
        Self { enabled: true, class_name: None, tls_secret_name: None, annotations: BTreeMap::new() }
    }
}

/// Authentication and room policy.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// JSON Web Token verification, compatible with the tokens Jitsi deployments issue. Without
    /// it the shard is open: anyone with the URL may create and join rooms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtSpec>,
    /// Whether people without a token may join a room that already exists (someone with a
    /// token opened it).
    #[serde(default = "yes")]
    pub allow_guests: bool,
    /// Whether people without a token may create rooms. Only meaningful with `jwt`.
    #[serde(default)]
    pub allow_anonymous_room_creation: bool,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self { jwt: None, allow_guests: true, allow_anonymous_room_creation: false }
    }
}

/// How tokens are verified. Exactly one key source: a shared secret for HS256 (generated by the
/// operator when not given), public keys for RS256/ES256.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.algorithm == 'HS256' || has(self.publicKeysRef)").message("auth.jwt.publicKeysRef is required for RS256 and ES256"),
    validation = Rule::new("self.algorithm != 'HS256' || !has(self.publicKeysRef)").message("auth.jwt.publicKeysRef is only for RS256/ES256; HS256 uses secretRef"),
    validation = Rule::new("self.algorithm == 'HS256' || !has(self.secretRef)").message("auth.jwt.secretRef is only for HS256; RS256/ES256 use publicKeysRef")
)]
pub struct JwtSpec {
    /// Signature algorithm tokens must use; any other algorithm is refused.
    #[serde(default)]
    pub algorithm: JwtAlgorithm,
    /// Expected `iss` claim (the application that mints tokens).
    #[x_kube(validation = Rule::new("self.size() > 0").message("auth.jwt.issuer must not be empty"))]
    pub issuer: String,
    /// Expected `aud` claim.
    #[x_kube(validation = Rule::new("self.size() > 0").message("auth.jwt.audience must not be empty"))]
    pub audience: String,
    /// HS256 shared secret. When unset the operator generates one in the Secret
    /// `<shard>-jwt` (key `secret`) and never changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// PEM public keys (one or more concatenated) for RS256/ES256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_keys_ref: Option<SecretKeyRef>,
}

pub use convene_proto::config::JwtAlgorithm;

/// Lobby defaults.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LobbySpec {
    /// New rooms start with the lobby on: people wait until a moderator admits them.
    #[serde(default)]
    pub enabled_by_default: bool,
}

/// Web app defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebSpec {
    /// Participants join with their microphone muted.
    #[serde(default)]
    pub start_audio_muted: bool,
    /// Participants join with their camera off.
    #[serde(default)]
    pub start_video_muted: bool,
    /// Highest video resolution (frame height) sent and received: 180, 360, 540, 720 or 1080.
    #[serde(default = "default_max_resolution")]
    #[x_kube(validation = Rule::new("self in [180, 360, 540, 720, 1080]").message("web.maxResolution must be one of 180, 360, 540, 720, 1080"))]
    pub max_resolution: i32,
    /// Video of at most this many recent speakers is forwarded to each participant; -1 for all.
    #[serde(default = "default_last_n")]
    #[x_kube(validation = Rule::new("self == -1 || self >= 1").message("web.lastN must be -1 (all) or at least 1"))]
    pub last_n: i32,
    /// Shared-notes link (an Etherpad-style pad per room) the web app offers: an `https://`
    /// URL template in which `{room}` stands for the URL-encoded room name, e.g.
    /// `https://pad.example.com/p/convene-{room}`. Absent: no notes link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') && self.contains('{room}')").message("web.notesUrl must start with https:// and contain {room}"))]
    #[schemars(length(min = 1, max = 512))]
    pub notes_url: Option<String>,
}

fn default_max_resolution() -> i32 {
    720
}
fn default_last_n() -> i32 {
    20
}
fn yes() -> bool {
    true
}

impl Default for WebSpec {
    fn default() -> Self {
        Self {
            start_audio_muted: false,
            start_video_muted: false,
            max_resolution: default_max_resolution(),
            last_n: default_last_n(),
            notes_url: None,
        }
    }
}

/// Observed state of a Shard.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The URL users open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Bridges ready across the BridgePools of this shard.
    #[serde(default)]
    pub bridges_ready: i32,
    /// Conferences running on the shard's bridges, as last reported by them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conferences: Option<i64>,
    /// Participants (bridge endpoints) in the shard's conferences, as last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<i64>,
    /// The tag of the image signaling runs (the whole image when it has no tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The group this shard is a member of, as this shard's signaling is told it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupStatus>,
}

/// A group's members as one of them sees it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    pub name: String,
    /// Members that take new rooms (Ready, not draining).
    pub ready_members: i32,
    pub members: Vec<GroupMemberStatus>,
    /// Rooms and participants per region (the members' `spec.region`; "" when unset).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<RegionLoad>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionLoad {
    pub region: String,
    pub rooms: i64,
    pub participants: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupMemberStatus {
    pub shard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub ready: bool,
    #[serde(default)]
    pub draining: bool,
    /// Rooms (conferences) live on the member, as its bridges last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<i64>,
}
