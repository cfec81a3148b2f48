//! The production guide's failure-mode table ("symptom → likely component → what to check"),
//! walked over one read of the cluster. Pure: facts and the time in, findings out.
use crate::cert::{self, CertInfo};
use crate::crd::BridgePool;
use crate::doctor::facts::{Facts, Lookup, SecretFacts};
use crate::doctor::probe::Allocation;
use convene_proto::bridge::AddressSource;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;

pub use crate::cert::EXPIRY_WARNING_DAYS;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        }
    }
}

/// One row: under which symptom, which component, and what was found or what to check.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub symptom: &'static str,
    pub component: String,
    pub what: String,
}

pub const PAGE: &str = "Page does not load";
pub const NO_MEDIA: &str = "Users can join but no audio/video";
pub const CORPORATE: &str = "Users behind corporate networks fail";
pub const ROOMS: &str = "Rooms are not created";
pub const JWT: &str = "JWT users cannot join";
pub const RECORDING: &str = "Recording fails";
pub const QUALITY: &str = "High packet loss, random disconnects";

struct Out(Vec<Finding>);

impl Out {
    fn push(
        &mut self,
        level: Level,
        symptom: &'static str,
        component: impl Into<String>,
        what: impl Into<String>,
    ) {
        self.0.push(Finding { level, symptom, component: component.into(), what: what.into() });
    }
}

fn condition<'a>(conds: &'a [Condition], t: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == t)
}

/// Every check, in the table's order. `now`: Unix seconds.
pub fn diagnose(f: &Facts, now: i64) -> Vec<Finding> {
    let mut out = Out(vec![]);
    page(f, now, &mut out);
    media(f, &mut out);
    bridge_probes(f, &mut out);
    relay(f, now, &mut out);
    rooms(f, &mut out);
    jwt(f, &mut out);
    recording(f, &mut out);
    quality(f, &mut out);
    out.0
}

fn page(f: &Facts, now: i64, out: &mut Out) {
    let shard = &f.shard;
    let name = shard.name_any();
    let conds = shard.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
    match condition(conds, "Ready") {
        Some(c) if c.status == "True" => out.push(Level::Ok, PAGE, format!("Shard {name}"), "Ready"),
        Some(c) => out.push(Level::Fail, PAGE, format!("Shard {name}"), format!("not Ready: {} ({})", c.message, c.reason)),
        None => out.push(
            Level::Fail,
            PAGE,
            format!("Shard {name}"),
            "no status yet: is the operator running? (kubectl get pods -l app.kubernetes.io/name=convene-operator -A)",
        ),
    }
    match &f.signaling {
        Lookup::Found(sts) => {
            let ready = sts.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready > 0 {
                out.push(Level::Ok, PAGE, "signaling", format!("{ready} pod ready"));
            } else {
                out.push(
                    Level::Fail,
                    PAGE,
                    "signaling",
                    format!(
                        "no pod ready: kubectl -n {} describe pod {}-0; kubectl logs",
                        f.namespace,
                        sts.name_any()
                    ),
                );
            }
        }
        other => out.push(Level::Fail, PAGE, "signaling", format!("StatefulSet {}", lookup_text(other))),
    }
    let domain = &shard.spec.domain;
    if shard.spec.ingress.enabled {
        match &f.ingress {
            Lookup::Found(ing) => {
                let lb = ing
                    .status
                    .as_ref()
                    .and_then(|s| s.load_balancer.as_ref())
                    .and_then(|l| l.ingress.as_ref())
                    .map(|v| {
                        v.iter()
                            .filter_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if lb.is_empty() {
                    let class = shard.spec.ingress.class_name.as_deref().unwrap_or("the default class");
                    out.push(
                        Level::Warn,
                        PAGE,
                        format!("Ingress {}", ing.name_any()),
                        format!("no address assigned yet: is an ingress controller for {class} running? DNS for {domain} must point at its address"),
                    );
                } else {
                    out.push(
                        Level::Ok,
                        PAGE,
                        format!("Ingress {}", ing.name_any()),
                        format!("{domain} served at {}; DNS for {domain} must point there", lb.join(", ")),
                    );
                }
            }
            other => out.push(Level::Fail, PAGE, "Ingress", format!("Ingress {}", lookup_text(other))),
        }
        dns(f, out);
        match &shard.spec.ingress.tls_secret_name {
            Some(secret) => tls(f, PAGE, "Ingress TLS", secret, Some(domain), now, out),
            None => out.push(
                Level::Warn,
                PAGE,
                "Ingress TLS",
                "no ingress.tlsSecretName: the page is served over http://, where browsers refuse camera and microphone",
            ),
        }
    }
    if let Some(secret) = &shard.spec.serving.tls_secret_name {
        tls(f, PAGE, "signaling TLS (in-cluster)", secret, None, now, out);
    }
}

/// The domain resolves (through the doctor's resolver), to one of the Ingress's addresses when
/// it has any.
fn dns(f: &Facts, out: &mut Out) {
    let domain = &f.shard.spec.domain;
    let component = format!("DNS {domain}");
    let Some(found) = &f.probes.dns else { return };
    let ips = match found {
        Err(e) => {
            return out.push(
                Level::Fail,
                PAGE,
                component,
                format!("domain does not resolve ({e}): create its A/AAAA record for the Ingress's address"),
            );
        }
        Ok(ips) => ips.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
    };
    let lb: Vec<String> = f
        .ingress
        .found()
        .and_then(|i| i.status.as_ref()?.load_balancer.as_ref()?.ingress.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|i| i.ip)
        .collect();
    if lb.is_empty() {
        out.push(Level::Ok, PAGE, component, format!("resolves to {}", ips.join(", ")));
    } else if ips.iter().any(|i| lb.contains(i)) {
        out.push(
            Level::Ok,
            PAGE,
            component,
            format!("resolves to {}, the Ingress's address", ips.join(", ")),
        );
    } else {
        out.push(
            Level::Fail,
            PAGE,
            component,
            format!("resolves to {}, Ingress has {}: fix the DNS record", ips.join(", "), lb.join(", ")),
        );
    }
}

/// A TLS Secret: present, a readable certificate, not expired or expiring soon, naming `domain`.
fn tls(
    f: &Facts,
    symptom: &'static str,
    component: &str,
    secret: &str,
    domain: Option<&str>,
    now: i64,
    out: &mut Out,
) {
    let component = format!("{component} (Secret {secret})");
    let s = match f.secrets.get(secret) {
        Some(Lookup::Found(s)) => s,
        Some(other) => {
            return out.push(Level::Fail, symptom, component, format!("Secret {}", lookup_text(other)));
        }
        None => return out.push(Level::Fail, symptom, component, "Secret not read"),
    };
    match &s.cert {
        None => out.push(Level::Fail, symptom, component, "the Secret has no tls.crt"),
        Some(Err(e)) => out.push(Level::Fail, symptom, component, format!("tls.crt: {e}")),
        Some(Ok(c)) => out.push_cert(symptom, component, c, domain, now),
    }
}

impl Out {
    fn push_cert(
        &mut self,
        symptom: &'static str,
        component: String,
        c: &CertInfo,
        domain: Option<&str>,
        now: i64,
    ) {
        let days = (c.not_after - now).div_euclid(86_400);
        if c.not_after <= now {
            return self.push(
                Level::Fail,
                symptom,
                component,
                "the certificate has expired: renew it (cert-manager: kubectl describe certificate)",
            );
        }
        if let Some(d) = domain
            && !cert::covers(&c.dns_names, d)
        {
            return self.push(
                Level::Fail,
                symptom,
                component,
                format!("the certificate names {} but not {d}", c.dns_names.join(", ")),
            );
        }
        if days < EXPIRY_WARNING_DAYS {
            self.push(
                Level::Warn,
                symptom,
                component,
                format!("the certificate expires in {days} days: renew it"),
            );
        } else {
            self.push(Level::Ok, symptom, component, format!("certificate valid for {days} more days"));
        }
    }
}

fn pool_address_source(p: &BridgePool) -> &AddressSource {
    &p.spec.public_address.source
}

fn media(f: &Facts, out: &mut Out) {
    if f.pools.is_empty() {
        return out.push(
            Level::Fail,
            NO_MEDIA,
            "BridgePool",
            "no BridgePool has shardRef to this shard: create one",
        );
    }
    for p in &f.pools {
        let name = format!("BridgePool {}", p.name_any());
        let st = p.status.clone().unwrap_or_default();
        if st.ready_replicas < 1 {
            let why = condition(&st.conditions, "Degraded")
                .filter(|c| c.status == "True")
                .map(|c| format!(": {}", c.message))
                .unwrap_or_default();
            out.push(Level::Fail, NO_MEDIA, &name, format!("no bridge ready{why}"));
        } else {
            out.push(
                Level::Ok,
                NO_MEDIA,
                &name,
                format!(
                    "{} of {} bridges ready; UDP {} and TCP {} must be open to their nodes",
                    st.ready_replicas, p.spec.replicas, p.spec.ports.media, p.spec.ports.tcp_fallback
                ),
            );
        }
        for b in &st.bridges {
            let component = format!("bridge {}", b.name);
            let Some(addr) = &b.address else {
                out.push(
                    Level::Fail,
                    NO_MEDIA,
                    component,
                    "advertises no address: check publicAddress and the node's addresses",
                );
                continue;
            };
            let Some(node) = &b.node else { continue };
            let Some(addrs) = f.nodes.get(node) else { continue };
            if addrs.iter().any(|(_, a)| a == addr) {
                out.push(
                    Level::Ok,
                    NO_MEDIA,
                    component,
                    format!("advertises {addr}, an address of node {node}"),
                );
                continue;
            }
            let listed = addrs.iter().map(|(t, a)| format!("{t} {a}")).collect::<Vec<_>>().join(", ");
            let (level, hint) = match pool_address_source(p) {
                AddressSource::Static => (
                    Level::Warn,
                    "right only if the node is behind 1:1 NAT with that public address; otherwise clients send media to the wrong place (publicAddress.staticAddresses)",
                ),
                AddressSource::Stun => continue,
                _ => (Level::Fail, "the pool status is stale or the node changed: check the operator's log"),
            };
            out.push(
                level,
                NO_MEDIA,
                component,
                format!("advertises {addr}, not an address of node {node} ({listed}): {hint}"),
            );
        }
    }
}

/// The bridges' advertised addresses, probed: STUN on the media port proves the address and
/// the UDP port; a TCP connect the ICE-TCP fallback port (for networks that block UDP).
fn bridge_probes(f: &Facts, out: &mut Out) {
    for b in &f.probes.bridges {
        let component = format!("bridge {}", b.bridge);
        match &b.binding {
            Ok(seen) => out.push(
                Level::Ok,
                NO_MEDIA,
                &component,
                format!("udp {} answers STUN (saw us as {seen})", b.udp),
            ),
            Err(e) => out.push(
                Level::Fail,
                NO_MEDIA,
                &component,
                format!(
                    "udp {} unreachable: {e}: the advertised address is not the bridge's, or the port is blocked (publicAddress, the node's firewall, hostPort)",
                    b.udp
                ),
            ),
        }
    }
    // After the media port's rows: the table groups rows by symptom.
    for b in &f.probes.bridges {
        let component = format!("bridge {}", b.bridge);
        match &b.tcp_connect {
            Ok(()) => out.push(Level::Ok, CORPORATE, &component, format!("tcp {} (ICE-TCP) accepts", b.tcp)),
            Err(e) => out.push(
                Level::Fail,
                CORPORATE,
                &component,
                format!("tcp {} (ICE-TCP) unreachable: {e}: open the port to the node", b.tcp),
            ),
        }
    }
}

/// The relays, probed: STUN on the listening port, then an Allocate with a credential minted
/// from the pool's shared secret.
fn relay_probes(f: &Facts, secret: &str, out: &mut Out) {
    for r in &f.probes.relays {
        let component = format!("TURN relay {}", r.address);
        let port = r.address.port();
        if let Err(e) = &r.binding {
            out.push(
                Level::Fail,
                CORPORATE,
                component,
                format!("no answer on udp/{port} ({e}): check the firewall and the relay's pod"),
            );
            continue;
        }
        match &r.allocation {
            None => {}
            Some(Allocation::Created(relayed)) => out.push(
                Level::Ok,
                CORPORATE,
                component,
                format!("allocation succeeded (relayed address {relayed}, released)"),
            ),
            Some(Allocation::Refused) => out.push(
                Level::Fail,
                CORPORATE,
                component,
                format!(
                    "credentials refused (the relay's secret differs from Secret {secret}): restart the relay's pods so they read it"
                ),
            ),
            Some(Allocation::NoAnswer) => out.push(
                Level::Fail,
                CORPORATE,
                component,
                format!("answers STUN but not the Allocate on udp/{port}: check the relay's log"),
            ),
            Some(Allocation::Error(e)) => {
                out.push(Level::Fail, CORPORATE, component, format!("could not try an allocation: {e}"))
            }
        }
    }
}

fn relay(f: &Facts, now: i64, out: &mut Out) {
    let t = match &f.turn {
        Lookup::NotReferenced => {
            return out.push(
                Level::Warn,
                CORPORATE,
                "TURN",
                "no turnPoolRef: users on networks that block UDP cannot connect; create a TurnPool and refer to it",
            );
        }
        Lookup::Found(t) => t,
        other => {
            return out.push(Level::Fail, CORPORATE, "TurnPool", format!("TurnPool {}", lookup_text(other)));
        }
    };
    let name = format!("TurnPool {}", t.name_any());
    let st = t.status.clone().unwrap_or_default();
    if st.ready_replicas < 1 || st.addresses.is_empty() {
        out.push(
            Level::Fail,
            CORPORATE,
            &name,
            format!("{} relays ready, {} addresses published", st.ready_replicas, st.addresses.len()),
        );
    } else {
        out.push(
            Level::Ok,
            CORPORATE,
            &name,
            format!(
                "{} relays at {}; UDP/TCP {} must be open to them",
                st.ready_replicas,
                st.addresses.join(", "),
                t.spec.ports.listening
            ),
        );
    }
    let secret = crate::render::turn::secret_name(&t.name_any());
    relay_probes(f, &secret, out);
    match f.secrets.get(&secret) {
        Some(Lookup::Found(s)) if has_key(s, crate::render::secrets::KEY) => {
            out.push(Level::Ok, CORPORATE, "TURN credentials", format!("shared secret {secret} present"))
        }
        Some(Lookup::Found(_)) => {
            out.push(Level::Fail, CORPORATE, "TURN credentials", format!("Secret {secret} has no key secret"))
        }
        Some(other) => {
            out.push(Level::Fail, CORPORATE, "TURN credentials", format!("Secret {}", lookup_text(other)))
        }
        None => {}
    }
    match &t.spec.tls_secret_name {
        Some(s) => tls(f, CORPORATE, "TURNS", s, None, now, out),
        None => out.push(
            Level::Warn,
            CORPORATE,
            "TURNS",
            "no tlsSecretName: networks that only let HTTPS out cannot reach the relays",
        ),
    }
}

fn rooms(f: &Facts, out: &mut Out) {
    let name = f.shard.name_any();
    let secret = crate::render::bridge_control_secret(&name);
    match f.secrets.get(&secret) {
        Some(Lookup::Found(_)) => {}
        Some(other) => out.push(
            Level::Fail,
            ROOMS,
            "signaling ↔ bridges",
            format!(
                "bridge-control Secret {}: bridges cannot register (the operator creates it)",
                lookup_text(other)
            ),
        ),
        None => {}
    }
    let silent: Vec<&str> = f
        .pools
        .iter()
        .flat_map(|p| p.status.iter().flat_map(|s| &s.bridges))
        .filter(|b| b.ready && b.endpoints.is_none())
        .map(|b| b.name.as_str())
        .collect();
    if silent.is_empty() {
        out.push(
            Level::Ok,
            ROOMS,
            "signaling ↔ bridges",
            "every ready bridge answers the operator's load scrape",
        );
    } else {
        out.push(
            Level::Warn,
            ROOMS,
            "signaling ↔ bridges",
            format!(
                "{} did not answer the operator's load scrape: check the bridge's log for its signaling registration and the pods' network policy",
                silent.join(", ")
            ),
        );
    }
    let bridges = f.pools.iter().flat_map(|p| p.status.iter().flat_map(|s| &s.bridges));
    let signaling = f.shard.status.as_ref().and_then(|s| s.version.as_deref()).map(|v| ("signaling", v));
    let named: Vec<(&str, &str)> =
        bridges.filter_map(|b| Some((b.name.as_str(), b.version.as_deref()?))).chain(signaling).collect();
    match crate::reconcile::conditions::version_skew(named.iter().copied()) {
        Some(skew) => out.push(
            Level::Warn,
            ROOMS,
            "versions",
            format!("mixed versions {skew}: finish the rollout or pin one image"),
        ),
        None => {
            if let Some((_, v)) = named.first() {
                out.push(Level::Ok, ROOMS, "versions", format!("all run {v}"));
            }
        }
    }
}

fn has_key(s: &SecretFacts, key: &str) -> bool {
    s.keys.iter().any(|k| k == key)
}

fn jwt(f: &Facts, out: &mut Out) {
    let Some(j) = &f.shard.spec.auth.jwt else {
        let a = &f.shard.spec.auth;
        let level = if a.allow_anonymous_room_creation { Level::Warn } else { Level::Ok };
        return out.push(
            level,
            JWT,
            "auth",
            if a.allow_anonymous_room_creation {
                "no JWT: anyone who opens the URL can create rooms"
            } else {
                "no JWT configured"
            },
        );
    };
    for r in j.secret_ref.iter().chain(&j.public_keys_ref) {
        let component = format!("JWT key (Secret {})", r.name);
        match f.secrets.get(&r.name) {
            Some(Lookup::Found(s)) if has_key(s, &r.key) => out.push(
                Level::Ok,
                JWT,
                component,
                format!(
                    "key {} present; tokens need iss {}, aud {}, and clocks within a minute",
                    r.key, j.issuer, j.audience
                ),
            ),
            Some(Lookup::Found(s)) => out.push(
                Level::Fail,
                JWT,
                component,
                format!("no key {} (keys: {})", r.key, s.keys.join(", ")),
            ),
            Some(other) => out.push(Level::Fail, JWT, component, format!("Secret {}", lookup_text(other))),
            None => {}
        }
    }
}

fn recording(f: &Facts, out: &mut Out) {
    match &f.recorder {
        Lookup::NotReferenced => {}
        Lookup::Found(r) => {
            let ready = r.status.as_ref().map(|s| s.ready_replicas).unwrap_or(0);
            let level = if ready > 0 { Level::Ok } else { Level::Fail };
            out.push(
                level,
                RECORDING,
                format!("RecorderPool {}", r.name_any()),
                format!("{ready} recorders ready"),
            );
        }
        other => {
            out.push(Level::Fail, RECORDING, "RecorderPool", format!("RecorderPool {}", lookup_text(other)))
        }
    }
}

fn quality(f: &Facts, out: &mut Out) {
    for b in f.pools.iter().flat_map(|p| p.status.iter().flat_map(|s| &s.bridges)) {
        if let Some(s) = b.stress
            && s >= 0.8
        {
            out.push(
                Level::Warn,
                QUALITY,
                format!("bridge {}", b.name),
                format!(
                    "stress {:.0}%: add bridges or enable autoscaling; check the node's NIC and CPU",
                    s * 100.0
                ),
            );
        }
    }
}

fn lookup_text<T>(l: &Lookup<T>) -> String {
    match l {
        Lookup::Missing(n) => format!("{n} does not exist"),
        Lookup::Error(e) => format!("could not be read: {e}"),
        Lookup::NotReferenced => "is not referenced".into(),
        Lookup::Found(_) => "found".into(),
    }
}

/// The findings grouped by symptom: "symptom" lines, then "LEVEL component: what".
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    let mut last = "";
    for f in findings {
        if f.symptom != last {
            s.push_str(&format!("{}{}\n", if last.is_empty() { "" } else { "\n" }, f.symptom));
            last = f.symptom;
        }
        s.push_str(&format!("  {:<5} {} → {}\n", f.level.as_str(), f.component, f.what));
    }
    let fails = findings.iter().filter(|f| f.level == Level::Fail).count();
    let warns = findings.iter().filter(|f| f.level == Level::Warn).count();
    s.push_str(&format!("\n{fails} failed, {warns} warnings, {} checks\n", findings.len()));
    s
}
