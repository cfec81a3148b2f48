//! The bridge's side of the control channel: it dials signaling's WebSocket with the shared
//! secret, registers, reports load, and relays messages both ways. Reconnects with backoff.
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::control::{self, ErrorCode, FromBridge, MAX_MESSAGE_BYTES, ToBridge};
use crate::metrics::DropReason;
use crate::sfu::ratelimit::TokenBucket;

pub async fn run(url: String, bridge: Arc<Bridge>, mut events: UnboundedReceiver<FromBridge>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = session(&url, &bridge, &mut events).await;
        bridge.metrics.signaling_connected.set(0);
        match result {
            Ok(()) => {
                info!("signaling closed the control connection");
                backoff = Duration::from_millis(500);
            }
            Err(e) => warn!(%url, "control connection failed: {e:#}"),
        }
        // Messages produced while disconnected are stale (signaling re-syncs on Register).
        while events.try_recv().is_ok() {}
        let jitter = Duration::from_millis(fastrand::u64(0..250));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

async fn session(
    url: &str,
    bridge: &Arc<Bridge>,
    events: &mut UnboundedReceiver<FromBridge>,
) -> anyhow::Result<()> {
    let mut req = url.into_client_request()?;
    if let Some(secret) = &bridge.cfg.secret {
        req.headers_mut().insert("Authorization", format!("Bearer {secret}").parse()?);
    }
    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(4 * MAX_MESSAGE_BYTES);
    ws_cfg.max_frame_size = Some(4 * MAX_MESSAGE_BYTES);
    let (ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        // disable_nagle: replies and offers must not wait ~40 ms behind each other.
        tokio_tungstenite::connect_async_with_config(req, Some(ws_cfg), true),
    )
    .await??;
    info!(%url, "control connection up");
    let (mut tx, mut rx) = ws.split();
    tx.send(WsMessage::text(control::to_json(&bridge.register_message()))).await?;
    tx.send(WsMessage::text(control::to_json(&FromBridge::Load(bridge.load())))).await?;
    bridge.metrics.signaling_connected.set(1);
    let mut tick = tokio::time::interval(Duration::from_secs(bridge.cfg.load_interval_s.max(1)));
    let mut log_limit = TokenBucket::new(1.0, 5.0, std::time::Instant::now());
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                tx.send(WsMessage::text(control::to_json(&ev))).await?;
            }
            _ = tick.tick() => {
                tx.send(WsMessage::text(control::to_json(&FromBridge::Load(bridge.load())))).await?;
            }
            msg = rx.next() => {
                let Some(msg) = msg else { return Ok(()) };
                match msg? {
                    WsMessage::Text(t) => match control::parse::<ToBridge>(t.as_str()) {
                        Ok(m) => bridge.send(m),
                        Err(e) => {
                            bridge.metrics.count_drop(DropReason::Control);
                            if log_limit.allow(std::time::Instant::now()) {
                                warn!("bad control message: {e}");
                            }
                            let reply = FromBridge::error(None, ErrorCode::BadRequest, e.to_string());
                            tx.send(WsMessage::text(control::to_json(&reply))).await?;
                        }
                    },
                    WsMessage::Close(_) => return Ok(()),
                    WsMessage::Binary(_) => bridge.metrics.count_drop(DropReason::Control),
                    _ => {}
                }
            }
        }
    }
}
