//! Rebuild when any file under `web/` is added, removed or changed: the web app is embedded
//! with rust-embed, whose generated `include_bytes!` calls track only files that existed.
fn main() {
    println!("cargo:rerun-if-changed=web");
}
