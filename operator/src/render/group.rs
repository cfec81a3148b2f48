//! A group of Shards sharing one domain: the membership every member's signaling reads, the
//! Service and Ingress that take users to any member, and what members must agree on. Pure:
//! the members are passed in (from the Shard store), sorted by name.
//!
//! Every member renders the same group objects from the same members, so whichever reconciles
//! last writes what the others would; each object is owned by all members and goes with the
//! last of them.

use super::meta::{MANAGED_BY, MANAGED_BY_VALUE};
use super::{SIGNALING_PORT, signaling_host};
use crate::crd::Shard;
use crate::crd::shard::{GroupMemberStatus, GroupStatus, RegionLoad};
use convene_proto::paths;
use convene_proto::routing::{GROUP_MEMBERSHIP_FILE, GroupMember, GroupMembership};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
    IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

/// Label on the group's objects and on its members' signaling pods (the group Service's
/// selector).
pub const GROUP: &str = "convene.dev/group";

/// Name of the group's ConfigMap, Service, Ingress and generated secrets' prefix.
pub fn name(group: &str) -> String {
    format!("{group}-group")
}

/// The group secret signalings present to each other (key `secret`).
pub fn secret_name(group: &str) -> String {
    format!("{group}-group-secret")
}

/// The HS256 token secret members without `auth.jwt.secretRef` share (key `secret`).
pub fn jwt_secret_name(group: &str) -> String {
    format!("{group}-group-jwt")
}

pub fn group_of(shard: &Shard) -> Option<&str> {
    shard.spec.routing.as_ref().map(|r| r.group.as_str())
}

/// The Shards of `shard`'s group in its namespace (itself included), by name; being deleted
/// ones are no longer members.
pub fn members<'a>(shard: &Shard, all: &'a [std::sync::Arc<Shard>]) -> Vec<&'a Shard> {
    let Some(group) = group_of(shard) else { return vec![] };
    let mut v: Vec<&Shard> = all
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| s.namespace() == shard.namespace() && group_of(s) == Some(group))
        .filter(|s| s.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by_key(|s| s.name_any());
    v
}

/// The Shard reports itself Ready (its last status).
pub fn ready(shard: &Shard) -> bool {
    let conds = shard.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    conds.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Pure: the membership file of the group, as every member's signaling reads it.
pub fn membership(group: &str, members: &[&Shard]) -> GroupMembership {
    let member = |s: &&Shard| {
        let name = s.name_any();
        let ns = s.namespace().unwrap_or_default();
        let ws = if s.spec.ingress.tls_secret_name.is_some() { "wss" } else { "ws" };
        GroupMember {
            url: format!("{ws}://{}{}", s.spec.domain, paths::shard_ws_path(&name)),
            // Plain HTTP inside the cluster (admission refuses a group member serving TLS).
            internal_url: format!("http://{}:{SIGNALING_PORT}", signaling_host(&name, &ns)),
            ready: ready(s),
            draining: s.spec.routing.as_ref().is_some_and(|r| r.draining),
            region: s.spec.region.clone(),
            shard: name,
        }
    };
    GroupMembership { group: group.to_string(), members: members.iter().map(member).collect() }
}

/// Pure: the group as the shard's status shows it.
pub fn status(membership: &GroupMembership, members: &[&Shard]) -> GroupStatus {
    let load = |name: &str| members.iter().find(|s| s.name_any() == name).and_then(|s| s.status.as_ref());
    let members: Vec<GroupMemberStatus> = membership
        .members
        .iter()
        .map(|m| GroupMemberStatus {
            shard: m.shard.clone(),
            region: m.region.clone(),
            ready: m.ready,
            draining: m.draining,
            rooms: load(&m.shard).and_then(|s| s.conferences),
            participants: load(&m.shard).and_then(|s| s.participants),
        })
        .collect();
    let mut regions: BTreeMap<String, RegionLoad> = BTreeMap::new();
    for m in &members {
        let region = m.region.clone().unwrap_or_default();
        let r = regions.entry(region.clone()).or_insert(RegionLoad { region, ..Default::default() });
        r.rooms += m.rooms.unwrap_or(0);
        r.participants += m.participants.unwrap_or(0);
    }
    GroupStatus {
        name: membership.group.clone(),
        ready_members: membership.members.iter().filter(|m| m.eligible()).count() as i32,
        members,
        regions: regions.into_values().collect(),
    }
}

/// One setting members must share, read from a Shard.
type Field = fn(&Shard) -> String;

/// Pure: the members that agree with the group's oldest member on what one domain needs
/// (domain, Ingress, token settings), by name, and the others with why. A member that
/// disagrees is left out of the group, so that one wrong Shard cannot take the others down.
pub fn split<'a>(members: &[&'a Shard]) -> (Vec<&'a Shard>, Vec<(&'a Shard, String)>) {
    let Some(first) = members.iter().min_by_key(|s| (s.metadata.creation_timestamp.clone(), s.name_any()))
    else {
        return (vec![], vec![]);
    };
    let fields: [(&str, Field); 5] = [
        ("spec.domain", |s| s.spec.domain.clone()),
        ("spec.ingress.enabled", |s| s.spec.ingress.enabled.to_string()),
        ("spec.ingress.className", |s| s.spec.ingress.class_name.clone().unwrap_or_default()),
        ("spec.ingress.tlsSecretName", |s| s.spec.ingress.tls_secret_name.clone().unwrap_or_default()),
        // A token one member accepts must pass on the member its user is sent to.
        ("spec.auth", |s| serde_json::to_string(&s.spec.auth).unwrap_or_default()),
    ];
    let (mut ok, mut refused) = (vec![], vec![]);
    for s in members {
        let odd: Vec<String> = fields
            .iter()
            .filter(|(_, value)| value(s) != value(first))
            .map(|(field, value)| format!("{field} ({:?}, the group's is {:?})", value(s), value(first)))
            .collect();
        match odd.is_empty() {
            true => ok.push(*s),
            false => refused.push((
                *s,
                format!(
                    "left out of group {}: {} differ(s) from {}, the group's first member; members share them",
                    group_of(s).unwrap_or_default(),
                    odd.join(", "),
                    first.name_any()
                ),
            )),
        }
    }
    (ok, refused)
}

/// A generated secret of the group (created once), owned by its members at the time.
pub fn secret(group: &str, namespace: &str, members: &[&Shard], name: &str, value: &str) -> Secret {
    let mut m = meta(group, namespace, members);
    m.name = Some(name.to_string());
    super::secrets::with_meta(m, value)
}

/// Metadata of a group object: owned by every member (garbage-collected with the last).
fn meta(group: &str, namespace: &str, members: &[&Shard]) -> ObjectMeta {
    let owners: Vec<OwnerReference> = members
        .iter()
        .filter_map(|s| {
            let mut r = s.object_ref(&()).uid.map(|uid| OwnerReference {
                api_version: Shard::api_version(&()).to_string(),
                kind: Shard::kind(&()).to_string(),
                name: s.name_any(),
                uid,
                ..Default::default()
            })?;
            r.block_owner_deletion = Some(true);
            Some(r)
        })
        .collect();
    ObjectMeta {
        name: Some(name(group)),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.to_string(), MANAGED_BY_VALUE.to_string()),
            (GROUP.to_string(), group.to_string()),
        ])),
        owner_references: Some(owners),
        ..Default::default()
    }
}

/// Everything a group renders to.
#[derive(Clone, Debug)]
pub struct GroupObjects {
    pub config_map: ConfigMap,
    pub service: Service,
    pub ingress: Option<Ingress>,
}

/// Pure: the group's objects from its members (by name) and their membership.
pub fn render(
    group: &str,
    namespace: &str,
    members: &[&Shard],
    membership: &GroupMembership,
) -> GroupObjects {
    let json = serde_json::to_string_pretty(membership).unwrap_or_default();
    let selector = BTreeMap::from([
        (GROUP.to_string(), group.to_string()),
        (super::meta::COMPONENT.to_string(), "signaling".to_string()),
    ]);
    GroupObjects {
        config_map: ConfigMap {
            metadata: meta(group, namespace, members),
            data: Some(BTreeMap::from([(GROUP_MEMBERSHIP_FILE.to_string(), json)])),
            ..Default::default()
        },
        service: super::signaling::service(meta(group, namespace, members), selector),
        ingress: members
            .first()
            .filter(|s| s.spec.ingress.enabled)
            .map(|first| ingress(group, namespace, first, members)),
    }
}

fn backend(service: String) -> IngressBackend {
    IngressBackend {
        service: Some(IngressServiceBackend {
            name: service,
            port: Some(ServiceBackendPort { name: Some("http".into()), ..Default::default() }),
        }),
        ..Default::default()
    }
}

/// The domain's Ingress: the app, rooms and first WebSocket at any member (the group
/// Service); `/_shard/<shard>/` at that member, where signaling redirects a room's users.
fn ingress(group: &str, namespace: &str, first: &Shard, members: &[&Shard]) -> Ingress {
    let ing = &first.spec.ingress;
    let path = |p: String, kind: &str, service: String| HTTPIngressPath {
        path: Some(p),
        path_type: kind.into(),
        backend: backend(service),
    };
    let mut paths = vec![
        path(paths::SIGNALING_CLIENT_WS.into(), "Exact", name(group)),
        path("/".into(), "Prefix", name(group)),
    ];
    for s in members {
        let shard = s.name_any();
        paths.push(path(format!("{}{shard}", paths::SHARD_PREFIX), "Prefix", format!("{shard}-signaling")));
    }
    let mut metadata = meta(group, namespace, members);
    if !ing.annotations.is_empty() {
        metadata.annotations = Some(ing.annotations.clone());
    }
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: ing.class_name.clone(),
            tls: ing.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![first.spec.domain.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(first.spec.domain.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
