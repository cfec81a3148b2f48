//! The client protocol's JSON Schemas (`proto/schema/`) are what the code defines, and the web
//! app sends and handles only message types they define.
//!
//! Regenerate the schemas: `CONVENE_WRITE_SCHEMA=1 cargo test -p convene-proto --test schema`.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use convene_proto::client;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema")
}

#[test]
fn exported_schemas_are_in_sync() {
    for (file, schema) in client::schemas() {
        let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
        let path = dir().join(file);
        if std::env::var_os("CONVENE_WRITE_SCHEMA").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is out of date: run CONVENE_WRITE_SCHEMA=1 cargo test -p convene-proto --test schema",
            path.display()
        );
    }
}

/// The `type` tags a schema's variants may carry.
fn tags(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir().join(file)).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    let variants = schema["oneOf"].as_array().expect("a tagged enum is a oneOf");
    variants
        .iter()
        .map(|v| {
            v["properties"]["type"]["const"].as_str().expect("each variant has a const type").to_string()
        })
        .collect()
}

/// Every `.js` file of the web app, with its path.
fn web_sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "js") {
                out.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../signaling/web"), &mut out);
    assert!(!out.is_empty(), "the web app's sources are found");
    out
}

/// The quoted word at the start of `s` (after whitespace).
fn quoted(s: &str) -> Option<String> {
    let s = s.trim_start();
    let s = s.strip_prefix('\'').or_else(|| s.strip_prefix('"'))?;
    Some(s[..s.find(['\'', '"'])?].to_string())
}

/// Types of the frames sent as `send({ type: '…', … })`, whitespace and newlines allowed.
fn sent_types(src: &str) -> Vec<String> {
    src.match_indices("send(")
        .filter_map(|(i, m)| {
            let rest = src[i + m.len()..].trim_start().strip_prefix('{')?;
            quoted(rest.trim_start().strip_prefix("type:")?)
        })
        .collect()
}

/// Types of the frames handled in `case '…':` arms.
fn handled_types(src: &str) -> Vec<String> {
    src.match_indices("case ").filter_map(|(i, m)| quoted(&src[i + m.len()..])).collect()
}

#[test]
fn web_app_speaks_only_the_schema() {
    let client_tags = tags("client-msg.schema.json");
    let server_tags = tags("server-msg.schema.json");
    let (mut sent, mut handled) = (BTreeSet::new(), BTreeSet::new());
    for (path, src) in web_sources() {
        // Frames leave through `send({ type: '…', … })`; they arrive in `case '…':` arms.
        for t in sent_types(&src) {
            assert!(
                client_tags.contains(&t),
                "{} sends {t:?}, which the client schema does not define",
                path.display()
            );
            sent.insert(t);
        }
        for t in handled_types(&src) {
            assert!(
                server_tags.contains(&t),
                "{} handles {t:?}, which the server schema does not define",
                path.display()
            );
            handled.insert(t);
        }
    }
    // The scan sees the app's traffic, so the checks above are not vacuous.
    for t in ["join", "offer", "answer", "chat", "leave"] {
        assert!(sent.contains(t), "the web app sends {t}: found {sent:?}");
    }
    for t in ["joined", "media", "offer", "error", "participant_left"] {
        assert!(handled.contains(t), "the web app handles {t}: found {handled:?}");
    }
}
