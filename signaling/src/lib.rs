//! convene-signaling: web app server, client signaling (`/ws`), bridge registry and focus
//! (`/bridge`), metrics. See `signaling/NOTES.md` and `signaling/PROTOCOL.md`.
//!
//! A library so that the fuzz targets (`fuzz/`) reach the decoder, the rooms, JWT verification
//! and the config parser in-process; `main.rs` is the `convene-signaling` binary.
pub mod auth;
#[cfg(test)]
mod bench;
pub mod bridge;
pub mod client;
pub mod config;
pub mod control_socket;
#[cfg(test)]
mod focus_tests;
pub mod ice;
#[cfg(test)]
mod ice_tests;
#[cfg(test)]
mod limits_tests;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod protocol;
pub mod recorder;
pub mod recording;
#[cfg(test)]
mod recording_tests;
pub mod room;
#[cfg(test)]
mod room_tests;
pub mod routing;
#[cfg(test)]
mod routing_tests;
pub mod select;
pub mod serve;
pub mod state;
pub mod tls;
pub mod turn;
pub mod web;

use convene_proto::paths;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;

use crate::state::App;

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(paths::METRICS, get(metrics))
        .route(paths::SIGNALING_CLIENT_WS, get(ws))
        .route(&format!("{}{{shard}}{}", paths::SHARD_PREFIX, paths::SIGNALING_CLIENT_WS), get(shard_ws))
        .route(&format!("{}{{*room}}", paths::SIGNALING_INTERNAL_ROOMS), get(internal_room))
        .route(paths::SIGNALING_BRIDGE_WS, get(bridge_ws))
        .route(paths::SIGNALING_RECORDER_WS, get(recorder_ws))
        .route("/config.json", get(web::config_json))
        .route("/static/{file}", get(web::asset))
        .route("/", get(web::index))
        .route("/{*room}", get(web::room_page))
        .with_state(app)
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    let (n, r) = {
        let inner = app.lock();
        (inner.bridges.values().filter(|b| b.conn.is_some()).count(), inner.recorders.len())
    };
    (StatusCode::OK, format!("ready; {n} bridge(s) registered; {r} recorder(s)\n")).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

type Peer = Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>;

/// `/_shard/<shard>/ws`: this shard's client WebSocket on the group's shared domain (the
/// Ingress routes the prefix here as is). Another shard's name is not ours to serve.
async fn shard_ws(
    State(app): State<Arc<App>>,
    Path(shard): Path<String>,
    peer: Peer,
    query: RawQuery,
    headers: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    if app.routing.as_ref().is_none_or(|r| r.shard != shard) {
        return (StatusCode::NOT_FOUND, "no such shard here").into_response();
    }
    ws(State(app), peer, query, headers, up).await
}

/// `GET /internal/rooms/<room>`, for the other signalings of the group (group secret).
async fn internal_room(
    State(app): State<Arc<App>>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(routing) = &app.routing else {
        return (StatusCode::NOT_FOUND, "this shard is not in a group").into_response();
    };
    if !bearer_ok(&headers, routing.secret()) {
        app.metrics.auth_failures.with_label_values(&[metrics::reason::GROUP_SECRET]).inc();
        return (StatusCode::UNAUTHORIZED, "bad group secret").into_response();
    }
    let Some(room) = protocol::normalize_room(&room) else {
        return (StatusCode::BAD_REQUEST, "room names are 1-64 of a-z 0-9 - _ .").into_response();
    };
    axum::Json(routing::presence(&app, &room)).into_response()
}

async fn ws(
    State(app): State<Arc<App>>,
    peer: Peer,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    up: WebSocketUpgrade,
) -> Response {
    // The socket's slot among its address's unauthenticated WebSockets (the forwarded address
    // behind a trusted proxy), held until it joins. The TCP connection keeps its own slot.
    let limits = &app.settings.limits;
    let permit = match peer {
        Some(peer) => {
            let ip = net::client_ip(peer.0.0.ip(), &headers, &limits.trusted_proxies);
            match app.unauth.acquire(ip, limits.max_unauthenticated_per_address) {
                Some(p) => Some(p),
                None => {
                    app.metrics
                        .disconnects
                        .with_label_values(&[metrics::reason::UNAUTHENTICATED_LIMIT])
                        .inc();
                    return (StatusCode::TOO_MANY_REQUESTS, "too many connections from your address")
                        .into_response();
                }
            }
        }
        None => None,
    };
    // The edge's region header, when the group names one (`routing.regionHeader`).
    let region = app
        .routing
        .as_ref()
        .and_then(|r| r.region_header.as_deref())
        .and_then(|h| headers.get(h)?.to_str().ok())
        .and_then(select::clean_region);
    let conn = client::ConnInfo { hops: routing::hops_of(query.as_deref()), region };
    up.max_message_size(protocol::MAX_CLIENT_FRAME)
        .max_frame_size(protocol::MAX_CLIENT_FRAME)
        .on_upgrade(move |s| client::handle_with(app, s, permit, conn))
        .into_response()
}

fn bearer_ok(headers: &HeaderMap, secret: &str) -> bool {
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(token) = v.strip_prefix("Bearer ") else { return false };
    bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes()))
}

type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// A control WebSocket (`/bridge`, `/recorder`): the bridge-control secret is checked before
/// anything else, upgrade or not; then `handle` runs the connection.
fn control_ws<F, Fut>(app: Arc<App>, headers: &HeaderMap, up: Upgrade, handle: F) -> Response
where
    F: FnOnce(Arc<App>, axum::extract::ws::WebSocket) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if !bearer_ok(headers, &app.settings.bridge_secret) {
        app.metrics.auth_failures.with_label_values(&[metrics::reason::BRIDGE_SECRET]).inc();
        return (StatusCode::UNAUTHORIZED, "bad bridge secret").into_response();
    }
    let up = match up {
        Ok(up) => up,
        Err(e) => return e.into_response(),
    };
    up.max_message_size(convene_proto::control::MAX_MESSAGE_BYTES)
        .on_upgrade(move |s| handle(app, s))
        .into_response()
}

async fn bridge_ws(State(app): State<Arc<App>>, headers: HeaderMap, up: Upgrade) -> Response {
    control_ws(app, &headers, up, bridge::handle)
}

async fn recorder_ws(State(app): State<Arc<App>>, headers: HeaderMap, up: Upgrade) -> Response {
    control_ws(app, &headers, up, recorder::handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_check() {
        let mut h = HeaderMap::new();
        assert!(!bearer_ok(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_ok(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(!bearer_ok(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(!bearer_ok(&h, "s3cret"));
    }
}
