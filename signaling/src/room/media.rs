//! Media: endpoint allocation on the conference's bridge, and the relay of the client's SDP,
//! ICE candidates and receiver constraints to it.
use std::sync::Arc;
use std::time::Duration;

use convene_proto::client::{CandidateType, IceOutcome, TurnError};
use convene_proto::control::{self, FromBridge, ToBridge};

use crate::protocol::{ClientMsg, ErrorCode, ServerMsg};
use crate::room::{Room, refuse};
use crate::state::{App, Tx, lock};
use crate::turn::{self, IceServer};

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub fn ice_servers(app: &App, user: &str) -> Vec<IceServer> {
    match &app.settings.turn {
        Some(t) => turn::ice_servers(t, user, now_unix()),
        None => Vec::new(),
    }
}

pub fn spawn_setup(app: &Arc<App>, room: &str, pid: &str, migration: bool) {
    tokio::spawn(setup_media(app.clone(), room.to_string(), pid.to_string(), migration));
}

/// Allocate the participant's endpoint on the conference's bridge (choosing one if needed)
/// and tell the client to (re)negotiate.
pub async fn setup_media(app: Arc<App>, room: String, pid: String, migration: bool) {
    for attempt in 0..20u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let Some(handle) = app.room(&room) else { return };
        let chosen = {
            let mut r = lock(&handle);
            if !r.participants.contains_key(&pid) {
                return;
            }
            // Under the room lock, so the room's participants agree on one bridge.
            let chosen = {
                let mut inner = app.lock();
                let region = r.participants.get(&pid).and_then(|p| p.region.clone());
                let chosen = app.bridge_for(&inner, r.bridge.as_deref(), region.as_deref());
                if let Some((b, _)) = &chosen
                    && let Some(br) = inner.bridges.get_mut(b)
                {
                    br.recent += 1;
                }
                chosen
            };
            if let Some((b, _)) = &chosen {
                r.bridge = Some(b.clone());
            }
            chosen
        };
        let Some((bridge, conn)) = chosen else {
            app.metrics.allocation_failures.inc();
            if attempt == 0 || attempt == 19 {
                send_to(
                    &app,
                    &room,
                    &pid,
                    ServerMsg::error(ErrorCode::NoBridge, "no media bridge is available; retrying"),
                );
            }
            continue;
        };
        let req =
            ToBridge::AllocateEndpoint { id: app.next_id(), conference: room.clone(), endpoint: pid.clone() };
        match conn.request(req).await {
            Some(FromBridge::Allocated { .. }) => {
                let told = {
                    let mut r = lock(&handle);
                    match r.participants.get_mut(&pid) {
                        Some(p) => {
                            p.bridge = Some(bridge.clone());
                            // The client makes a peer connection for it and reports how it went.
                            p.ice_due = (p.ice_due + 1).min(crate::ice::MAX_DUE);
                            let ice_servers = ice_servers(&app, &pid);
                            let _ = p.tx.send(ServerMsg::Media { bridge, migration, ice_servers });
                            true
                        }
                        None => false,
                    }
                };
                if !told {
                    // Left while we allocated.
                    conn.send(&ToBridge::ExpireEndpoint {
                        id: app.next_id(),
                        conference: room,
                        endpoint: pid,
                    });
                }
                return;
            }
            Some(FromBridge::Error { code: control::ErrorCode::Conflict, .. }) => {
                // A stale endpoint of ours (e.g. after a control reconnect): free it and retry.
                conn.request(ToBridge::ExpireEndpoint {
                    id: app.next_id(),
                    conference: room.clone(),
                    endpoint: pid.clone(),
                })
                .await;
            }
            other => {
                app.metrics.allocation_failures.inc();
                tracing::warn!(%room, %bridge, reply = ?other.as_ref().map(control::to_json), "allocation failed");
                let mut r = lock(&handle);
                if r.bridge.as_deref() == Some(bridge.as_str())
                    && r.participants.values().all(|p| p.bridge.as_deref() != Some(bridge.as_str()))
                {
                    r.bridge = None;
                }
            }
        }
    }
    send_to(&app, &room, &pid, ServerMsg::error(ErrorCode::NoBridge, "could not allocate media"));
}

/// A participant's `ice_report`: counted for `bridge` when that is still the bridge holding its
/// endpoint and a `media` message is left unreported (one report per peer connection); any
/// other is ignored without a reply (a report overtaken by a migration, a repeated one, one
/// from a client that never got media), so no client can add more than its peer connections.
pub fn ice_report(
    app: &App,
    r: &mut Room,
    pid: &str,
    bridge: &str,
    outcome: IceOutcome,
    candidate: Option<CandidateType>,
    turn_error: Option<TurnError>,
) {
    let Some(p) = r.participants.get_mut(pid) else { return };
    if p.ice_due == 0 || p.bridge.as_deref() != Some(bridge) {
        tracing::debug!(participant = %pid, %bridge, on = ?p.bridge, due = p.ice_due, "ICE report ignored");
        return;
    }
    p.ice_due -= 1;
    let label = crate::ice::candidate_label(outcome, candidate);
    app.metrics.ice.with_label_values(&[bridge, outcome.as_str(), label]).inc();
    lock(&app.ice).record(bridge, outcome, candidate, std::time::Instant::now());
    if outcome == IceOutcome::Failed {
        tracing::info!(participant = %pid, room = %r.name, %bridge, "a client's ICE with its bridge failed");
    }
    if let Some(e) = turn_error {
        app.metrics.turn_errors.with_label_values(&[e.as_str()]).inc();
        tracing::info!(participant = %pid, room = %r.name, reason = e.as_str(), "a TURN relay gave a client no allocation");
    }
}

fn send_to(app: &App, room: &str, pid: &str, msg: ServerMsg) {
    let Some(handle) = app.room(room) else { return };
    if let Some(p) = lock(&handle).participants.get(pid) {
        let _ = p.tx.send(msg);
    }
}

/// Relay a media frame to the bridge holding the participant's endpoint (`bridge`, read
/// under the room lock).
pub fn relay(app: &App, conference: &str, pid: &str, tx: &Tx, bridge: Option<String>, msg: ClientMsg) {
    let conn = bridge.and_then(|b| app.lock().bridges.get(&b)?.conn.clone());
    let (conference, endpoint) = (conference.to_string(), pid.to_string());
    match msg {
        ClientMsg::Offer { sdp, sources } => {
            let Some(conn) = conn else {
                return refuse(app, tx, ErrorCode::MediaError, "no bridge yet: wait for the media message");
            };
            let req = ToBridge::Offer { id: app.next_id(), conference, endpoint, sdp, sources };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Some(FromBridge::Error { message, .. }) = conn.request(req).await {
                    let _ = tx.send(ServerMsg::error(
                        ErrorCode::MediaError,
                        format!("bridge refused the offer: {message}"),
                    ));
                }
            });
        }
        ClientMsg::Answer { id, sdp } => {
            if let Some(conn) = conn {
                conn.send(&ToBridge::Answer { offer_id: id, conference, endpoint, sdp });
            }
        }
        ClientMsg::Ice { candidate } => {
            if let Some(conn) = conn
                && !candidate.is_empty()
                && candidate.len() < 1024
            {
                conn.send(&ToBridge::IceCandidate { id: app.next_id(), conference, endpoint, candidate });
            }
        }
        ClientMsg::Constraints { constraints } => {
            if let Some(conn) = conn {
                conn.send(&ToBridge::ReceiverConstraints {
                    id: app.next_id(),
                    conference,
                    endpoint,
                    constraints,
                });
            }
        }
        _ => {}
    }
}
