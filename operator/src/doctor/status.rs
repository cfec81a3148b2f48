//! `kubectl convene status`: one screen of a shard, its pools, bridges, load and recent
//! decisions, from the same facts the doctor reads.
use crate::doctor::facts::{Facts, Lookup};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use std::fmt::Write;

fn conditions(conds: &[Condition]) -> String {
    conds
        .iter()
        .map(|c| {
            let mark = if c.status == "True" { "" } else { "not " };
            if c.status == "True" && c.type_ == "Ready" || c.status != "True" && c.type_ != "Ready" {
                format!("{mark}{}", c.type_)
            } else {
                format!("{mark}{} ({}: {})", c.type_, c.reason, c.message)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// The status screen.
pub fn render(f: &Facts) -> String {
    let mut s = String::new();
    let shard = &f.shard;
    let st = shard.status.clone().unwrap_or_default();
    let _ = writeln!(s, "Shard {}/{}  {}", f.namespace, shard.name_any(), opt(st.url.clone()));
    let _ = writeln!(s, "  {}", conditions(&st.conditions));
    let _ = writeln!(
        s,
        "  signaling {}  version {}  conferences {}  participants {}  bridges ready {}",
        match &f.signaling {
            Lookup::Found(sts) =>
                format!("{}/1 ready", sts.status.as_ref().and_then(|x| x.ready_replicas).unwrap_or(0)),
            _ => "missing".into(),
        },
        opt(st.version.clone()),
        opt(st.conferences),
        opt(st.participants),
        st.bridges_ready
    );
    for p in &f.pools {
        let ps = p.status.clone().unwrap_or_default();
        let auto = p.spec.autoscaling.as_ref().filter(|a| a.enabled);
        let _ = writeln!(
            s,
            "\nBridgePool {}  {}/{} ready (desired {}{})",
            p.name_any(),
            ps.ready_replicas,
            ps.replicas,
            ps.desired_replicas,
            auto.map_or(String::new(), |a| format!(", autoscaling {}..{}", a.min_replicas, a.max_replicas))
        );
        let _ = writeln!(s, "  {}", conditions(&ps.conditions));
        if let Some(l) = &ps.load {
            let _ = writeln!(
                s,
                "  load: {} conferences, {} endpoints, {} Mbps{}",
                l.conferences,
                l.endpoints,
                l.mbps,
                if l.unknown_bridges > 0 {
                    format!(", {} bridges unknown", l.unknown_bridges)
                } else {
                    String::new()
                }
            );
        }
        let _ = writeln!(
            s,
            "  {:<28}{:<16}{:<18}{:<10}{:>10}{:>8}{:>8}  VERSION",
            "BRIDGE", "NODE", "ADDRESS", "STATE", "ENDPOINTS", "MBPS", "STRESS"
        );
        for b in &ps.bridges {
            let state = if b.draining {
                "draining"
            } else if b.ready {
                "ready"
            } else {
                "not ready"
            };
            let _ = writeln!(
                s,
                "  {:<28}{:<16}{:<18}{:<10}{:>10}{:>8}{:>8}  {}",
                b.name,
                opt(b.node.clone()),
                opt(b.address.clone()),
                state,
                opt(b.endpoints),
                opt(b.mbps),
                b.stress.map_or("-".into(), |x| format!("{:.0}%", x * 100.0)),
                opt(b.version.clone())
            );
        }
        if let Some(d) = &ps.last_scale {
            let _ = writeln!(s, "  last scale: {} → {} at {}: {}", d.from, d.to, d.time.0, d.reason);
        }
    }
    if f.pools.is_empty() {
        let _ = writeln!(s, "\nno BridgePool refers to this shard");
    }
    match &f.turn {
        Lookup::Found(t) => {
            let ts = t.status.clone().unwrap_or_default();
            let _ = writeln!(
                s,
                "\nTurnPool {}  {}/{} ready  addresses {}",
                t.name_any(),
                ts.ready_replicas,
                t.spec.replicas,
                if ts.addresses.is_empty() { "-".into() } else { ts.addresses.join(", ") }
            );
        }
        Lookup::Missing(n) => {
            let _ = writeln!(s, "\nTurnPool {n}: missing");
        }
        _ => {}
    }
    if let Lookup::Found(r) = &f.recorder {
        let rs = r.status.clone().unwrap_or_default();
        let _ = writeln!(s, "\nRecorderPool {}  {} ready", r.name_any(), rs.ready_replicas);
    }
    if !f.events.is_empty() {
        let _ = writeln!(s, "\nRecent events:");
        for (time, ty, object, reason, message) in &f.events {
            let _ = writeln!(s, "  {time}  {ty:<7} {object}  {reason}: {message}");
        }
    }
    s
}
