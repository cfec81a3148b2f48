//! convene-signaling: web app server, client signaling (`/ws`), bridge registry and focus
//! (`/bridge`), metrics. See `signaling/NOTES.md` and `signaling/PROTOCOL.md`.
mod auth;
#[cfg(test)]
mod bench;
mod bridge;
mod client;
mod config;
#[cfg(test)]
mod focus_tests;
#[cfg(test)]
mod limits_tests;
mod metrics;
mod net;
mod outbox;
mod protocol;
mod room;
#[cfg(test)]
mod room_tests;
mod select;
mod serve;
mod state;
mod tls;
mod turn;
mod web;

use convene_proto::paths;
use std::sync::Arc;

use axum::Router;
use axum::extract::{State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use subtle::ConstantTimeEq;

use crate::state::App;

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route(paths::HEALTH, get(|| async { "ok" }))
        .route(paths::READY, get(ready))
        .route(paths::METRICS, get(metrics))
        .route(paths::SIGNALING_CLIENT_WS, get(ws))
        .route(paths::SIGNALING_BRIDGE_WS, get(bridge_ws))
        .route(
            "/recorder",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "recording is not implemented yet") }),
        )
        .route("/config.json", get(web::config_json))
        .route("/static/{file}", get(web::asset))
        .route("/", get(web::index))
        .route("/{*room}", get(web::room_page))
        .with_state(app)
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    let n = app.lock().bridges.values().filter(|b| b.conn.is_some()).count();
    (StatusCode::OK, format!("ready; {n} bridge(s) registered\n")).into_response()
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn ws(
    State(app): State<Arc<App>>,
    peer: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
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
                    app.metrics.disconnects.with_label_values(&["unauthenticated_limit"]).inc();
                    return (StatusCode::TOO_MANY_REQUESTS, "too many connections from your address")
                        .into_response();
                }
            }
        }
        None => None,
    };
    up.max_message_size(protocol::MAX_CLIENT_FRAME)
        .max_frame_size(protocol::MAX_CLIENT_FRAME)
        .on_upgrade(move |s| client::handle(app, s, permit))
        .into_response()
}

fn bearer_ok(headers: &HeaderMap, secret: &str) -> bool {
    let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some(token) = v.strip_prefix("Bearer ") else { return false };
    bool::from(token.trim().as_bytes().ct_eq(secret.as_bytes()))
}

async fn bridge_ws(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    up: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    // The secret is checked before anything else, upgrade or not.
    if !bearer_ok(&headers, &app.settings.bridge_secret) {
        app.metrics.auth_failures.with_label_values(&["bridge_secret"]).inc();
        return (StatusCode::UNAUTHORIZED, "bad bridge secret").into_response();
    }
    let up = match up {
        Ok(up) => up,
        Err(e) => return e.into_response(),
    };
    up.max_message_size(convene_proto::control::MAX_MESSAGE_BYTES)
        .on_upgrade(move |s| bridge::handle(app, s))
        .into_response()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = config::Args::parse();
    init_logging(&args.log_format);
    if !args.self_signed.is_empty() {
        return match tls::write_self_signed(&args) {
            Ok(fp) => {
                println!("{fp}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let settings = match config::Settings::load(&args) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listen = settings.listen.clone();
    let app = match App::new(settings) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let acceptor = match &app.settings.tls {
        Some((cert, key)) => match serve::tls_acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!("TLS: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(listen);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let url = if app.settings.public_url.is_empty() {
        format!("{scheme}://{}/", local.replace("0.0.0.0", "localhost").replace("127.0.0.1", "localhost"))
    } else {
        app.settings.public_url.clone()
    };
    tracing::info!(listen = %local, tls = acceptor.is_some(), jwt = app.verifier.is_some(), turn = app.settings.turn.is_some(), "convene-signaling listening; open {url}");
    tokio::spawn(bridge::monitor(app.clone()));
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return shutdown.await,
        };
        tokio::select! { _ = shutdown => {}, _ = term.recv() => {} }
        // WebSockets never finish by themselves: give in-flight HTTP a moment, then exit.
        tracing::info!("shutting down");
        tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            std::process::exit(0);
        });
    };
    if let Some(internal) = &args.internal_listen {
        match tokio::net::TcpListener::bind(internal).await {
            Ok(l) => {
                tracing::info!(listen = %internal, "plain-HTTP internal listener (bridges, probes)");
                tokio::spawn(serve::serve(l, app.clone(), None, std::future::pending()));
            }
            Err(e) => {
                tracing::error!("cannot listen on {internal}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    serve::serve(listener, app, acceptor, shutdown).await;
    std::process::ExitCode::SUCCESS
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
