//! The operator and signaling agree on the config file: for every Shard of the shipped
//! examples, the `signaling.yaml` the operator renders is what the real `convene-signaling`
//! binary starts from, and the settings it serves to the web app are the Shard's.
//!
//! Runs on loopback (inside `scripts/test.sh`'s private network namespace in CI):
//!   cargo build --workspace && cargo test -p convene-e2e --test contract
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use convene_e2e::{Process, eventually, free_port, http_get, repo, workspace_binary};
use convene_operator::crd::Shard;
use convene_operator::render::{RenderConfig, group, signaling};
use convene_proto::config::SIGNALING_CONFIG_FILE;
use convene_proto::routing::GROUP_MEMBERSHIP_FILE;
use serde_json::Value;

/// Every Shard of an example file.
fn shards(file: &str) -> Vec<Shard> {
    let text = std::fs::read_to_string(repo().join("examples").join(file)).expect("example exists");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).expect("example is YAML");
    docs.into_iter()
        .filter(|d| d["kind"] == "Shard")
        .map(|mut d| {
            d["metadata"]["namespace"] = "ns".into();
            serde_json::from_value(d).expect("a Shard")
        })
        .collect()
}

/// The secret files the pod would have mounted, under `root` instead of the mount point.
fn write_secrets(root: &Path) {
    for (file, value) in [
        ("bridge-control/secret", "bridge-control-secret"),
        ("jwt/key", "an-hs256-secret-of-the-shard"),
        ("turn/secret", "turn-shared-secret"),
        ("group/secret", "group-secret"),
    ] {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, value).unwrap();
    }
}

#[tokio::test]
async fn signaling_starts_from_every_rendered_example_config() {
    let bin = workspace_binary("convene-signaling");
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` first", bin.display());
    let mut checked = 0;
    for file in ["trial.yaml", "production.yaml", "jwt-lobby.yaml"] {
        let all: Vec<std::sync::Arc<Shard>> = shards(file).into_iter().map(std::sync::Arc::new).collect();
        for shard in shards(file) {
            let name = shard.metadata.name.clone().unwrap_or_default();
            let dir = std::env::temp_dir().join(format!("convene-contract-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            write_secrets(&dir.join("secrets"));
            let inputs = signaling::ShardInputs {
                jwt_key: shard.spec.auth.jwt.as_ref().map(|_| ("s".into(), "key".into())),
                turn: Some(signaling::TurnInputs {
                    secret_name: "t".into(),
                    uris: vec!["turn:192.0.2.1:3478?transport=udp".into()],
                    credential_lifetime_seconds: 600,
                }),
                recording: true,
            };
            let objs = signaling::render(&shard, &inputs, &RenderConfig::default());
            let yaml = &objs.config_map.data.as_ref().unwrap()[SIGNALING_CONFIG_FILE];
            // Only the mount points move (the pod mounts secrets and the group's membership
            // there); the file is as rendered.
            let yaml = yaml.replace(signaling::SECRETS_DIR, &dir.join("secrets").to_string_lossy());
            let yaml = yaml.replace(signaling::GROUP_DIR, &dir.join("group").to_string_lossy());
            if let Some(g) = group::group_of(&shard) {
                let membership = group::membership(g, &group::members(&shard, &all));
                std::fs::create_dir_all(dir.join("group")).unwrap();
                let json = serde_json::to_string(&membership).unwrap();
                std::fs::write(dir.join("group").join(GROUP_MEMBERSHIP_FILE), json).unwrap();
            }
            let config = dir.join(SIGNALING_CONFIG_FILE);
            std::fs::write(&config, &yaml).unwrap();
            let port = free_port();
            let log = std::fs::File::create(dir.join("signaling.log")).unwrap();
            let _signaling = Process(
                Command::new(&bin)
                    .arg("--config")
                    .arg(&config)
                    .args(["--listen", &format!("127.0.0.1:{port}")])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .expect("convene-signaling starts"),
            );
            let served: Value =
                eventually(&format!("{file} {name}: /config.json"), Duration::from_secs(20), || async move {
                    Ok(http_get(port, "/config.json").await.ok().and_then(|b| serde_json::from_str(&b).ok()))
                })
                .await;
            let spec = &shard.spec;
            let context = format!("{file} {name}: served {served}\nfrom\n{yaml}");
            assert_eq!(served["jwt"], spec.auth.jwt.is_some(), "{context}");
            assert_eq!(served["web"]["maxResolution"], spec.web.max_resolution, "{context}");
            assert_eq!(served["web"]["lastN"], spec.web.last_n, "{context}");
            assert_eq!(served["web"]["startAudioMuted"], spec.web.start_audio_muted, "{context}");
            assert_eq!(served["web"]["startVideoMuted"], spec.web.start_video_muted, "{context}");
            assert_eq!(served["allowGuests"], spec.auth.allow_guests, "{context}");
            assert_eq!(served["recording"], true, "{context}");
            let _ = std::fs::remove_dir_all(&dir);
            checked += 1;
        }
    }
    assert!(checked >= 4, "every example shard was started ({checked})");
}
