//! `TurnPool`: coturn relays, shareable by several Shards.

use super::common::WorkloadSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Private, link-local, loopback and shared address ranges a relayed client must never reach
/// (the cluster's own nodes and Services live there), unless they are a bridge's address.
pub const DEFAULT_DENIED_PEER_RANGES: &[&str] = &[
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "240.0.0.0-255.255.255.255",
    "::1",
    "64:ff9b::-64:ff9b::ffff:ffff",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/// TURN relays (coturn), one per node with host networking, so each relay is addressed
/// directly and never sits behind a load balancer.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "convene.dev",
    version = "v1alpha1",
    kind = "TurnPool",
    namespaced,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name must be a DNS label: lowercase letters, digits and '-', starting with a letter, no dots (it names Services, StatefulSets and pods)"),
    validation = Rule::new("self.metadata.name.size() <= 40").message("metadata.name must be at most 40 characters: it prefixes the names of the objects the operator creates"),
    status = "TurnPoolStatus",
    shortname = "tp",
    category = "convene",
    doc = "TURN relays (coturn) for Convene shards.",
    printcolumn(name = "Realm", type_ = "string", json_path = ".spec.realm"),
    printcolumn(name = "Desired", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".status.addresses", priority = "1", description = "relay addresses handed to clients"),
    printcolumn(name = "Image", type_ = "string", json_path = ".spec.turn.image", priority = "1"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.relayPorts.min <= self.relayPorts.max").message("relayPorts.min must not be greater than relayPorts.max"),
    validation = Rule::new("!has(self.ports.tls) || has(self.tlsSecretName)").message("ports.tls needs tlsSecretName: coturn cannot serve TLS without a certificate"),
    validation = Rule::new("!self.ports.tls443 || has(self.tlsSecretName)").message("ports.tls443 needs tlsSecretName: coturn cannot serve TLS without a certificate"),
    validation = Rule::new("self.ports.listening < self.relayPorts.min || self.ports.listening > self.relayPorts.max").message("ports.listening must lie outside the relay port range"),
    validation = Rule::new("!has(self.ports.tls) || self.ports.tls < self.relayPorts.min || self.ports.tls > self.relayPorts.max").message("ports.tls must lie outside the relay port range"),
    validation = Rule::new("!has(self.ports.tls) || self.ports.tls != self.ports.listening").message("ports.tls and ports.listening must differ"),
    validation = Rule::new("!self.ports.tls443 || (self.ports.listening != 443 && (!has(self.ports.tls) || self.ports.tls != 443))").message("ports.tls443 already serves TLS on 443: ports.listening and ports.tls must not be 443")
)]
pub struct TurnPoolSpec {
    /// Number of relays (one per node).
    #[serde(default = "one")]
    #[x_kube(validation = Rule::new("self >= 0").message("replicas must not be negative"))]
    pub replicas: i32,
    /// TURN realm, usually the shard's domain.
    #[x_kube(validation = Rule::new("self.size() > 0").message("realm must not be empty"))]
    pub realm: String,
    /// Listening ports.
    #[serde(default)]
    pub ports: TurnPorts,
    /// Secret (type kubernetes.io/tls) with the certificate for TURNS. Needed for clients on
    /// networks that only let HTTPS out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// UDP ports relays allocate for relayed traffic.
    #[serde(default)]
    pub relay_ports: PortRange,
    /// How long the ephemeral credentials that signaling hands out stay valid.
    #[serde(default = "default_lifetime")]
    #[x_kube(validation = Rule::new("self >= 60 && self <= 604800").message("credentialLifetimeSeconds must be between 60 and 604800"))]
    pub credential_lifetime_seconds: i32,
    /// More peer addresses relays refuse, added to the default private, loopback and
    /// link-local ranges (which always stay denied). Each entry is an address, a CIDR such as
    /// `10.0.0.0/8`, or a range `a.b.c.d-e.f.g.h`; at most 64. Bridges' own addresses are
    /// always allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 100)))]
    #[x_kube(validation = Rule::new("self.all(r, isIP(r) || isCIDR(r) || (r.split('-').size() == 2 && r.split('-').all(p, isIP(p))))").message("deniedPeerRanges entries must be IP addresses, CIDRs such as 10.0.0.0/8, or ranges such as 10.0.0.1-10.0.0.9"))]
    pub denied_peer_ranges: Option<Vec<String>>,
    /// Peer addresses relays may reach despite the denied ranges: addresses, CIDRs or ranges
    /// `a.b.c.d-e.f.g.h`; at most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(max = 100)))]
    #[x_kube(validation = Rule::new("self.all(r, isIP(r) || isCIDR(r) || (r.split('-').size() == 2 && r.split('-').all(p, isIP(p))))").message("allowedPeerRanges entries must be IP addresses, CIDRs such as 192.0.2.0/24, or ranges such as 192.0.2.1-192.0.2.9"))]
    pub allowed_peer_ranges: Vec<String>,
    /// Image, resources and placement of the coturn pods. The image defaults to
    /// `coturn/coturn`.
    #[serde(default)]
    pub turn: WorkloadSpec,
}

fn one() -> i32 {
    1
}
fn default_lifetime() -> i32 {
    86400
}

/// coturn's listening ports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnPorts {
    /// Plain TURN/STUN port, UDP and TCP.
    #[serde(default = "default_listening")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("ports.listening must be between 1 and 65535"))]
    pub listening: i32,
    /// TURN over TLS port (needs `tlsSecretName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("ports.tls must be between 1 and 65535"))]
    pub tls: Option<i32>,
    /// Also serve TURN over TLS on 443, for networks that only allow HTTPS.
    #[serde(default)]
    pub tls443: bool,
}

fn default_listening() -> i32 {
    3478
}

impl Default for TurnPorts {
    fn default() -> Self {
        Self { listening: default_listening(), tls: None, tls443: false }
    }
}

/// An inclusive port range.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
pub struct PortRange {
    /// First port.
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("relayPorts.min must be between 1024 and 65535"))]
    pub min: i32,
    /// Last port.
    #[x_kube(validation = Rule::new("self >= 1024 && self <= 65535").message("relayPorts.max must be between 1024 and 65535"))]
    pub max: i32,
}

impl Default for PortRange {
    fn default() -> Self {
        Self { min: 49152, max: 65535 }
    }
}

/// Observed state of a TurnPool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnPoolStatus {
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Relays ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Addresses of the relays' nodes, which signaling hands to clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// Bridge addresses the relays are allowed to reach despite the denied ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_bridge_addresses: Vec<String>,
}
