//! The web app, embedded in the binary (`signaling/web/`).
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::state::App;

const INDEX: &str = include_str!("../web/index.html");
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../web/app.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../web/style.css")),
];

fn html() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], INDEX)
        .into_response()
}

pub async fn index() -> Response {
    html()
}

pub async fn room_page(Path(room): Path<String>) -> Response {
    match crate::protocol::normalize_room(&room) {
        Some(_) => html(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == file) {
        Some((_, ct, body)) => {
            ([(header::CONTENT_TYPE, *ct), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

pub async fn config_json(State(app): State<Arc<App>>) -> Response {
    let s = &app.settings;
    let body = serde_json::json!({
        "protocol": crate::protocol::PROTOCOL_VERSION,
        "jwt": s.jwt.is_some(),
        "allowGuests": s.allow_guests,
        "allowAnonymousRoomCreation": s.allow_anonymous_room_creation,
        "web": s.web,
        "recording": s.recording,
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
