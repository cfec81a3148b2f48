//! Target `signaling_config`: the signaling config file (`config::parse_file`, camelCase YAML),
//! the operator's rendering of it (`serde_saphyr::to_string`, as `operator/src/render/
//! signaling.rs` writes the ConfigMap), and settings resolution (`Settings::resolve`, with the
//! secret files it names replaced by fixtures, then `App::new`).
//!
//! Input: the file's text (non-UTF-8 input is refused as reading the file would refuse it).
//!
//! Checked: a config that parses renders, and the rendering parses back to the same config
//! (what the operator writes is what signaling reads); resolution never panics, and settings it
//! accepts start an `App` (their JWT keys load).
use convene_proto::config::JwtAlgorithm;
use convene_signaling::config::{Args, Settings, parse_file};
use convene_signaling::state::App;

const SECRET_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/secret");
const RSA_PUBLIC_FILE: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../signaling/src/testdata/rsa-public.pem");
const EC_PUBLIC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../signaling/src/testdata/ec-public.pem");

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(file) = parse_file(text) else { return };
    let yaml = serde_saphyr::to_string(&file).unwrap_or_else(|e| panic!("cannot render {file:?}: {e}"));
    match parse_file(&yaml) {
        Ok(again) => assert_eq!(again, file, "the rendering parses to another config:\n{yaml}"),
        Err(e) => panic!("the rendering of {file:?} does not parse: {e}\n{yaml}"),
    }
    // Secrets are files: point every path at a fixture (never at what the input names).
    let mut file = file;
    if file.bridge_secret_file.is_some() {
        file.bridge_secret_file = Some(SECRET_FILE.into());
    }
    if let Some(j) = &mut file.auth.jwt {
        j.key_file = match j.algorithm {
            JwtAlgorithm::HS256 => SECRET_FILE,
            JwtAlgorithm::RS256 => RSA_PUBLIC_FILE,
            JwtAlgorithm::ES256 => EC_PUBLIC_FILE,
        }
        .into();
    }
    if let Some(t) = &mut file.turn {
        t.secret_file = SECRET_FILE.into();
    }
    for args in [Args::default(), Args { bridge_secret: Some("s3cret".into()), ..Args::default() }] {
        if let Ok(settings) = Settings::resolve(file.clone(), &args) {
            App::new(settings).expect("resolved settings start an App");
        }
    }
}
