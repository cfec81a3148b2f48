//! The bounded queue of messages for signaling, between the media thread (which must never
//! block) and the control connection. When it is full the message is dropped and counted, and
//! the queue remembers it: the connection is then reset, because signaling's view is stale and
//! only a fresh `register` resyncs it.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc::{self, error::TryRecvError, error::TrySendError};

use crate::control::FromBridge;
use crate::metrics::{DropReason, Metrics};

/// The media threads' end (one clone per worker).
#[derive(Clone)]
pub struct ControlOut {
    tx: mpsc::Sender<FromBridge>,
    overflowed: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

/// The control connection's (or a test's) end.
pub struct ControlIn {
    rx: mpsc::Receiver<FromBridge>,
    overflowed: Arc<AtomicBool>,
}

pub fn queue(capacity: usize, metrics: Arc<Metrics>) -> (ControlOut, ControlIn) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let overflowed = Arc::new(AtomicBool::new(false));
    (ControlOut { tx, overflowed: overflowed.clone(), metrics }, ControlIn { rx, overflowed })
}

impl ControlOut {
    /// Queue without waiting; a full queue drops the message and marks the overflow.
    pub fn push(&self, m: FromBridge) {
        if let Err(TrySendError::Full(_)) = self.tx.try_send(m) {
            self.overflowed.store(true, Ordering::Relaxed);
            self.metrics.count_drop(DropReason::ControlQueue);
        }
    }
}

impl ControlIn {
    pub async fn recv(&mut self) -> Option<FromBridge> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Result<FromBridge, TryRecvError> {
        self.rx.try_recv()
    }

    /// Whether messages were dropped since the last call.
    pub fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Ordering::Relaxed)
    }

    /// Forget everything queued (stale once the connection is down), overflow included.
    pub fn clear(&mut self) {
        while self.rx.try_recv().is_ok() {}
        self.take_overflow();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_counts_and_remembers() {
        let metrics = Arc::new(Metrics::new());
        let (out, mut inq) = queue(2, metrics.clone());
        for _ in 0..3 {
            out.push(FromBridge::Draining { drain: None });
        }
        assert_eq!(metrics.dropped_count(DropReason::ControlQueue), 1);
        assert!(inq.take_overflow());
        assert!(!inq.take_overflow(), "reported once");
        assert!(inq.try_recv().is_ok() && inq.try_recv().is_ok() && inq.try_recv().is_err());
        out.push(FromBridge::Draining { drain: None });
        inq.clear();
        assert!(inq.try_recv().is_err());
    }
}
