//! Every API call the operator makes, as RBAC rules: the Helm chart must grant exactly these
//! (`charts/convene/templates/rbac.yaml`). The cluster tier checks each one against the
//! chart's ServiceAccount with `kubectl auth can-i`, and runs the operator with that account.

/// Where a permission is needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-scoped objects.
    Cluster,
    /// In every watched namespace.
    Watched,
    /// In the operator's own namespace (leader Lease).
    Own,
}

/// One permission: API group, resource (with subresource), verbs, where.
pub struct Need {
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub scope: Scope,
    /// Why the code needs it.
    pub why: &'static str,
}

const fn need(
    group: &'static str,
    resource: &'static str,
    verbs: &'static [&'static str],
    scope: Scope,
    why: &'static str,
) -> Need {
    Need { group, resource, verbs, scope, why }
}

/// What the code calls. Keep in step with the reconcilers; the chart grants these and no more.
pub const NEEDS: &[Need] = &[
    need("", "nodes", &["get", "list", "watch"], Scope::Cluster, "bridge and relay addresses"),
    need(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        &["get", "create", "patch", "delete"],
        Scope::Cluster,
        "a binding per BridgePool to the node-reader ClusterRole; the finalizer deletes it",
    ),
    need("convene.dev", "shards", &["get", "list", "watch"], Scope::Watched, "controllers"),
    need("convene.dev", "bridgepools", &["get", "list", "watch", "patch"], Scope::Watched, "finalizer"),
    need("convene.dev", "turnpools", &["get", "list", "watch"], Scope::Watched, "controllers"),
    need("convene.dev", "recorderpools", &["get", "list", "watch"], Scope::Watched, "controllers"),
    need(
        "convene.dev",
        "shards/finalizers",
        &["update"],
        Scope::Watched,
        "children's owner references block deletion (OwnerReferencesPermissionEnforcement)",
    ),
    need("convene.dev", "bridgepools/finalizers", &["update"], Scope::Watched, "as for shards"),
    need("convene.dev", "turnpools/finalizers", &["update"], Scope::Watched, "as for shards"),
    need("convene.dev", "recorderpools/finalizers", &["update"], Scope::Watched, "as for shards"),
    need("convene.dev", "shards/status", &["patch"], Scope::Watched, "status"),
    need("convene.dev", "bridgepools/status", &["patch"], Scope::Watched, "status"),
    need("convene.dev", "turnpools/status", &["patch"], Scope::Watched, "status"),
    need("convene.dev", "recorderpools/status", &["patch"], Scope::Watched, "status"),
    need(
        "apps",
        "statefulsets",
        &["get", "list", "watch", "create", "patch", "delete"],
        Scope::Watched,
        "workloads",
    ),
    need("", "services", &["create", "patch"], Scope::Watched, "signaling and bridge Services"),
    need("", "configmaps", &["create", "patch"], Scope::Watched, "signaling and coturn config"),
    need("", "serviceaccounts", &["create", "patch"], Scope::Watched, "bridge ServiceAccount"),
    need(
        "",
        "secrets",
        &["get", "list", "watch", "create"],
        Scope::Watched,
        "generated secrets; referenced ones checked and watched (metadata)",
    ),
    need("", "pods", &["get", "list", "watch", "patch", "delete"], Scope::Watched, "drain and rollout"),
    need(
        "networking.k8s.io",
        "ingresses",
        &["list", "watch", "create", "patch", "delete"],
        Scope::Watched,
        "signaling Ingress; managed ones watched (metadata) to delete a disabled one",
    ),
    need("networking.k8s.io", "networkpolicies", &["create", "patch"], Scope::Watched, "bridge HTTP port"),
    need("policy", "poddisruptionbudgets", &["create", "patch"], Scope::Watched, "bridge PDB"),
    need("events.k8s.io", "events", &["create", "patch"], Scope::Watched, "Events"),
    need("coordination.k8s.io", "leases", &["get", "create", "patch"], Scope::Own, "leader election"),
];

/// `kubectl auth can-i` arguments: `resource.group` and `--subresource=<sub>` when there is one.
pub fn can_i_args(n: &Need) -> Vec<String> {
    let (res, sub) = match n.resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (n.resource, None),
    };
    let mut out = vec![if n.group.is_empty() { res.to_string() } else { format!("{res}.{}", n.group) }];
    if let Some(s) = sub {
        out.push(format!("--subresource={s}"));
    }
    out
}
