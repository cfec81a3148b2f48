//! Generated secrets: created once, never overwritten or regenerated. The random value is an
//! argument so rendering stays pure.

use super::meta::Owner;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

/// Key under which every generated secret keeps its value.
pub const KEY: &str = "secret";

/// A fresh random secret: 32 bytes, URL-safe base64 (usable in config files and headers).
pub fn random_value() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An Opaque Secret owned by `owner` holding `value` under [`KEY`].
pub fn render(owner: &Owner, name: &str, value: &str) -> Secret {
    with_meta(owner.meta(name), value)
}

/// A generated Secret with the given metadata (a group's: owned by all its members).
pub fn with_meta(mut meta: ObjectMeta, value: &str) -> Secret {
    meta.annotations = Some(BTreeMap::from([(
        "convene.dev/generated".to_string(),
        "Created once by convene-operator and never changed. Delete it to have a new one generated."
            .to_string(),
    )]));
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(KEY.to_string(), ByteString(value.as_bytes().to_vec()))])),
        ..Default::default()
    }
}
