//! The recorder's HTTP, served with the bridge's bounded HTTP server:
//! `/health` (the process answers) and `/ready` (registered with signaling and not draining)
//! for the pod's probes; `/metrics` (Prometheus, [`super::metrics`]); `/load`
//! ([`RecorderLoad`] as JSON, for the operator); `POST /drain` (no new recordings, the running
//! ones carry on to their end; idempotent), protected as the bridge's `/drain` is: the
//! bridge-control secret as `Authorization: Bearer <secret>`.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use convene_proto::paths;
use convene_proto::recorder::RecorderLoad;
use tokio::sync::watch;
use tracing::info;

use super::metrics::RecorderMetrics;
use crate::http::server::{self, HttpLimits};
use crate::metrics::Metrics;

/// What the probes and `/load` report, kept by the control loop; and the drain request, from
/// `/drain` to the control loop.
#[derive(Debug)]
pub struct Status {
    pub registered: AtomicBool,
    /// Takes no new recordings (a drain, or shutting down).
    pub draining: AtomicBool,
    pub capacity: AtomicU32,
    /// Recordings capturing.
    pub active: AtomicU32,
    /// Recordings whose capture ended and whose composition or upload runs.
    pub finishing: AtomicU32,
    /// Recordings started, and ended with an error, since the process started.
    pub started_total: AtomicU64,
    pub failed_total: AtomicU64,
    drain: watch::Sender<bool>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            registered: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            capacity: AtomicU32::new(0),
            active: AtomicU32::new(0),
            finishing: AtomicU32::new(0),
            started_total: AtomicU64::new(0),
            failed_total: AtomicU64::new(0),
            drain: watch::Sender::new(false),
        }
    }
}

impl Status {
    fn ready(&self) -> Result<&'static str, &'static str> {
        match (self.registered.load(Ordering::Relaxed), self.draining.load(Ordering::Relaxed)) {
            (_, true) => Err("draining"),
            (false, _) => Err("not registered with signaling"),
            (true, false) => Ok("ready"),
        }
    }

    pub fn load(&self) -> RecorderLoad {
        RecorderLoad {
            capacity: self.capacity.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            finishing: self.finishing.load(Ordering::Relaxed),
            draining: self.draining.load(Ordering::Relaxed),
            registered: self.registered.load(Ordering::Relaxed),
            started_total: self.started_total.load(Ordering::Relaxed),
            failed_total: self.failed_total.load(Ordering::Relaxed),
        }
    }

    /// Drain: no new recordings from now on (the control loop is told at once and tells
    /// signaling). Returns whether this call started it (false when it was draining already).
    pub fn request_drain(&self) -> bool {
        self.draining.store(true, Ordering::Relaxed);
        self.drain.send_if_modified(|d| !std::mem::replace(d, true))
    }

    /// Turns true when a drain is asked for (for the control loop).
    pub fn drain_requests(&self) -> watch::Receiver<bool> {
        self.drain.subscribe()
    }
}

/// What the routes need.
#[derive(Clone)]
pub struct Http {
    pub status: Arc<Status>,
    pub metrics: RecorderMetrics,
    /// The bridge-control secret: `/drain`'s bearer token (without one, nothing may drain).
    pub secret: Option<String>,
}

pub fn router(http: Http) -> Router {
    Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(paths::METRICS, get(metrics))
        .route(paths::RECORDER_LOAD, get(load))
        .route(paths::RECORDER_DRAIN, post(drain))
        .with_state(http)
}

async fn ready(State(h): State<Http>) -> impl IntoResponse {
    match h.status.ready() {
        Ok(t) => (StatusCode::OK, t),
        Err(t) => (StatusCode::SERVICE_UNAVAILABLE, t),
    }
}

async fn metrics(State(h): State<Http>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], h.metrics.render())
}

async fn load(State(h): State<Http>) -> impl IntoResponse {
    axum::Json(h.status.load())
}

async fn drain(State(h): State<Http>, headers: HeaderMap) -> impl IntoResponse {
    if !crate::http::authorised(&headers, h.secret.as_deref()) {
        return (StatusCode::UNAUTHORIZED, "unauthorised");
    }
    if h.status.request_drain() {
        info!("drain requested over HTTP: no new recordings");
    }
    (StatusCode::OK, "draining")
}

pub async fn serve(listener: tokio::net::TcpListener, http: Http) {
    let limits = HttpLimits::default();
    // The server counts refused and idle connections in a metrics registry of its own.
    server::serve(listener, router(http), limits, Arc::new(Metrics::new())).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt as _;
    use tower::Service as _;

    #[test]
    fn ready_only_registered_and_not_draining() {
        let s = Status::default();
        assert!(s.ready().is_err());
        s.registered.store(true, Ordering::Relaxed);
        assert_eq!(s.ready(), Ok("ready"));
        s.draining.store(true, Ordering::Relaxed);
        assert_eq!(s.ready(), Err("draining"));
    }

    fn http() -> Http {
        Http { status: Arc::default(), metrics: RecorderMetrics::new(), secret: Some("s3cret".into()) }
    }

    async fn call(h: &Http, method: &str, path: &str, bearer: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(b) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {b}"));
        }
        // A Router is always ready.
        let resp = router(h.clone()).call(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn load_is_the_typed_report() {
        let h = http();
        h.status.capacity.store(4, Ordering::Relaxed);
        h.status.active.store(2, Ordering::Relaxed);
        h.status.finishing.store(1, Ordering::Relaxed);
        h.status.registered.store(true, Ordering::Relaxed);
        let (code, body) = call(&h, "GET", paths::RECORDER_LOAD, None).await;
        assert_eq!(code, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"capacity":4,"active":2,"finishing":1,"draining":false,"registered":true,"started_total":0,"failed_total":0})
        );
        let typed: RecorderLoad = serde_json::from_str(&body).unwrap();
        assert_eq!(typed, h.status.load());
    }

    #[tokio::test]
    async fn metrics_are_prometheus_text() {
        let h = http();
        h.metrics.capacity.set(4);
        h.metrics.bytes_written.inc_by(10);
        let (code, body) = call(&h, "GET", paths::METRICS, None).await;
        assert_eq!(code, StatusCode::OK);
        assert!(body.contains("\nconvene_recorder_capacity 4\n"), "{body}");
        assert!(body.contains("\nconvene_recorder_bytes_written_total 10\n"), "{body}");
        assert!(body.contains("convene_recorder_compose_seconds_bucket"), "{body}");
    }

    #[tokio::test]
    async fn drain_needs_the_secret_flips_once_and_stays() {
        let h = http();
        h.status.registered.store(true, Ordering::Relaxed);
        let mut told = h.status.drain_requests();
        assert_eq!(call(&h, "GET", paths::READY, None).await.0, StatusCode::OK);
        assert_eq!(call(&h, "POST", paths::RECORDER_DRAIN, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&h, "POST", paths::RECORDER_DRAIN, Some("wrong")).await.0, StatusCode::UNAUTHORIZED);
        assert!(!h.status.load().draining, "refused requests change nothing");
        assert!(!told.has_changed().unwrap());
        assert_eq!(
            call(&h, "GET", paths::RECORDER_DRAIN, Some("s3cret")).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );

        assert_eq!(
            call(&h, "POST", paths::RECORDER_DRAIN, Some("s3cret")).await,
            (StatusCode::OK, "draining".into())
        );
        assert!(told.has_changed().unwrap(), "the control loop is told");
        assert!(*told.borrow_and_update());
        assert!(h.status.load().draining);
        assert_eq!(
            call(&h, "GET", paths::READY, None).await,
            (StatusCode::SERVICE_UNAVAILABLE, "draining".into())
        );

        // Again: the same answer, nothing new for the control loop.
        assert_eq!(call(&h, "POST", paths::RECORDER_DRAIN, Some("s3cret")).await.0, StatusCode::OK);
        assert!(!told.has_changed().unwrap(), "idempotent");
        assert!(!h.status.request_drain());

        // Without a configured secret nothing drains it.
        let open = Http { secret: None, ..http() };
        assert_eq!(call(&open, "POST", paths::RECORDER_DRAIN, None).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(call(&open, "POST", paths::RECORDER_DRAIN, Some("")).await.0, StatusCode::UNAUTHORIZED);
    }
}
