//! The recorder's HTTP: `/health` (the process answers) and `/ready` (registered with
//! signaling and not draining), for the pod's probes; served with the bridge's bounded HTTP
//! server.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use convene_proto::paths;

use crate::http::server::{self, HttpLimits};
use crate::metrics::Metrics;

/// What the probes report, kept by the control loop.
#[derive(Debug, Default)]
pub struct Status {
    pub registered: AtomicBool,
    pub draining: AtomicBool,
}

impl Status {
    fn ready(&self) -> Result<&'static str, &'static str> {
        match (self.registered.load(Ordering::Relaxed), self.draining.load(Ordering::Relaxed)) {
            (_, true) => Err("draining"),
            (false, _) => Err("not registered with signaling"),
            (true, false) => Ok("ready"),
        }
    }
}

pub fn router(status: Arc<Status>) -> Router {
    Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(
            paths::READY,
            get(|State(s): State<Arc<Status>>| async move {
                match s.ready() {
                    Ok(t) => (StatusCode::OK, t),
                    Err(t) => (StatusCode::SERVICE_UNAVAILABLE, t),
                }
            }),
        )
        .with_state(status)
}

pub async fn serve(listener: tokio::net::TcpListener, status: Arc<Status>) {
    let limits = HttpLimits::default();
    // The server counts refused and idle connections in a metrics registry of its own.
    server::serve(listener, router(status), limits, Arc::new(Metrics::new())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_registered_and_not_draining() {
        let s = Status::default();
        assert!(s.ready().is_err());
        s.registered.store(true, Ordering::Relaxed);
        assert_eq!(s.ready(), Ok("ready"));
        s.draining.store(true, Ordering::Relaxed);
        assert_eq!(s.ready(), Err("draining"));
    }
}
