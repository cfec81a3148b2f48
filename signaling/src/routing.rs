//! Routing across the shards of a group (`convene_proto::routing`): where a `join` goes.
//!
//! A room that is live here stays here. Otherwise the other Ready members are asked (at once,
//! [`PEER_TIMEOUT`] each) whether it is live there; one that holds it gets the participant
//! (`redirect`). Else the room's owner does: the first Ready, non-draining member in
//! rendezvous order, skipping peers that failed a query in the last [`UNHEALTHY_FOR`] (so when
//! a shard dies its rooms go to the next shard in hash order before the operator notices).
//! Redirect, not proxy: signaling is the only stateful party, so the participant's socket
//! belongs on the shard that holds the room; a proxy would add a hop to every frame and keep
//! the participant tied to the shard it entered through (and to its failure).
//!
//! The membership file is re-read every [`RELOAD_EVERY`]; a bad file keeps the last good
//! membership (warned about, counted in `convene_signaling_routing_membership_errors_total`).
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::body::Body;
use convene_proto::config::RoutingConfig;
use convene_proto::paths;
use convene_proto::routing::{self, GroupMember, GroupMembership, MAX_HOPS, RoomPresence};

use crate::state::{App, lock};

/// How long one peer query may take.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(500);
/// How long a peer that failed a query is skipped (not asked, not an owner).
pub const UNHEALTHY_FOR: Duration = Duration::from_secs(5);
/// How often the membership file is looked at.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// A bad membership file is warned about at most this often (and whenever it changes).
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Largest answer read from a peer.
const MAX_ANSWER: usize = 4096;

/// Where a join goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Local,
    Redirect { shard: String, url: String, why: &'static str },
}

pub struct Routing {
    pub group: String,
    pub shard: String,
    members_file: PathBuf,
    secret: String,
    pub region_header: Option<String>,
    pub region_claim: Option<String>,
    membership: Mutex<Arc<GroupMembership>>,
    /// Text of the last file read (good or bad), to notice changes.
    last_text: Mutex<Option<String>>,
    /// The last problem warned about, and when.
    last_warn: Mutex<Option<(String, Instant)>>,
    /// Peers that failed a query, until when they are skipped.
    unhealthy: Mutex<HashMap<String, Instant>>,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("group", &self.group)
            .field("shard", &self.shard)
            .finish_non_exhaustive()
    }
}

impl Routing {
    /// From the config: the group secret must be readable; a missing or bad membership file
    /// starts with an empty membership (every room taken here) and is read again every 2 s.
    pub fn new(cfg: &RoutingConfig) -> anyhow::Result<Routing> {
        if cfg.shard.is_empty() {
            anyhow::bail!("routing: shard (this shard's name) is required");
        }
        if cfg.members_file.is_empty() {
            anyhow::bail!("routing: membersFile is required");
        }
        let secret = std::fs::read_to_string(&cfg.secret_file)
            .with_context(|| format!("reading the group secret file {:?}", cfg.secret_file))?
            .trim()
            .to_string();
        if secret.is_empty() {
            anyhow::bail!("routing: the group secret is empty");
        }
        Ok(Routing {
            group: cfg.group.clone(),
            shard: cfg.shard.clone(),
            members_file: PathBuf::from(&cfg.members_file),
            secret,
            region_header: cfg.region_header.clone().filter(|h| !h.is_empty()),
            region_claim: cfg.region_claim.clone().filter(|c| !c.is_empty()),
            membership: Mutex::new(Arc::new(GroupMembership { group: cfg.group.clone(), members: vec![] })),
            last_text: Mutex::default(),
            last_warn: Mutex::default(),
            unhealthy: Mutex::default(),
        })
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn membership(&self) -> Arc<GroupMembership> {
        lock(&self.membership).clone()
    }

    /// Read the membership file (by path, each time: a ConfigMap volume swaps a symlink) and
    /// take it when it changed and is valid. Returns whether the membership changed.
    pub fn reload(&self, app: &App) -> bool {
        let text = std::fs::read_to_string(&self.members_file);
        let changed_text = match &text {
            Ok(t) => lock(&self.last_text).as_deref() != Some(t.as_str()),
            Err(_) => true,
        };
        if !changed_text {
            return false;
        }
        let parsed =
            text.map_err(|e| format!("reading {}: {e}", self.members_file.display())).and_then(|t| {
                *lock(&self.last_text) = Some(t.clone());
                let g: GroupMembership = serde_json::from_str(&t)
                    .map_err(|e| format!("parsing {}: {e}", self.members_file.display()))?;
                g.validate().map(|()| g).map_err(|e| format!("{}: {e}", self.members_file.display()))
            });
        match parsed {
            Ok(g) => {
                if g.group != self.group && !self.group.is_empty() {
                    tracing::warn!(file = %self.members_file.display(), listed = %g.group, ours = %self.group, "the membership names another group; using it anyway");
                }
                if g.member(&self.shard).is_none() {
                    tracing::warn!(shard = %self.shard, "this shard is not in the group's membership yet");
                }
                let same = *self.membership() == g;
                tracing::info!(
                    group = %g.group,
                    members = g.members.len(),
                    eligible = g.members.iter().filter(|m| m.eligible()).count(),
                    "group membership {}",
                    if same { "re-read" } else { "changed" }
                );
                *lock(&self.membership) = Arc::new(g);
                self.update_gauges(app);
                !same
            }
            Err(e) => {
                app.metrics.routing_membership_errors.inc();
                let mut last = lock(&self.last_warn);
                // A new problem is always worth a line; the same one again, once a minute.
                let repeat = last.as_ref().is_some_and(|(m, t)| *m == e && t.elapsed() < WARN_EVERY);
                if !repeat {
                    tracing::warn!("group membership not updated, keeping the last good one: {e}");
                    *last = Some((e, Instant::now()));
                }
                false
            }
        }
    }

    pub fn update_gauges(&self, app: &App) {
        let g = self.membership();
        let unhealthy = self.unhealthy_now();
        let m = &app.metrics.routing_members;
        m.with_label_values(&["listed"]).set(g.members.len() as i64);
        m.with_label_values(&["ready"]).set(g.members.iter().filter(|m| m.ready).count() as i64);
        m.with_label_values(&["eligible"]).set(g.members.iter().filter(|m| m.eligible()).count() as i64);
        m.with_label_values(&["unhealthy"]).set(unhealthy.len() as i64);
    }

    fn unhealthy_now(&self) -> Vec<String> {
        let now = Instant::now();
        let mut u = lock(&self.unhealthy);
        u.retain(|_, until| *until > now);
        u.keys().cloned().collect()
    }

    /// Skip `shard` for a while; true when it was not skipped already.
    fn mark_unhealthy(&self, shard: &str) -> bool {
        let now = Instant::now();
        let before = lock(&self.unhealthy).insert(shard.to_string(), now + UNHEALTHY_FOR);
        before.is_none_or(|until| until <= now)
    }

    /// Where a join for `room` (normalized) that followed `hops` redirects goes.
    pub async fn route(&self, app: &App, room: &str, hops: u8) -> Decision {
        if hops >= MAX_HOPS || live_here(app, room) {
            return Decision::Local;
        }
        let g = self.membership();
        let skip = self.unhealthy_now();
        let peers: Vec<&GroupMember> = g
            .members
            .iter()
            .filter(|m| m.shard != self.shard && m.ready && !skip.contains(&m.shard))
            .collect();
        let answers = futures_util::future::join_all(peers.iter().map(|m| async move {
            (*m, tokio::time::timeout(PEER_TIMEOUT, query(&m.internal_url, room, &self.secret)).await)
        }))
        .await;
        let mut holder: Option<(&GroupMember, u64)> = None;
        let mut failed = skip;
        for (m, r) in answers {
            match r {
                Ok(Ok(p)) => {
                    if p.live && holder.is_none_or(|(_, n)| p.participants > n) {
                        holder = Some((m, p.participants));
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    let why = match r {
                        Ok(Err(e)) => format!("{e:#}"),
                        _ => format!("no answer within {PEER_TIMEOUT:?}"),
                    };
                    app.metrics.routing_peer_failures.with_label_values(&[&m.shard]).inc();
                    // Concurrent joins all find a dead peer at once: one line per outage.
                    if self.mark_unhealthy(&m.shard) {
                        tracing::warn!(peer = %m.shard, room, "peer query failed: {why}; skipping it for {UNHEALTHY_FOR:?}");
                    } else {
                        tracing::debug!(peer = %m.shard, room, "peer query failed: {why}");
                    }
                    failed.push(m.shard.clone());
                }
            }
        }
        self.update_gauges(app);
        // Another participant may have made the room live here while we asked.
        if live_here(app, room) {
            return Decision::Local;
        }
        if let Some((m, _)) = holder {
            return Decision::Redirect {
                shard: m.shard.clone(),
                url: routing::redirect_url(&m.url, hops + 1),
                why: "live",
            };
        }
        let candidates: Vec<GroupMember> = g
            .members
            .iter()
            .filter(|m| m.shard == self.shard || !failed.contains(&m.shard))
            .cloned()
            .collect();
        match routing::owner(room, &candidates) {
            Some(m) if m.shard != self.shard => Decision::Redirect {
                shard: m.shard.clone(),
                url: routing::redirect_url(&m.url, hops + 1),
                why: "owner",
            },
            // Ours, or nobody is eligible (an empty or all-draining membership): take it.
            _ => Decision::Local,
        }
    }
}

/// The room has participants or people waiting in its lobby here.
pub fn live_here(app: &App, room: &str) -> bool {
    presence(app, room).live
}

pub fn presence(app: &App, room: &str) -> RoomPresence {
    match app.room(room) {
        Some(r) => {
            let r = lock(&r);
            let n = (r.participants.len() + r.waiting.len()) as u64;
            RoomPresence { live: !r.closed && n > 0, participants: r.participants.len() as u64 }
        }
        None => RoomPresence::default(),
    }
}

/// Ask the signaling at `base` (`http://host:port`) whether `room` is live there.
pub async fn query(base: &str, room: &str, secret: &str) -> anyhow::Result<RoomPresence> {
    let url = format!("{}{}{room}", base.trim_end_matches('/'), paths::SIGNALING_INTERNAL_ROOMS);
    let uri: hyper::Uri = url.parse().with_context(|| format!("peer URL {url:?}"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("peer URL {url:?}: only http:// is supported (the cluster-internal listener)");
    }
    let host = uri.host().context("peer URL without a host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let _ = tcp.set_nodelay(true);
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(uri.path())
        .header(hyper::header::HOST, uri.authority().map(|a| a.as_str()).unwrap_or(&host))
        .header(hyper::header::AUTHORIZATION, format!("Bearer {secret}"))
        .body(Body::empty())?;
    let resp = send.send_request(req).await?;
    let status = resp.status();
    let body = axum::body::to_bytes(Body::new(resp.into_body()), MAX_ANSWER).await?;
    conn.abort();
    if !status.is_success() {
        anyhow::bail!("{status}: {}", String::from_utf8_lossy(&body[..body.len().min(200)]));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Re-read the membership every [`RELOAD_EVERY`].
pub async fn watch(app: Arc<App>) {
    let Some(r) = app.routing.clone() else { return };
    let mut tick = tokio::time::interval(RELOAD_EVERY);
    loop {
        tick.tick().await;
        r.reload(&app);
        r.update_gauges(&app);
    }
}

/// The `hops` query parameter of a client WebSocket URL (0 when absent or bad).
pub fn hops_of(query: Option<&str>) -> u8 {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == routing::HOPS_QUERY)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_from_the_query() {
        assert_eq!(hops_of(None), 0);
        assert_eq!(hops_of(Some("hops=1")), 1);
        assert_eq!(hops_of(Some("x=y&hops=2")), 2);
        assert_eq!(hops_of(Some("hops=999")), 0);
        assert_eq!(hops_of(Some("hops")), 0);
    }
}
