//! Bounded outbound queues. Every connection (client or bridge) has one writer task draining
//! an `Outbox`; producers (room fan-out under a room lock, replies) never wait. A queue past
//! its bound in frames or bytes is not grown: the frame is dropped, the connection is marked
//! for closing with a reason, and its tasks close the socket and leave the room.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use prometheus::IntGauge;
use tokio::sync::{mpsc, watch};

/// Why a connection is closed by us (WebSocket close code and reason; also the `reason` label
/// of `convene_signaling_disconnects_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    SlowConsumer,
    JoinTimeout,
    IdleTimeout,
    TooLarge,
    Kicked,
    LobbyDenied,
    /// Sent to another shard of the group (`redirect`).
    Redirected,
}

impl CloseReason {
    /// Every variant, in declaration order (its metric label series start at 0).
    pub const ALL: [CloseReason; 7] = [
        CloseReason::SlowConsumer,
        CloseReason::JoinTimeout,
        CloseReason::IdleTimeout,
        CloseReason::TooLarge,
        CloseReason::Kicked,
        CloseReason::LobbyDenied,
        CloseReason::Redirected,
    ];

    pub fn code(self) -> u16 {
        match self {
            CloseReason::TooLarge => 1009,
            // Normal closure: the room told the client why (`kicked`, `lobby_denied`).
            CloseReason::Kicked | CloseReason::LobbyDenied | CloseReason::Redirected => 1000,
            _ => 1008,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::JoinTimeout => "join_timeout",
            CloseReason::IdleTimeout => "idle_timeout",
            CloseReason::TooLarge => "too_large",
            CloseReason::Kicked => "kicked",
            CloseReason::LobbyDenied => "lobby_denied",
            CloseReason::Redirected => "redirected",
        }
    }
}

pub struct Frame {
    pub text: String,
    /// Close the connection after this frame.
    pub then_close: Option<CloseReason>,
}

struct Shared {
    frames: AtomicUsize,
    bytes: AtomicUsize,
    max_frames: usize,
    max_bytes: usize,
    gauge_frames: IntGauge,
    gauge_bytes: IntGauge,
    close: watch::Sender<Option<CloseReason>>,
}

/// The producer side; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Frame>,
    shared: Arc<Shared>,
}

pub struct OutboxRx {
    rx: mpsc::UnboundedReceiver<Frame>,
    shared: Arc<Shared>,
}

pub fn channel(
    max_frames: usize,
    max_bytes: usize,
    gauge_frames: IntGauge,
    gauge_bytes: IntGauge,
) -> (Outbox, OutboxRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(Shared {
        frames: AtomicUsize::new(0),
        bytes: AtomicUsize::new(0),
        max_frames,
        max_bytes,
        gauge_frames,
        gauge_bytes,
        close: watch::channel(None).0,
    });
    (Outbox { tx, shared: shared.clone() }, OutboxRx { rx, shared })
}

impl Outbox {
    /// Queue a frame; false when it was not queued (the queue is full — the connection is then
    /// marked slow and will close — or the connection is gone).
    pub fn push(&self, frame: Frame) -> bool {
        let s = &self.shared;
        if s.close.borrow().is_some() {
            return false;
        }
        let len = frame.text.len();
        let frames = s.frames.fetch_add(1, Ordering::AcqRel) + 1;
        let bytes = s.bytes.fetch_add(len, Ordering::AcqRel) + len;
        if frames > s.max_frames || bytes > s.max_bytes {
            s.frames.fetch_sub(1, Ordering::AcqRel);
            s.bytes.fetch_sub(len, Ordering::AcqRel);
            tracing::warn!(frames, bytes, "slow consumer: closing its connection");
            self.close(CloseReason::SlowConsumer);
            return false;
        }
        s.gauge_frames.inc();
        s.gauge_bytes.add(len as i64);
        if self.tx.send(frame).is_err() {
            s.frames.fetch_sub(1, Ordering::AcqRel);
            s.bytes.fetch_sub(len, Ordering::AcqRel);
            s.gauge_frames.dec();
            s.gauge_bytes.sub(len as i64);
            return false;
        }
        true
    }

    pub fn push_text(&self, text: String) -> bool {
        self.push(Frame { text, then_close: None })
    }

    /// Mark the connection for closing (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        self.shared.close.send_if_modified(|r| {
            if r.is_none() {
                *r = Some(reason);
                true
            } else {
                false
            }
        });
    }

    /// Resolves once the connection is marked for closing.
    pub fn closing(&self) -> watch::Receiver<Option<CloseReason>> {
        self.shared.close.subscribe()
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.shared.close.borrow()
    }

    /// (frames, bytes) queued now.
    pub fn queued(&self) -> (usize, usize) {
        (self.shared.frames.load(Ordering::Acquire), self.shared.bytes.load(Ordering::Acquire))
    }
}

impl OutboxRx {
    pub async fn recv(&mut self) -> Option<Frame> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Frame> {
        self.rx.try_recv().ok()
    }

    /// A frame taken by [`recv`](Self::recv) has left the process (or was given up).
    pub fn done(&self, frame: &Frame) {
        let s = &self.shared;
        s.frames.fetch_sub(1, Ordering::AcqRel);
        s.bytes.fetch_sub(frame.text.len(), Ordering::AcqRel);
        s.gauge_frames.dec();
        s.gauge_bytes.sub(frame.text.len() as i64);
    }

    pub fn closing(&self) -> watch::Receiver<Option<CloseReason>> {
        self.shared.close.subscribe()
    }

    /// Mark the connection for closing (the first reason wins).
    pub fn close(&self, reason: CloseReason) {
        self.shared.close.send_if_modified(|r| r.is_none() && r.replace(reason).is_none());
    }
}

impl Drop for OutboxRx {
    fn drop(&mut self) {
        // Whatever is still queued is given up: keep the counters and gauges honest.
        self.rx.close();
        while let Some(f) = self.try_recv() {
            self.done(&f);
        }
    }
}

/// Wait until `rx` carries a close reason; returns it.
pub async fn wait_close(rx: &mut watch::Receiver<Option<CloseReason>>) -> CloseReason {
    loop {
        if let Some(r) = *rx.borrow_and_update() {
            return r;
        }
        if rx.changed().await.is_err() {
            // The sender lives in the shared state we also hold: not reached; never resolve.
            std::future::pending::<()>().await;
        }
    }
}
