//! The bridge's side of the control channel: it dials signaling's WebSocket with the shared
//! secret, registers, reports load, and relays messages both ways. Reconnects with backoff.
//!
//! Bounded like every other input: messages and frames from signaling have a size limit (a
//! larger one closes the connection), messages towards it wait in a bounded queue (overflow
//! resets the connection), and a ping every keep-alive interval with a deadline of three
//! intervals on reads and on each send notices a dead peer.
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tracing::{info, warn};

use crate::bridge::Bridge;
use crate::control::{self, ErrorCode, FromBridge, ToBridge};
use crate::control_queue::ControlIn;
use crate::metrics::DropReason;
use crate::sfu::ratelimit::TokenBucket;

pub async fn run(url: String, bridge: Arc<Bridge>, mut events: ControlIn, tls: Option<TlsConnector>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let result = session(&url, &bridge, &mut events, tls.as_ref()).await;
        bridge.metrics.signaling_connected.set(0);
        match result {
            Ok(()) => {
                info!("signaling closed the control connection");
                backoff = Duration::from_millis(500);
            }
            Err(e) => warn!(%url, "control connection failed: {e:#}"),
        }
        // Messages produced while disconnected are stale (signaling re-syncs on Register).
        events.clear();
        let jitter = Duration::from_millis(fastrand::u64(0..250));
        tokio::time::sleep(backoff + jitter).await;
        backoff = (backoff * 2).min(Duration::from_secs(15));
    }
}

async fn session(
    url: &str,
    bridge: &Arc<Bridge>,
    events: &mut ControlIn,
    tls: Option<&TlsConnector>,
) -> anyhow::Result<()> {
    let cfg = &bridge.cfg;
    let max = cfg.control_max_message_bytes.max(1024);
    let keepalive = Duration::from_millis(cfg.control_keepalive_ms.max(10));
    let dead_after = keepalive * 3;
    let mut ws_cfg = WebSocketConfig::default();
    ws_cfg.max_message_size = Some(max);
    ws_cfg.max_frame_size = Some(max);
    let dial = crate::control_dial::dial(url, cfg.secret.as_deref(), ws_cfg, tls);
    let ws = tokio::time::timeout(Duration::from_secs(10), dial).await??;
    info!(%url, "control connection up");
    events.clear();
    let (mut tx, mut rx) = ws.split();
    send(&mut tx, control::to_json(&bridge.register_message()), dead_after).await?;
    send(&mut tx, control::to_json(&FromBridge::Load(bridge.load())), dead_after).await?;
    bridge.metrics.signaling_connected.set(1);
    let mut tick = tokio::time::interval(Duration::from_secs(cfg.load_interval_s.max(1)));
    let mut ping = tokio::time::interval_at(Instant::now() + keepalive, keepalive);
    let mut last_read = Instant::now();
    let mut log_limit = TokenBucket::new(1.0, 5.0, std::time::Instant::now());
    loop {
        if events.take_overflow() {
            anyhow::bail!(
                "outbound control queue full ({} messages): signaling is not keeping up; \
                 reconnecting so that it resyncs",
                cfg.control_queue
            );
        }
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Ok(()) };
                send(&mut tx, control::to_json(&ev), dead_after).await?;
            }
            _ = tick.tick() => {
                send(&mut tx, control::to_json(&FromBridge::Load(bridge.load())), dead_after).await?;
            }
            _ = ping.tick() => {
                if last_read.elapsed() >= dead_after {
                    anyhow::bail!("nothing from signaling for {dead_after:?} (pings unanswered): presumed dead");
                }
                timed(dead_after, tx.send(WsMessage::Ping(Default::default()))).await?;
            }
            msg = rx.next() => {
                last_read = Instant::now();
                let msg = match msg {
                    None => return Ok(()),
                    Some(Err(WsError::Capacity(e))) => {
                        bridge.metrics.count_drop(DropReason::Control);
                        anyhow::bail!("control message from signaling over the limit of {max} bytes ({e}): closing the connection");
                    }
                    Some(m) => m?,
                };
                match msg {
                    WsMessage::Text(t) => match control::parse::<ToBridge>(t.as_str()) {
                        Ok(m) => bridge.send(m),
                        Err(e) => {
                            bridge.metrics.count_drop(DropReason::Control);
                            if log_limit.allow(std::time::Instant::now()) {
                                warn!("bad control message: {e}");
                            }
                            let reply = FromBridge::error(None, ErrorCode::BadRequest, e.to_string());
                            send(&mut tx, control::to_json(&reply), dead_after).await?;
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

pub(crate) async fn send<S>(tx: &mut S, text: String, limit: Duration) -> anyhow::Result<()>
where
    S: Sink<WsMessage, Error = WsError> + Unpin,
{
    timed(limit, tx.send(WsMessage::text(text))).await
}

/// A send that may not take longer than `limit` (a peer that stopped reading).
pub(crate) async fn timed(
    limit: Duration,
    f: impl std::future::Future<Output = Result<(), WsError>>,
) -> anyhow::Result<()> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => Ok(r?),
        Err(_) => anyhow::bail!("a send to signaling stalled for {limit:?}: presumed dead"),
    }
}
