//! Shard controller: signaling StatefulSet, Service, Ingress, ConfigMap and the shard's
//! generated secrets.

use super::apply::{self, apply};
use super::conditions::{Health, Observed};
use super::context::Context;
use super::error::{Error, Result};
use super::{
    ERROR_RETRY, Failures, MISSING_REF_RETRY, RESYNC, conditions_with_events, stateful_set_progress,
};
use crate::cert::{self, SecretCert};
use crate::crd::common::SecretKeyRef;
use crate::crd::shard::JwtAlgorithm;
use crate::crd::{Shard, ShardStatus};
use crate::render::signaling::{self, ShardInputs, TurnInputs};
use crate::render::{bridge_control_secret, group, secrets, turn};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use std::sync::Arc;
use std::time::Duration;

/// What the shard references, as found in the cluster.
struct Gathered {
    inputs: ShardInputs,
    /// Human-readable problems with references (each makes the shard Degraded).
    missing: Vec<(&'static str, String)>,
    /// The HS256 secret is ours to generate.
    generate_jwt: bool,
    bridges_ready: i32,
    conferences: Option<i64>,
    participants: Option<i64>,
    /// What is wrong with the Ingress certificate (Degraded, not a missing reference: the
    /// page is still served).
    certificate: Option<(&'static str, String)>,
    /// When the Ingress certificate expires (Unix seconds), when it could be read.
    cert_not_after: Option<i64>,
}

pub async fn reconcile(shard: Arc<Shard>, ctx: Arc<Context>) -> Result<Action> {
    ctx.measured("Shard", run(&shard, &ctx)).await
}

async fn run(shard: &Shard, ctx: &Context) -> Result<Action> {
    let ns = shard.namespace().ok_or(Error::NoNamespace)?;
    let now = jiff::Timestamp::now().as_second();
    let g = gather(shard, ctx, &ns, now).await?;
    let secret = shard.spec.ingress.tls_secret_name.as_deref().unwrap_or_default();
    publish_certificate(ctx, &ns, shard, g.cert_not_after.map(|t| (secret, t)));
    let mut failed = Failures::default();

    let owner = signaling::owner(shard);
    let name = shard.name_any();
    let grouped = group_objects(shard, ctx, &ns, &g, &mut failed).await;
    if g.generate_jwt && grouped.is_none() {
        let secret = secrets::render(&owner, &format!("{name}-jwt"), &secrets::random_value());
        let what = format!("Secret {name}-jwt");
        if failed.check(what, apply::create_secret_once(ctx, &secret).await) == Some(true) {
            ctx.event(shard, false, "SecretCreated", format!("generated the HS256 token secret {name}-jwt"))
                .await;
        }
    }
    let control_name = bridge_control_secret(&name);
    let control = secrets::render(&owner, &control_name, &secrets::random_value());
    if failed.check(format!("Secret {control_name}"), apply::create_secret_once(ctx, &control).await)
        == Some(true)
    {
        ctx.event(
            shard,
            false,
            "SecretCreated",
            format!("generated the bridge-control secret {control_name}"),
        )
        .await;
    }

    let mut objects = signaling::render(shard, &g.inputs, &ctx.render);
    stamp_config_hash(&mut objects);
    failed.check(
        format!("ConfigMap {}", objects.config_map.name_any()),
        apply(&ctx.client, &objects.config_map).await,
    );
    failed
        .check(format!("Service {}", objects.service.name_any()), apply(&ctx.client, &objects.service).await);
    let sts_name = objects.stateful_set.name_any();
    let sts = match failed
        .check(format!("StatefulSet {sts_name}"), apply(&ctx.client, &objects.stateful_set).await)
    {
        Some(sts) => Some(sts),
        // Refused: the conditions still tell how the running one is doing.
        None => ctx.stores.stateful_sets.get(&ns, &sts_name).map(|s| (*s).clone()),
    };
    let keep_ingress: Vec<String> = match &objects.ingress {
        Some(ing) => {
            failed.check(format!("Ingress {}", ing.name_any()), apply(&ctx.client, ing).await);
            vec![ing.name_any()]
        }
        None => vec![],
    };
    let orphans: Vec<String> = ctx
        .stores
        .ingresses
        .labelled(&ns, &owner.children_labels())
        .iter()
        .map(|i| i.name_any())
        .filter(|n| !keep_ingress.contains(n))
        .collect();
    let deleted =
        apply::delete_all::<k8s_openapi::api::networking::v1::Ingress>(&ctx.client, &ns, &orphans).await;
    for gone in failed.check("deleting unwanted Ingresses", deleted).unwrap_or_default() {
        ctx.event(shard, false, "Deleted", format!("deleted Ingress {gone}: ingress is disabled")).await;
    }

    let health = health(&g, sts.as_ref(), &failed);
    let seen = shard.status.clone();
    let previous = ctx.previous_status(shard, seen.as_ref()).map(|s| s.conditions).unwrap_or_default();
    let status = ShardStatus {
        observed_generation: shard.metadata.generation,
        conditions: conditions_with_events(ctx, shard, &previous, &health).await,
        url: Some(signaling::url(shard)),
        bridges_ready: g.bridges_ready,
        conferences: g.conferences,
        participants: g.participants,
        version: sts
            .as_ref()
            .and_then(|s| s.spec.as_ref()?.template.spec.as_ref()?.containers.first()?.image.as_deref())
            .map(super::image_version),
        group: grouped,
    };
    if let Some(change) =
        membership_change(seen.as_ref().and_then(|s| s.group.as_ref()), status.group.as_ref())
    {
        ctx.event(shard, false, "GroupMembership", change).await;
    }
    ctx.write_status(shard, seen.as_ref(), &status).await?;
    let after = if !failed.is_empty() {
        ERROR_RETRY
    } else if g.missing.is_empty() {
        RESYNC
    } else {
        MISSING_REF_RETRY
    };
    // Re-judged just after the certificate crosses the 14-day line (or expires).
    let cert_line = g.cert_not_after.and_then(|t| cert::next_change(t, now)).map(Duration::from_secs);
    Ok(Action::requeue(cert_line.map_or(after, |c| c.min(after))))
}

/// The expiry gauge of the shard's Ingress certificate (none when it cannot be read), and no
/// gauge left for another Secret or for a Shard gone from the namespace (Shards have no
/// finalizer).
fn publish_certificate(ctx: &Context, ns: &str, shard: &Shard, cert: Option<(&str, i64)>) {
    let gauge = &ctx.metrics.shard_cert_expiry;
    let name = shard.name_any();
    if let Some((secret, t)) = cert {
        gauge.with_label_values(&[ns, &name, secret]).set(t);
    }
    let live: Vec<String> = ctx.stores.shards.in_namespace(ns).iter().map(|s| s.name_any()).collect();
    let series: Vec<[String; 3]> = prometheus::core::Collector::collect(gauge)
        .iter()
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let label = |k: &str| {
                m.get_label()
                    .iter()
                    .find(|l| l.name() == k)
                    .map(|l| l.value().to_string())
                    .unwrap_or_default()
            };
            [label("namespace"), label("shard"), label("secret")]
        })
        .collect();
    for [shard, secret] in stale_series(&series, ns, &name, cert.map(|(s, _)| s), &live) {
        let _ = gauge.remove_label_values(&[ns, &shard, &secret]);
    }
}

/// Pure: the certificate series (`[namespace, shard, secret]`) of namespace `ns` to remove:
/// `shard`'s for a Secret other than `current`, and those of Shards not in `live`.
fn stale_series(
    series: &[[String; 3]],
    ns: &str,
    shard: &str,
    current: Option<&str>,
    live: &[String],
) -> Vec<[String; 2]> {
    series
        .iter()
        .filter(|[n, s, secret]| {
            n == ns && if s == shard { current != Some(secret.as_str()) } else { !live.contains(s) }
        })
        .map(|[_, s, secret]| [s.clone(), secret.clone()])
        .collect()
}

/// A group member's share of the group: the generated group secrets (once), the membership
/// ConfigMap, the group Service and Ingress, rendered from every member. Returns the group as
/// the status shows it (None: not in a group).
async fn group_objects(
    shard: &Shard,
    ctx: &Context,
    ns: &str,
    g: &Gathered,
    failed: &mut Failures,
) -> Option<crate::crd::shard::GroupStatus> {
    let name = group::group_of(shard)?;
    let all = ctx.stores.shards.in_namespace(ns);
    let (members, refused) = group::split(&group::members(shard, &all));
    if refused.iter().any(|(s, _)| s.name_any() == shard.name_any()) {
        // Said in the conditions (gather); the group's objects are its members' business.
        return None;
    }
    let mut secrets = vec![group::secret_name(name)];
    if g.generate_jwt {
        secrets.push(group::jwt_secret_name(name));
    }
    for secret in secrets {
        let s = group::secret(name, ns, &members, &secret, &secrets::random_value());
        if failed.check(format!("Secret {secret}"), apply::create_secret_once(ctx, &s).await) == Some(true) {
            ctx.event(shard, false, "SecretCreated", format!("generated the group secret {secret}")).await;
        }
    }
    let membership = group::membership(name, &members);
    let objects = group::render(name, ns, &members, &membership);
    failed.check(
        format!("ConfigMap {}", objects.config_map.name_any()),
        apply(&ctx.client, &objects.config_map).await,
    );
    failed
        .check(format!("Service {}", objects.service.name_any()), apply(&ctx.client, &objects.service).await);
    if let Some(ing) = &objects.ingress {
        failed.check(format!("Ingress {}", ing.name_any()), apply(&ctx.client, ing).await);
    }
    Some(group::status(&membership, &members))
}

/// Pure: what changed in the group since the last status, said for an Event (None: nothing).
fn membership_change(
    before: Option<&crate::crd::shard::GroupStatus>,
    now: Option<&crate::crd::shard::GroupStatus>,
) -> Option<String> {
    let key = |g: Option<&crate::crd::shard::GroupStatus>| {
        g.map(|g| {
            let m: Vec<_> = g.members.iter().map(|m| (m.shard.clone(), m.ready, m.draining)).collect();
            (g.name.clone(), m)
        })
    };
    if key(before) == key(now) {
        return None;
    }
    let Some(now) = now else {
        return Some(format!("left group {}", before.map(|b| b.name.as_str()).unwrap_or_default()));
    };
    let said = |m: &crate::crd::shard::GroupMemberStatus| {
        let state = if m.draining {
            "draining"
        } else if m.ready {
            "ready"
        } else {
            "not ready"
        };
        format!("{} ({state})", m.shard)
    };
    let members: Vec<String> = now.members.iter().map(said).collect();
    Some(format!(
        "group {}: {} of {} member(s) take new rooms: {}",
        now.name,
        now.ready_members,
        now.members.len(),
        members.join(", ")
    ))
}

/// Annotation on the signaling pod template with a hash of its config file: an edit of the
/// Shard that changes the file changes the template, so the StatefulSet rolls the pod and
/// signaling starts with the new file.
pub const CONFIG_HASH: &str = "convene.dev/config-hash";

fn stamp_config_hash(objects: &mut signaling::SignalingObjects) {
    use sha2::Digest;
    let data = serde_json::to_vec(&objects.config_map.data).unwrap_or_default();
    let hash = sha2::Sha256::digest(&data);
    let hex: String = hash.iter().take(8).map(|b| format!("{b:02x}")).collect();
    if let Some(spec) = objects.stateful_set.spec.as_mut() {
        spec.template
            .metadata
            .get_or_insert_with(Default::default)
            .annotations
            .get_or_insert_with(Default::default)
            .insert(CONFIG_HASH.into(), hex);
    }
}

/// What the shard references: custom resources from the stores, referenced Secrets' keys read
/// (the operator caches no Secret data).
async fn gather(shard: &Shard, ctx: &Context, ns: &str, now: i64) -> Result<Gathered> {
    let stores = &ctx.stores;
    let name = shard.name_any();
    let mut missing = vec![];
    let mut inputs = ShardInputs::default();
    let mut generate_jwt = false;

    if let Some(jwt) = &shard.spec.auth.jwt {
        let key_ref = match jwt.algorithm {
            JwtAlgorithm::HS256 => jwt.secret_ref.clone(),
            JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => jwt.public_keys_ref.clone(),
        };
        match key_ref {
            Some(r) => {
                let field = match jwt.algorithm {
                    JwtAlgorithm::HS256 => "auth.jwt.secretRef",
                    JwtAlgorithm::RS256 | JwtAlgorithm::ES256 => "auth.jwt.publicKeysRef",
                };
                missing.extend(apply::check_secret(ctx, ns, &r, field).await?);
                inputs.jwt_key = Some((r.name, r.key));
            }
            None => {
                generate_jwt = true;
                // A group's members share one (a token must pass wherever its room lives).
                let secret = match group::group_of(shard) {
                    Some(g) => group::jwt_secret_name(g),
                    None => format!("{name}-jwt"),
                };
                inputs.jwt_key = Some((secret, secrets::KEY.into()));
            }
        }
    }

    if let Some(name) = &shard.spec.serving.tls_secret_name {
        for key in ["tls.crt", "tls.key", "ca.crt"] {
            let r = SecretKeyRef { name: name.clone(), key: key.into() };
            if let Some(problem) = apply::check_secret(ctx, ns, &r, "serving.tlsSecretName").await? {
                missing.push(problem);
                break;
            }
        }
    }
    if let Some(r) = &shard.spec.turn_pool_ref {
        match stores.turn_pools.get(ns, &r.name) {
            Some(pool) => {
                let addresses = pool.status.as_ref().map(|s| s.addresses.clone()).unwrap_or_default();
                inputs.turn = Some(TurnInputs {
                    secret_name: turn::secret_name(&r.name),
                    uris: addresses.iter().flat_map(|a| turn::uris(&pool, a)).collect(),
                    credential_lifetime_seconds: pool.spec.credential_lifetime_seconds,
                });
            }
            None => missing
                .push(("TurnPoolNotFound", format!("TurnPool {} (spec.turnPoolRef) does not exist", r.name))),
        }
    }
    if let Some(r) = &shard.spec.recorder_pool_ref {
        match stores.recorder_pools.get(ns, &r.name) {
            Some(_) => inputs.recording = true,
            None => missing.push((
                "RecorderPoolNotFound",
                format!("RecorderPool {} (spec.recorderPoolRef) does not exist", r.name),
            )),
        }
    }

    let pools = stores.bridge_pools.in_namespace(ns);
    let mine: Vec<_> = pools.iter().filter(|p| p.spec.shard_ref.name == name).collect();
    let bridges_ready = mine.iter().filter_map(|p| p.status.as_ref()).map(|s| s.ready_replicas).sum();
    let loads: Vec<_> = mine.iter().filter_map(|p| p.status.as_ref()?.load.clone()).collect();
    let (conferences, participants) = if loads.is_empty() {
        (None, None)
    } else {
        (Some(loads.iter().map(|l| l.conferences).sum()), Some(loads.iter().map(|l| l.endpoints).sum()))
    };
    if group::group_of(shard).is_some() {
        let all = stores.shards.in_namespace(ns);
        let (_, refused) = group::split(&group::members(shard, &all));
        let mine = refused.into_iter().filter(|(s, _)| s.name_any() == name);
        missing.extend(mine.map(|(_, why)| ("GroupConflict", why)));
    }
    let (certificate, cert_not_after) = match &shard.spec.ingress.tls_secret_name {
        Some(secret) if shard.spec.ingress.enabled => {
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let found = match api.get_opt(secret).await? {
                None => SecretCert::NoSecret,
                Some(s) => {
                    SecretCert::of(s.data.as_ref().and_then(|d| d.get("tls.crt")).map(|b| b.0.as_slice()))
                }
            };
            let not_after = match &found {
                SecretCert::Cert(c) => Some(c.not_after),
                _ => None,
            };
            (cert::ingress_problem(secret, &shard.spec.domain, &found, now), not_after)
        }
        _ => (None, None),
    };
    Ok(Gathered {
        inputs,
        missing,
        generate_jwt,
        bridges_ready,
        conferences,
        participants,
        certificate,
        cert_not_after,
    })
}

/// Pure: the shard's conditions from what was gathered.
fn health(g: &Gathered, sts: Option<&StatefulSet>, failed: &Failures) -> Health {
    let (ready_pods, rolled_out) = stateful_set_progress(sts, 1);
    let missing = g.missing.first().map(|(reason, _)| {
        Observed::new(
            "Degraded",
            true,
            *reason,
            g.missing.iter().map(|(_, m)| m.as_str()).collect::<Vec<_>>().join("; "),
        )
    });
    let certificate = g.certificate.as_ref().map(|(reason, m)| Observed::new("Degraded", true, *reason, m));
    let degraded = super::degraded_of(
        failed.degraded().into_iter().chain(missing.clone()).chain(certificate).collect(),
        Observed::new("Degraded", false, "AsExpected", "all references resolved"),
    );
    let progressing = if rolled_out {
        Observed::new("Progressing", false, "Stable", "signaling is rolled out")
    } else {
        Observed::new("Progressing", true, "RollingOut", "signaling pod is starting or updating")
    };
    // A refused write leaves what runs running: readiness is still read from the pods.
    let ready = if let Some(m) = missing {
        Observed::new("Ready", false, m.reason, m.message)
    } else if ready_pods < 1 {
        Observed::new("Ready", false, "SignalingNotReady", "the signaling pod is not ready yet")
    } else if g.bridges_ready < 1 {
        Observed::new(
            "Ready",
            false,
            "NoBridges",
            "no bridge is ready: create a BridgePool with shardRef to this shard",
        )
    } else {
        Observed::new("Ready", true, "Ready", format!("signaling ready, {} bridges ready", g.bridges_ready))
    };
    Health { ready, progressing, degraded }
}

#[cfg(test)]
mod tests {
    use super::stale_series;

    #[test]
    fn certificate_series_of_other_secrets_and_gone_shards_are_stale() {
        let row = |n: &str, s: &str, secret: &str| [n.to_string(), s.to_string(), secret.to_string()];
        let series = [
            row("ns", "meet", "meet-tls"),
            row("ns", "meet", "old-tls"),
            row("ns", "gone", "gone-tls"),
            row("ns", "other", "other-tls"),
            row("elsewhere", "gone", "gone-tls"),
        ];
        let live = ["meet".to_string(), "other".to_string()];
        let stale = stale_series(&series, "ns", "meet", Some("meet-tls"), &live);
        let want = |s: &str, secret: &str| [s.to_string(), secret.to_string()];
        assert_eq!(stale, vec![want("meet", "old-tls"), want("gone", "gone-tls")]);
        // No certificate read (or ingress TLS off): none of the shard's series stays.
        let stale = stale_series(&series, "ns", "meet", None, &live);
        assert_eq!(stale, vec![want("meet", "meet-tls"), want("meet", "old-tls"), want("gone", "gone-tls")]);
    }
}
