//! HTTP: /metrics (Prometheus, for people), /load (the typed load report, for the operator),
//! /health, /ready (false while draining), POST /drain (bearer secret), GET /stats
//! (forwarding latency quantiles, for the benchmark). Paths come from `convene_proto::paths`.
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tracing::info;

use convene_proto::paths;

use crate::bridge::Bridge;

pub mod server;

pub fn router(bridge: Arc<Bridge>) -> Router {
    Router::new()
        .route(paths::METRICS, get(metrics))
        .route(paths::BRIDGE_LOAD, get(load))
        .route(paths::HEALTH, get(health))
        .route(paths::READY, get(ready))
        .route(paths::BRIDGE_DRAIN, post(drain))
        .route("/stats", get(stats))
        .route("/stats/reset", post(stats_reset))
        .with_state(bridge)
}

/// Serve the routes with the configured connection limits (`server`).
pub async fn serve(listener: tokio::net::TcpListener, bridge: Arc<Bridge>) {
    let limits = bridge.cfg.http_limits();
    let metrics = bridge.metrics.clone();
    server::serve(listener, router(bridge), limits, metrics).await;
}

async fn metrics(State(b): State<Arc<Bridge>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], b.metrics.render())
}

async fn load(State(b): State<Arc<Bridge>>) -> impl IntoResponse {
    axum::Json(b.load())
}

async fn health(State(b): State<Arc<Bridge>>) -> impl IntoResponse {
    if b.is_alive() {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "media thread stopped")
    }
}

async fn ready(State(b): State<Arc<Bridge>>) -> impl IntoResponse {
    if !b.is_alive() {
        (StatusCode::SERVICE_UNAVAILABLE, "media thread stopped")
    } else if b.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::OK, "ready")
    }
}

/// Constant-time comparison of the bearer token with the configured secret. Without a
/// configured secret nothing is authorised.
pub fn authorised(headers: &HeaderMap, secret: Option<&str>) -> bool {
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return false;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.as_bytes(), secret.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /drain?migrate_after_seconds=N`: the deadline after which signaling moves the
/// endpoints still here (the operator passes its pool's drain timeout; the query name is
/// `convene_proto::paths::DRAIN_DEADLINE_QUERY`).
#[derive(serde::Deserialize)]
struct DrainParams {
    migrate_after_seconds: Option<u64>,
}

async fn drain(
    State(b): State<Arc<Bridge>>,
    headers: HeaderMap,
    Query(p): Query<DrainParams>,
) -> impl IntoResponse {
    if !authorised(&headers, b.cfg.secret.as_deref()) {
        return (StatusCode::UNAUTHORIZED, "unauthorised");
    }
    info!(migrate_after_seconds = p.migrate_after_seconds, "drain requested over HTTP");
    b.set_draining(true, p.migrate_after_seconds.map(std::time::Duration::from_secs));
    (StatusCode::OK, "draining")
}

async fn stats(State(b): State<Arc<Bridge>>) -> impl IntoResponse {
    let body = serde_json::json!({
        "latency_p50_us": b.latency.quantile_us(0.5),
        "latency_p99_us": b.latency.quantile_us(0.99),
        "latency_samples": b.latency.count(),
        "packets_in": b.metrics.packets_in.get(),
        "packets_out": b.metrics.packets_out.get(),
        "load": b.load(),
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn stats_reset(State(b): State<Arc<Bridge>>, headers: HeaderMap) -> impl IntoResponse {
    if !authorised(&headers, b.cfg.secret.as_deref()) {
        return StatusCode::UNAUTHORIZED;
    }
    b.latency.reset();
    StatusCode::OK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let mut h = HeaderMap::new();
        assert!(!authorised(&h, Some("s3cret")));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorised(&h, Some("s3cret")));
        assert!(!authorised(&h, Some("other")));
        assert!(!authorised(&h, None));
        assert!(!authorised(&h, Some("")));
    }
}
