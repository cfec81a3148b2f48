//! The socket side of a control connection (`/bridge`, `/recorder`), shared by both: the
//! first frame (the peer's registration) with a deadline, a bounded outbound queue drained by a
//! writer task, and the read loop that hands each text frame to the caller until the peer
//! closes or the queue is closed (a peer that stopped reading).
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message as WsMessage, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};

use crate::outbox::{self, Outbox, OutboxRx};
use crate::state::App;

pub struct ControlSocket {
    sink: SplitSink<WebSocket, WsMessage>,
    stream: SplitStream<WebSocket>,
}

impl ControlSocket {
    /// Split the socket and read the first text frame (10 s at most).
    pub async fn first(socket: WebSocket) -> Option<(ControlSocket, String)> {
        let (sink, mut stream) = socket.split();
        match tokio::time::timeout(Duration::from_secs(10), stream.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => Some((ControlSocket { sink, stream }, t.to_string())),
            _ => None,
        }
    }

    /// Send one frame before the queue exists (a refusal of the registration).
    pub async fn refuse(&mut self, text: String) {
        let _ = self.sink.send(WsMessage::text(text)).await;
    }

    /// A queue bounded at 16 times a client's (peers are authenticated, but one that stops
    /// reading is closed rather than buffered forever).
    pub fn queue(app: &App, label: &str) -> (Outbox, OutboxRx) {
        let l = &app.settings.limits;
        outbox::channel(
            l.max_queued_frames.saturating_mul(16),
            l.max_queued_bytes.saturating_mul(16),
            app.metrics.queued_frames.with_label_values(&[label]),
            app.metrics.queued_bytes.with_label_values(&[label]),
        )
    }

    /// Write `rx` to the peer and hand every text frame read to `on_text`, until either side
    /// ends. `who` names the peer in logs.
    pub async fn run(
        self,
        app: &Arc<App>,
        tx: &Outbox,
        mut rx: OutboxRx,
        who: &str,
        mut on_text: impl FnMut(&str),
    ) {
        let ControlSocket { mut sink, mut stream } = self;
        let mut closing = tx.closing();
        let mut writer = tokio::spawn(async move {
            let mut closing = rx.closing();
            loop {
                let f = tokio::select! {
                    r = outbox::wait_close(&mut closing) => {
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(crate::client::close_frame(r))).await;
                        break;
                    }
                    f = rx.recv() => f,
                };
                let Some(f) = f else { break };
                let sent = tokio::select! {
                    _ = outbox::wait_close(&mut closing) => continue,
                    r = sink.send(WsMessage::text(f.text.clone())) => r.is_ok(),
                };
                rx.done(&f);
                if !sent {
                    break;
                }
            }
        });
        let writer_abort = writer.abort_handle();
        loop {
            let frame = tokio::select! {
                r = outbox::wait_close(&mut closing) => {
                    app.metrics.disconnects.with_label_values(&[r.as_str()]).inc();
                    tracing::warn!(peer = %who, reason = r.as_str(), "closing control connection");
                    // Let the writer send the close frame.
                    let _ = tokio::time::timeout(Duration::from_secs(2), &mut writer).await;
                    break;
                }
                f = stream.next() => f,
            };
            let Some(Ok(frame)) = frame else { break };
            match frame {
                WsMessage::Text(t) => on_text(t.as_str()),
                WsMessage::Close(_) => break,
                _ => {}
            }
        }
        writer_abort.abort();
    }
}
