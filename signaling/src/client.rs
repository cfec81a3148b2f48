//! `/ws`: one task per browser. The first frame must be `join`; afterwards every frame goes to
//! the room (`crate::room`), which checks it against the room state (joined, waiting in the
//! lobby, or gone).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;

use crate::net::UnauthPermit;
use crate::outbox::{self, CloseReason};
use crate::protocol::{self, ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use crate::room::join::{JoinRequest, clean_avatar, clean_name, join_room};
use crate::room::{self, RoomRef, refuse};
use crate::state::{App, Tx};
const RATE: f64 = 50.0;
const BURST: f64 = 200.0;
/// How long we keep trying to deliver a close frame to a peer we are closing.
const CLOSE_GRACE: Duration = Duration::from_secs(3);
/// Error messages quote at most this much of what the client sent.
const MAX_ECHO: usize = 200;

pub fn close_frame(r: CloseReason) -> WsMessage {
    WsMessage::Close(Some(CloseFrame { code: r.code(), reason: r.as_str().into() }))
}

/// `s` cut to `MAX_ECHO` bytes (on a char boundary), so no reply grows with the input.
pub fn cap(s: &str) -> String {
    if s.len() <= MAX_ECHO {
        return s.to_string();
    }
    let mut end = MAX_ECHO;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What the WebSocket's upgrade request said besides the socket itself.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    /// Redirects the client followed to get here (`?hops=`; see [`crate::routing`]).
    pub hops: u8,
    /// The participant's region, from the edge's header (`routing.regionHeader`).
    pub region: Option<String>,
}

/// `permit` holds this connection's slot among its address's unauthenticated connections; it
/// is released once the connection is in a room (joined or waiting in the lobby).
pub async fn handle(app: Arc<App>, socket: WebSocket, permit: Option<UnauthPermit>) {
    handle_with(app, socket, permit, ConnInfo::default()).await
}

pub async fn handle_with(app: Arc<App>, socket: WebSocket, mut permit: Option<UnauthPermit>, conn: ConnInfo) {
    app.metrics.ws_connections.inc();
    let limits = app.settings.limits.clone();
    let (mut sink, mut stream) = socket.split();
    let (out, mut rx) = outbox::channel(
        limits.max_queued_frames,
        limits.max_queued_bytes,
        app.metrics.queued_frames.with_label_values(&["client"]),
        app.metrics.queued_bytes.with_label_values(&["client"]),
    );
    let tx = Tx(out.clone());
    let writer = tokio::spawn(async move {
        let mut closing = rx.closing();
        let reason = loop {
            let f = tokio::select! {
                biased;
                r = outbox::wait_close(&mut closing) => break Some(r),
                f = rx.recv() => f,
            };
            let Some(f) = f else { break None };
            // A peer that does not read blocks this send; being marked for closing ends it.
            let sent = tokio::select! {
                biased;
                r = outbox::wait_close(&mut closing) => break Some(r),
                r = sink.send(WsMessage::text(f.text.clone())) => r.is_ok(),
            };
            rx.done(&f);
            if !sent {
                break None;
            }
            if let Some(r) = f.then_close {
                rx.close(r);
                break Some(r);
            }
        };
        if let Some(r) = reason {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                // A slow consumer's queue is dropped; otherwise what is queued (the `error`
                // that explains a 1009, say) goes out before the close frame.
                if r != CloseReason::SlowConsumer {
                    while let Some(f) = rx.try_recv() {
                        let sent = sink.send(WsMessage::text(f.text.clone())).await.is_ok();
                        rx.done(&f);
                        if !sent {
                            return;
                        }
                    }
                }
                let _ = sink.send(close_frame(r)).await;
            })
            .await;
        }
        drop(rx);
    });
    let _ = tx.send(ServerMsg::Hello { v: PROTOCOL_VERSION });
    let pid = new_id();
    let mut room: Option<RoomRef> = None;
    // Token bucket: RATE messages per second, bursts of BURST.
    let mut budget = BURST;
    let mut refilled = std::time::Instant::now();
    let mut closing = out.closing();
    let connected = Instant::now();
    let mut last_heard = connected;
    let closed_by_us = loop {
        // Before joining: the join deadline (and the idle one); afterwards only the idle one.
        let idle_at = last_heard + limits.idle_timeout;
        let (deadline, why) = match &room {
            None if connected + limits.join_timeout < idle_at => {
                (connected + limits.join_timeout, CloseReason::JoinTimeout)
            }
            _ => (idle_at, CloseReason::IdleTimeout),
        };
        let frame = tokio::select! {
            r = outbox::wait_close(&mut closing) => break Some(r),
            _ = tokio::time::sleep_until(deadline) => {
                out.close(why);
                break Some(why);
            }
            f = stream.next() => f,
        };
        let frame = match frame {
            Some(Ok(f)) => f,
            Some(Err(e)) => {
                if too_large(&e) {
                    // Say so, then close with 1009 (instead of just dropping the connection).
                    refuse(
                        &app,
                        &tx,
                        ErrorCode::BadRequest,
                        format!("frame too large (over {} bytes)", protocol::MAX_CLIENT_FRAME),
                    );
                    out.close(CloseReason::TooLarge);
                    break Some(CloseReason::TooLarge);
                }
                break None;
            }
            None => break None,
        };
        last_heard = Instant::now();
        let now = std::time::Instant::now();
        budget = (budget + now.duration_since(refilled).as_secs_f64() * RATE).min(BURST);
        refilled = now;
        if budget < 1.0 {
            refuse(&app, &tx, ErrorCode::RateLimited, "too many messages; slow down");
            continue;
        }
        budget -= 1.0;
        match frame {
            WsMessage::Text(t) => match protocol::parse(t.as_str()) {
                Ok(ClientMsg::Leave) => break None,
                // In a group, a join may belong on another shard: send the client there.
                Ok(m @ ClientMsg::Join { .. }) if room.is_none() && app.routing.is_some() => {
                    if !redirected(&app, &tx, &m, conn.hops).await {
                        on_message_with(&app, &pid, &mut room, &tx, m, &conn);
                    }
                }
                Ok(m) => on_message_with(&app, &pid, &mut room, &tx, m, &conn),
                // serde's message may quote the input (an unknown `type`, a bad string): cap it.
                Err(e) => refuse(&app, &tx, ErrorCode::BadRequest, cap(&e)),
            },
            WsMessage::Binary(_) => refuse(
                &app,
                &tx,
                ErrorCode::BadRequest,
                "binary frames are not supported; send JSON text frames",
            ),
            WsMessage::Close(_) => break None,
            // Pings are answered by the WebSocket layer; they count as activity above.
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
        }
        if room.is_some() {
            permit = None;
        }
    };
    drop(permit);
    if let Some(r) = closed_by_us {
        app.metrics.disconnects.with_label_values(&[r.as_str()]).inc();
        tracing::info!(participant = %pid, reason = r.as_str(), "closing client connection");
    }
    if let Some(r) = room {
        room::leave(&app, &r, &pid);
    }
    drop(tx);
    drop(out);
    // The writer sends the close frame (bounded by CLOSE_GRACE) or ends when the queue does.
    let _ = tokio::time::timeout(CLOSE_GRACE + Duration::from_secs(1), writer).await;
    app.metrics.ws_connections.dec();
}

/// Whether a read error is tungstenite's "message too long" (max_message_size / max_frame_size).
/// axum wraps tungstenite's error; matching its text keeps us off a second tungstenite version
/// (the `oversized_frame_gets_error_then_1009` test guards it).
fn too_large(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if err.to_string().contains("Message too long") {
            return true;
        }
        src = err.source();
    }
    false
}

/// Whether the join `m` was sent to another shard of the group (`redirect`, then the socket
/// closes). Joins that will be refused anyway (bad version or room name) are left to
/// [`on_message`], which says why.
async fn redirected(app: &Arc<App>, tx: &Tx, m: &ClientMsg, hops: u8) -> bool {
    let (Some(routing), ClientMsg::Join { v, room, .. }) = (&app.routing, m) else { return false };
    let Some(name) = protocol::normalize_room(room).filter(|_| *v == PROTOCOL_VERSION) else { return false };
    match routing.route(app, &name, hops).await {
        crate::routing::Decision::Local => false,
        crate::routing::Decision::Redirect { shard, url, why } => {
            app.metrics.routing_redirects.with_label_values(&[why]).inc();
            tracing::info!(room = %name, to = %shard, why, hops, "redirecting a join");
            let _ = tx.send(ServerMsg::Redirect { shard, url });
            true
        }
    }
}

fn new_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

pub fn on_message(app: &Arc<App>, pid: &str, room: &mut Option<RoomRef>, tx: &Tx, msg: ClientMsg) {
    on_message_with(app, pid, room, tx, msg, &ConnInfo::default())
}

/// [`on_message`] for a connection whose upgrade request said more ([`ConnInfo`]).
pub fn on_message_with(
    app: &Arc<App>,
    pid: &str,
    room: &mut Option<RoomRef>,
    tx: &Tx,
    msg: ClientMsg,
    conn: &ConnInfo,
) {
    match msg {
        ClientMsg::Join {
            v,
            room: name,
            name: display,
            avatar,
            token,
            password,
            audio_muted,
            video_muted,
        } => {
            if room.is_some() {
                return refuse(app, tx, ErrorCode::AlreadyJoined, "already joined");
            }
            if v != PROTOCOL_VERSION {
                return refuse(
                    app,
                    tx,
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {v} is not supported ({PROTOCOL_VERSION})"),
                );
            }
            let Some(name) = protocol::normalize_room(&name) else {
                return refuse(app, tx, ErrorCode::InvalidRoom, "room names are 1-64 of a-z 0-9 - _ .");
            };
            let join = JoinRequest {
                display: clean_name(display),
                avatar: clean_avatar(avatar),
                token,
                password,
                audio_muted,
                video_muted,
                region: conn.region.clone(),
            };
            *room = join_room(app, pid, &name, tx, join);
        }
        ClientMsg::Ping => {
            let _ = tx.send(ServerMsg::Pong);
        }
        ClientMsg::Leave => {}
        other => match room {
            Some(r) => room::on_message(app, pid, r, tx, other),
            None => refuse(app, tx, ErrorCode::NotJoined, "join a room first"),
        },
    }
}
