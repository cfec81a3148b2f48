//! Pure builders of the Kubernetes objects that run a shard: the same input always gives the
//! same objects, so they are unit-tested without a cluster and applied without spurious writes.

pub mod bridge;
pub mod group;
pub mod meta;
pub mod pod;
pub mod recorder;
pub mod secrets;
pub mod signaling;
pub mod turn;

/// Operator-wide settings the renderers need.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    /// Image with convene-signaling, convene-bridge and convene-recorder.
    pub media_image: String,
    /// coturn image.
    pub turn_image: String,
    /// Namespace the operator runs in (its pods may scrape bridges).
    pub operator_namespace: String,
    /// The ClusterRole bridges are bound to (installed with the operator, see
    /// `bridge::NODE_READER_ROLE`).
    pub node_reader_role: String,
    /// Namespaces whose pods (Prometheus) may scrape the bridges' HTTP port through their
    /// NetworkPolicy.
    pub metrics_namespaces: Vec<String>,
}

impl Default for RenderConfig {
    fn default() -> Self {
        Self {
            media_image: format!("ghcr.io/convene-dev/convene-media:{}", env!("CARGO_PKG_VERSION")),
            turn_image: "docker.io/coturn/coturn:4.6.3".into(),
            operator_namespace: "convene-system".into(),
            node_reader_role: bridge::NODE_READER_ROLE.into(),
            metrics_namespaces: Vec::new(),
        }
    }
}

/// In-cluster DNS name of a shard's signaling Service.
pub fn signaling_host(shard: &str, namespace: &str) -> String {
    format!("{shard}-signaling.{namespace}.svc")
}

/// Port of the signaling HTTP server (web app, `/ws`, `/bridge`).
pub const SIGNALING_PORT: i32 = 8080;

/// Name of the Secret holding a shard's bridge-control secret (key `secret`).
pub fn bridge_control_secret(shard: &str) -> String {
    format!("{shard}-bridge-control")
}
