//! `/bridge`: bridges dial in, register, report load; we route their answers and offers to
//! clients and move conferences away from bridges that vanish, go stale or drain.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use convene_proto::control::{self, FromBridge, ToBridge};
use convene_proto::recorder::Interruption;

use crate::control_socket::ControlSocket;
use crate::protocol::ServerMsg;
use crate::state::{App, BridgeConn, RegisteredBridge, Tx, lock};

/// How long a bridge whose control connection dropped has to come back before its
/// conferences move (endpoints survive a control reconnect).
pub const RECONNECT_GRACE: Duration = Duration::from_secs(2);

pub async fn handle(app: Arc<App>, socket: WebSocket) {
    let Some((mut socket, first)) = ControlSocket::first(socket).await else { return };
    let refuse = |why: &str| control::to_json(&FromBridge::error(None, control::ErrorCode::BadRequest, why));
    let Ok(FromBridge::Register { protocol_version, bridge_id, region, version, addresses, drain, .. }) =
        control::parse::<FromBridge>(&first)
    else {
        socket.refuse(refuse("expected register")).await;
        return;
    };
    if protocol_version != control::PROTOCOL_VERSION || bridge_id.is_empty() {
        socket.refuse(refuse("unsupported protocol version")).await;
        return;
    }
    let (tx, rx) = ControlSocket::queue(&app, "bridge");
    let conn = BridgeConn::new(tx.clone());
    {
        let mut inner = app.lock();
        let now = Instant::now();
        let b = inner
            .bridges
            .entry(bridge_id.clone())
            .or_insert_with(|| RegisteredBridge::new(bridge_id.clone(), now));
        b.region = region.clone();
        b.addresses = addresses.iter().map(|a| a.address.clone()).collect();
        b.version = version.clone();
        b.set_drain(drain, now);
        b.last_seen = now;
        b.conn = Some(conn.clone());
        app.update_gauges(&inner);
    }
    // The bridge's ICE series exist from now on, at 0 until a client reports.
    for (outcome, candidate) in crate::ice::LABELS {
        app.metrics.ice.with_label_values(&[bridge_id.as_str(), outcome, candidate]);
    }
    tracing::info!(bridge = %bridge_id, region = ?region, version = %version, draining = drain.is_some(), "bridge registered");
    socket
        .run(&app, &tx, rx, &bridge_id, |t| match control::parse::<FromBridge>(t) {
            Ok(m) => on_message(&app, &bridge_id, &conn, m),
            Err(e) => tracing::warn!(bridge = %bridge_id, error = %e, "bad control frame"),
        })
        .await;
    tracing::warn!(bridge = %bridge_id, "bridge control connection closed");
    let still_ours = {
        let mut inner = app.lock();
        let ours = match inner.bridges.get_mut(&bridge_id) {
            Some(b) if b.conn.as_ref().map(|c| c.generation) == Some(conn.generation) => {
                b.conn = None;
                true
            }
            _ => false,
        };
        app.update_gauges(&inner);
        ours
    };
    lock_pending_clear(&conn);
    if still_ours {
        tokio::time::sleep(RECONNECT_GRACE).await;
        let gone = {
            let inner = app.lock();
            inner.bridges.get(&bridge_id).is_some_and(|b| b.conn.is_none())
        };
        if gone {
            tracing::warn!(bridge = %bridge_id, "bridge did not come back: moving its conferences");
            move_off(&app, &bridge_id, Departure::Lost);
        }
    }
}

fn lock_pending_clear(conn: &BridgeConn) {
    lock(&conn.pending).clear();
}

pub fn on_message(app: &Arc<App>, bridge_id: &str, conn: &BridgeConn, msg: FromBridge) {
    let now = Instant::now();
    {
        let mut inner = app.lock();
        if let Some(b) = inner.bridges.get_mut(bridge_id) {
            b.last_seen = now;
            match &msg {
                FromBridge::Load(load) => {
                    b.set_drain(load.drain, now);
                    b.load = load.clone();
                    b.recent = 0;
                }
                FromBridge::Draining { drain } => b.set_drain(*drain, now),
                _ => {}
            }
        }
    }
    // The bridge lock is released: what follows takes room locks.
    if crate::recording::from_bridge(app, bridge_id, &msg) {
        // A recorder's hidden endpoint: relayed to it, never to the room. (A reply still
        // completes the request waiting for it.)
        if let FromBridge::Answer { id, .. } = msg {
            conn.complete(id, msg);
        }
        return;
    }
    match msg {
        FromBridge::Load(_) => {}
        FromBridge::Draining { drain } => {
            let deadline_s = drain.map(|d| d.remaining_ms() / 1000);
            tracing::info!(bridge = %bridge_id, draining = drain.is_some(), ?deadline_s, "bridge draining state");
        }
        FromBridge::Allocated { id, .. } | FromBridge::Ok { id } => {
            conn.complete(id, msg);
        }
        FromBridge::Error { id, ref code, ref message } => {
            if let Some(id) = id
                && conn.complete(id, msg.clone())
            {
                return;
            }
            tracing::debug!(bridge = %bridge_id, ?code, %message, "bridge error");
        }
        FromBridge::Answer { id, ref conference, ref endpoint, ref sdp } => {
            if let Some(p) = participant_on(app, bridge_id, conference, endpoint) {
                let _ = p.send(ServerMsg::Answer { sdp: sdp.clone() });
            }
            conn.complete(id, msg);
        }
        FromBridge::Offer { offer_id, conference, endpoint, sdp, slots } => {
            if let Some(p) = participant_on(app, bridge_id, &conference, &endpoint) {
                let _ = p.send(ServerMsg::Offer { id: offer_id, sdp, slots });
            }
        }
        FromBridge::Slots { conference, endpoint, slots } => {
            if let Some(p) = participant_on(app, bridge_id, &conference, &endpoint) {
                let _ = p.send(ServerMsg::Slots { slots });
            }
        }
        FromBridge::EndpointState { conference, endpoint, state } => {
            if let Some(room) = app.room(&conference) {
                lock(&room).broadcast(&ServerMsg::ConnectionState { id: endpoint, state }, None);
            }
        }
        FromBridge::DominantSpeaker { conference, endpoint } => {
            if let Some(room) = app.room(&conference) {
                let mut r = lock(&room);
                if r.bridge.as_deref() == Some(bridge_id) {
                    r.dominant = Some(endpoint.clone());
                    r.broadcast(&ServerMsg::DominantSpeaker { id: endpoint }, None);
                }
            }
        }
        FromBridge::Register { .. } => tracing::warn!(bridge = %bridge_id, "second register ignored"),
    }
}

fn participant_on(app: &App, bridge_id: &str, conference: &str, endpoint: &str) -> Option<Tx> {
    let room = app.room(conference)?;
    let r = lock(&room);
    let p = r.participants.get(endpoint)?;
    (p.bridge.as_deref() == Some(bridge_id)).then(|| p.tx.clone())
}

/// Why participants move off a bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Departure {
    /// The bridge is gone (control connection lost, or silent): forget it.
    Lost,
    /// Its drain deadline passed: it stays registered (and frees the old endpoints).
    DrainDeadline,
}

/// Move every participant on `bridge_id` to another bridge.
pub fn move_off(app: &Arc<App>, bridge_id: &str, why: Departure) {
    let old_conn = {
        let mut inner = app.lock();
        let old_conn = inner.bridges.get(bridge_id).and_then(|b| b.conn.clone());
        match why {
            Departure::Lost => {
                if let Some(b) = inner.bridges.remove(bridge_id) {
                    let state = if b.draining() { "draining" } else { "serving" };
                    app.metrics.bridges_lost.with_label_values(&[state]).inc();
                }
            }
            Departure::DrainDeadline => {
                if let Some(b) = inner.bridges.get_mut(bridge_id) {
                    b.drain_migrated = true;
                }
            }
        }
        app.update_gauges(&inner);
        old_conn
    };
    // New allocations no longer pick this bridge; now find who is on it, room by room.
    let mut moves = Vec::new();
    for room in app.all_rooms() {
        let mut room = lock(&room);
        if room.bridge.as_deref() == Some(bridge_id) {
            room.bridge = None;
        }
        if room.recording.as_ref().is_some_and(|x| x.bridge == bridge_id) {
            crate::recording::interrupt(app, &mut room, Interruption::BridgeMigration);
        }
        let name = room.name.clone();
        for (pid, p) in room.participants.iter_mut() {
            if p.bridge.as_deref() == Some(bridge_id) {
                p.bridge = None;
                moves.push((name.clone(), pid.clone()));
            }
        }
    }
    for (room, pid) in moves {
        app.metrics.migrations.inc();
        let app = app.clone();
        let app2 = app.clone();
        let old = if why == Departure::Lost { None } else { old_conn.clone() };
        tokio::spawn(async move {
            crate::room::media::setup_media(app, room.clone(), pid.clone(), true).await;
            if let Some(old) = old {
                // Give the client time to reconnect to the new bridge, then free the old endpoint.
                tokio::time::sleep(Duration::from_secs(5)).await;
                old.send(&ToBridge::ExpireEndpoint { id: app2.next_id(), conference: room, endpoint: pid });
            }
        });
    }
}

/// Every second: bridges that went silent are lost; draining bridges past the deadline they
/// reported have their participants moved. Every [`crate::ice::PUBLISH_EVERY`]: each bridge is
/// sent its clients' ICE counts.
pub async fn monitor(app: Arc<App>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ice_published = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        if now.saturating_duration_since(ice_published) >= crate::ice::PUBLISH_EVERY {
            ice_published = now;
            crate::ice::publish(&app, now);
        }
        let stale = app.stale();
        let (lost, drained): (Vec<String>, Vec<String>) = {
            let inner = app.lock();
            let lost = inner
                .bridges
                .values()
                .filter(|b| now.saturating_duration_since(b.last_seen) > stale)
                .map(|b| b.id.clone())
                .collect();
            let drained = inner
                .bridges
                .values()
                .filter(|b| !b.drain_migrated && b.drain_deadline.is_some_and(|t| now >= t))
                .map(|b| b.id.clone())
                .collect();
            (lost, drained)
        };
        for id in lost {
            tracing::warn!(bridge = %id, "bridge is stale: moving its conferences");
            move_off(&app, &id, Departure::Lost);
        }
        for id in drained {
            tracing::info!(bridge = %id, "drain deadline reached: moving its conferences");
            move_off(&app, &id, Departure::DrainDeadline);
        }
    }
}
