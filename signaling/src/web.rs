//! The web app, embedded in the binary (`signaling/web/`): every file under it, with
//! `rust-embed` (`debug-embed`, so debug builds serve the same embedded bytes as release).
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;

use crate::state::App;

#[derive(Embed)]
#[folder = "web/"]
struct Assets;

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "woff2" => "font/woff2",
        _ => "application/octet-stream",
    }
}

fn serve(file: &str) -> Response {
    match Assets::get(file) {
        Some(f) => (
            [(header::CONTENT_TYPE, content_type(file)), (header::CACHE_CONTROL, "no-cache")],
            f.data.into_owned(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

pub async fn index() -> Response {
    serve("index.html")
}

pub async fn room_page(Path(room): Path<String>) -> Response {
    match crate::protocol::normalize_room(&room) {
        Some(_) => serve("index.html"),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// `/static/<file>`: any embedded file but the page itself (served at `/` and `/<room>`).
pub async fn asset(Path(file): Path<String>) -> Response {
    if file == "index.html" {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    serve(&file)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_loads_is_embedded() {
        let index = String::from_utf8(Assets::get("index.html").unwrap().data.into_owned()).unwrap();
        assert!(index.contains("/static/app.js"));
        for f in Assets::iter() {
            if f.ends_with(".js") {
                let src = String::from_utf8(Assets::get(&f).unwrap().data.into_owned()).unwrap();
                // Relative imports (`./x.js`) must name embedded files.
                for (i, _) in src.match_indices("from './") {
                    let rest = &src[i + 8..];
                    let name = &rest[..rest.find('\'').unwrap()];
                    assert!(Assets::get(name).is_some(), "{f} imports {name}, which is not embedded");
                }
            }
        }
        assert_eq!(content_type("x.js"), "text/javascript; charset=utf-8");
    }
}
