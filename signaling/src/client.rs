//! `/ws`: one task per browser. The first frame must be `join`; afterwards every frame goes to
//! the room (`crate::room`), which checks it against the room state (joined, waiting in the
//! lobby, or gone).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::protocol::{self, ClientMsg, ErrorCode, PROTOCOL_VERSION, ServerMsg};
use crate::room::join::{JoinRequest, clean_avatar, clean_name, join_room};
use crate::room::{self, RoomRef, refuse};
use crate::state::{App, Tx};
/// Messages queued for one client beyond which it is disconnected (slow consumer).
const MAX_QUEUED: usize = 2048;
const RATE: f64 = 50.0;
const BURST: f64 = 200.0;

pub async fn handle(app: Arc<App>, socket: WebSocket) {
    app.metrics.ws_connections.inc();
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<ServerMsg>();
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if rx.len() > MAX_QUEUED {
                // A client this far behind cannot keep up: close; the app reconnects and rejoins.
                tracing::warn!(queued = rx.len(), "slow client: closing its connection");
                let _ = sink.close().await;
                break;
            }
            let last = matches!(m, ServerMsg::Kicked { .. } | ServerMsg::LobbyDenied);
            if sink.send(WsMessage::text(m.to_json())).await.is_err() {
                break;
            }
            if last {
                let _ = sink.close().await;
                break;
            }
        }
    });
    let _ = tx.send(ServerMsg::Hello { v: PROTOCOL_VERSION });
    let pid = new_id();
    let mut room: Option<RoomRef> = None;
    // Token bucket: RATE messages per second, bursts of BURST.
    let mut budget = BURST;
    let mut refilled = std::time::Instant::now();
    while let Some(Ok(frame)) = stream.next().await {
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
                Ok(ClientMsg::Leave) => break,
                Ok(m) => on_message(&app, &pid, &mut room, &tx, m),
                Err(e) => refuse(&app, &tx, ErrorCode::BadRequest, e),
            },
            WsMessage::Close(_) => break,
            _ => {}
        }
    }
    if let Some(r) = room {
        room::leave(&app, &r, &pid);
    }
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(1), writer).await;
    app.metrics.ws_connections.dec();
}

fn new_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

fn on_message(app: &Arc<App>, pid: &str, room: &mut Option<RoomRef>, tx: &Tx, msg: ClientMsg) {
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
                    format!("protocol version {v} is not supported (1)"),
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
