//! A RecorderPool that sizes itself from its recordings, on the cluster tier: the operator
//! (under the chart's RBAC), a real `convene-signaling`, one real `convene-bridge` and one real
//! `convene-recorder` per recorder Pod (the kubelet stand-in runs each on its loopback pod IP),
//! uploading to a real S3 server (moto). Moderators (protocol clients) start recordings in
//! three rooms: the pool grows as recordings pass its capacity with headroom, then, with one
//! recording left, drains back without cutting it, and removes its recorder only once it ended.
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test recorders -- --ignored --test-threads=1
//!
//! Its own tainted nodes (`rec-*`, 127.0.0.40+), so it shares no node or port with other tests.

use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use convene_e2e::client::RoomClient;
use convene_e2e::kubelet::Kubelet;
use convene_e2e::*;
use convene_operator::crd::RecorderPool;
use convene_proto::client::ServerMsg;
use convene_proto::recorder::env as renv;
use kube::{Api, Client};

const BRIDGE_HTTP: u16 = 18095;

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install_crds();
        for i in 0..2u8 {
            let name = format!("rec-{i}");
            add_node(&name, &format!("127.0.0.{}", 40 + i), None, &[("convene.dev/rec", "true")]);
            kubectl_ok(&["taint", "node", &name, "--overwrite", "convene.dev/rec=true:NoSchedule"]);
        }
    });
}

/// A shard, one bridge and an autoscaling RecorderPool (2 recordings per pod, half kept free)
/// on the `rec-*` nodes, storing to S3 at `s3`.
fn apply_shard(ns: &str, s3: &str) {
    let placement = r#"
    placement:
      nodeSelector: {convene.dev/rec: "true"}
      tolerations: [{key: convene.dev/rec, operator: Equal, value: "true", effect: NoSchedule}]"#;
    let manifest = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: rec-s3}}
stringData: {{accessKeyId: test, secretAccessKey: test}}
---
apiVersion: convene.dev/v1alpha1
kind: Shard
metadata: {{name: rec}}
spec: {{domain: rec.localhost}}
---
apiVersion: convene.dev/v1alpha1
kind: BridgePool
metadata: {{name: rec}}
spec:
  shardRef: {{name: rec}}
  replicas: 1
  publicAddress: {{source: NodeInternalIP}}
  ports: {{media: 10100, tcpFallback: 4543, http: {BRIDGE_HTTP}}}
  bridge:{placement}
---
apiVersion: convene.dev/v1alpha1
kind: RecorderPool
metadata: {{name: rec}}
spec:
  shardRef: {{name: rec}}
  recordingsPerPod: 2
  autoscaling: {{minReplicas: 1, maxReplicas: 3, headroomPercent: 50, scaleDownStabilizationSeconds: 5, drainTimeoutSeconds: 600}}
  storage:
    s3: {{endpoint: "{s3}", bucket: recordings, region: us-east-1, credentialsSecretName: rec-s3}}
  recorder:{placement}
"#
    );
    let out = kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// moto's S3 server on 127.0.0.1 (scripts/s3-server.sh installs it), with the bucket.
fn moto() -> (Process, u16) {
    let cache = std::env::var("CONVENE_CACHE")
        .unwrap_or_else(|_| format!("{}/.cache/convene", std::env::var("HOME").expect("HOME")));
    let bin = std::env::var("CONVENE_MOTO_SERVER").unwrap_or(format!("{cache}/moto-5.2.5/bin/moto_server"));
    assert!(std::path::Path::new(&bin).exists(), "{bin} is missing: install it with scripts/s3-server.sh");
    let port = free_port();
    let child = Command::new(&bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while curl(port, "PUT", "/recordings").is_err() {
        assert!(Instant::now() < deadline, "moto did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    (Process(child), port)
}

/// A request to moto, signed as the recorders' credentials (it refuses anonymous reads of
/// private objects): the body.
fn curl(port: u16, method: &str, path: &str) -> Result<String> {
    let out = Command::new("curl")
        .args(["-fsS", "--aws-sigv4", "aws:amz:us-east-1:s3", "-u", "test:test", "-X", method])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .context("curl")?;
    anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A moderator: the first to join `room` (an open shard's first joiner moderates), once the
/// room has its bridge (its media is set up).
async fn moderator(port: u16, room: &str) -> RoomClient {
    let mut m = RoomClient::join(port, room, &format!("Mod {room}")).await;
    m.wait("media", |m| matches!(m, ServerMsg::Media { .. })).await;
    m
}

async fn pool(client: &Client, ns: &str) -> Result<RecorderPool> {
    Ok(Api::<RecorderPool>::namespaced(client.clone(), ns).get("rec").await?)
}

/// Recorders registered with signaling (its `/ready` counts them).
async fn registered(port: u16) -> usize {
    let ready = http_get(port, "/ready").await.unwrap_or_default();
    ready
        .split(" recorder(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
#[ignore = "cluster tier: e2e/cluster/with-cluster.sh"]
async fn a_recorder_pool_grows_with_its_recordings_and_drains_back_without_cutting_one() {
    setup();
    let ns = "recorders";
    let _ns = fresh_namespace(ns);
    let _op = Operator::start(ns, "op-r", "convene-operator", 15).expect("operator starts");
    let client = client().await;
    let (_moto, s3_port) = moto();
    apply_shard(ns, &format!("http://127.0.0.1:{s3_port}"));
    let secret = bridge_control_secret(&client, ns, "rec").await;
    let (_signaling, port) = start_signaling(ns, &secret);
    let bridges = format!("ws://127.0.0.1:{port}/bridge");
    let _bridges = Kubelet::start(
        client.clone(),
        ns,
        "app.kubernetes.io/instance=rec,app.kubernetes.io/component=bridge",
        &[(convene_proto::bridge::env::SIGNALING_URL, &bridges)],
    );
    let recorder_url = format!("ws://127.0.0.1:{port}/recorder");
    let dir = cluster_dir().join(format!("recordings-{ns}"));
    let dir = dir.to_string_lossy().into_owned();
    let recorders = Kubelet::start(
        client.clone(),
        ns,
        "app.kubernetes.io/instance=rec,app.kubernetes.io/component=recorder",
        &[(renv::SIGNALING_URL, &recorder_url), (renv::RECORDING_DIR, &dir)],
    );
    eventually("one recorder registered", Duration::from_secs(90), || async {
        Ok((registered(port).await == 1).then_some(()))
    })
    .await;

    // Two recordings fill the first recorder's usable half... and more.
    let mut a = moderator(port, "room-a").await;
    let mut b = moderator(port, "room-b").await;
    a.record().await;
    b.record().await;
    let t0 = Instant::now();
    eventually("the pool grows to 2 recorders", Duration::from_secs(60), || async {
        let s = pool(&client, ns).await?.status.unwrap_or_default();
        Ok((s.recordings_active == Some(2) && s.desired_replicas >= 2 && registered(port).await >= 2)
            .then_some(()))
    })
    .await;
    let grew_s = t0.elapsed().as_secs_f64();
    let mut c = moderator(port, "room-c").await;
    c.record().await;
    let status = eventually("three recordings, three recorders", Duration::from_secs(60), || async {
        let s = pool(&client, ns).await?.status.unwrap_or_default();
        Ok((s.recordings_active == Some(3) && s.desired_replicas == 3).then_some(s))
    })
    .await;
    eprintln!("grew to 2 recorders {grew_s:.1} s after 2 recordings; status {:?}", status.recorders);

    // Two end: the pool shrinks, but the recorder holding room-c's recording only drains.
    a.stop_recording().await;
    b.stop_recording().await;
    let draining =
        eventually("the recorder with room-c's recording drains", Duration::from_secs(90), || async {
            let s = pool(&client, ns).await?.status.unwrap_or_default();
            let holder = s.recorders.iter().find(|r| r.active == Some(1)).cloned();
            Ok(holder.filter(|h| h.draining && s.desired_replicas == 1).map(|h| (h, s.recorders.len())))
        })
        .await;
    eprintln!("draining {:?} with {} recorder pods left", draining.0, draining.1);
    tokio::time::sleep(Duration::from_secs(15)).await;
    let s = pool(&client, ns).await.unwrap().status.unwrap_or_default();
    assert!(
        s.recorders.iter().any(|r| r.name == draining.0.name && r.active == Some(1)),
        "the draining recorder keeps its recording: {:?}",
        s.recorders
    );
    c.never_cut();

    // Its recording ends: only then does the pool come back to one recorder.
    let stopped = Instant::now();
    c.stop_recording().await;
    eventually("one recorder again", Duration::from_secs(120), || async {
        let s = pool(&client, ns).await?.status.unwrap_or_default();
        Ok((s.recorders.len() == 1 && recorders.running().len() == 1).then_some(()))
    })
    .await;
    eprintln!("back to one recorder {:.1} s after the last recording ended", stopped.elapsed().as_secs_f64());
    for m in [&mut a, &mut b, &mut c] {
        m.never_cut();
    }
    // The pool's Events tell of the recordings and of the scaling.
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.kind=RecorderPool",
        "-o",
        "custom-columns=R:.reason",
        "--no-headers",
    ]);
    for reason in ["RecordingStarted", "ScalingDecision", "Draining"] {
        assert!(events.lines().any(|l| l.trim() == reason), "no {reason} Event: {events}");
    }
    // Every recording is in the bucket, its manifest final.
    let list = curl(s3_port, "GET", "/recordings?list-type=2").unwrap();
    for room in ["room-a", "room-b", "room-c"] {
        let key = list
            .split("<Key>")
            .filter_map(|k| k.split("</Key>").next())
            .find(|k| k.starts_with(&format!("rec/{room}/")) && k.ends_with("/manifest.json"))
            .unwrap_or_else(|| panic!("no manifest of {room} in {list}"));
        let manifest = curl(s3_port, "GET", &format!("/recordings/{key}")).unwrap();
        assert!(manifest.contains("stopped_wall_ms"), "{room}: {manifest}");
    }
}

/// The production example's two RecorderPools as shipped, run for real. meet-a's recorders
/// upload to S3: the example's endpoint is pointed at the test's moto through the pods'
/// environment (the only edit), and its `recordings-s3` Secret is made as the example asks.
/// meet-b's write to a PersistentVolumeClaim per pod, bound to local PersistentVolumes as an
/// admin with local storage provides them (the kubelet stand-in gives each claim a directory).
/// Both pools' two recorders register with their shard's signaling, and a recording in each
/// shard lands in its pool's storage.
#[tokio::test]
#[ignore = "cluster tier: e2e/cluster/with-cluster.sh"]
async fn the_production_examples_recorder_pools_record_to_s3_and_to_volumes() {
    setup();
    // The example's recorders have no placement: a node without the rec-* taint.
    add_node("rec-general", "127.0.0.42", None, &[]);
    let ns = "rec-examples";
    let _ns = fresh_namespace(ns);
    let _op = Operator::start(ns, "op-rx", "convene-operator", 15).expect("operator starts");
    let client = client().await;
    let (_moto, s3_port) = moto();
    curl(s3_port, "PUT", "/convene-recordings").expect("the example's bucket");
    kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "-n",
        ns,
        "recordings-s3",
        "--from-literal=accessKeyId=test",
        "--from-literal=secretAccessKey=test",
    ]);
    for i in 0..2 {
        let pv = format!("{ns}-{i}");
        kubectl_ok(&["delete", "pv", &pv, "--ignore-not-found", "--timeout=60s"]);
        let manifest = format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {pv}}}\nspec:\n  capacity: {{storage: 200Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: \"\"\n  persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: /var/lib/convene-e2e/{pv}}}\n"
        );
        let out = kubectl(&["apply", "-f", "-"], Some(&manifest));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // The example's Shards and RecorderPools, as they are in the file (its bridges and relays
    // are other tests' subject: a plain bridge per shard stands in for them here).
    let example = std::fs::read_to_string(repo().join("examples/production.yaml")).expect("example");
    let docs: Vec<&str> = example
        .split("\n---")
        .filter(|d| d.lines().any(|l| l == "kind: Shard" || l == "kind: RecorderPool"))
        .collect();
    assert_eq!(docs.len(), 4, "two Shards and two RecorderPools in the example");
    let out = kubectl(&["apply", "-n", ns, "-f", "-"], Some(&docs.join("\n---\n")));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut kept = vec![];
    let mut ports = vec![];
    for shard in ["meet-a", "meet-b"] {
        let secret = bridge_control_secret(&client, ns, shard).await;
        let (signaling, port) = start_signaling(&format!("{ns}-{shard}"), &secret);
        let logs = cluster_dir().join("logs");
        let bridge = convene_e2e::stack::spawn_bridge(&logs, &format!("{ns}-{shard}-bridge"), port, &secret);
        let url = format!("ws://127.0.0.1:{port}/recorder");
        let s3 = format!("http://127.0.0.1:{s3_port}");
        let mut env = vec![(renv::SIGNALING_URL, url.as_str())];
        if shard == "meet-a" {
            env.push((renv::S3_ENDPOINT, s3.as_str()));
        }
        let selector =
            format!("app.kubernetes.io/instance={shard}-recorders,app.kubernetes.io/component=recorder");
        let kubelet = Kubelet::start(client.clone(), ns, &selector, &env);
        kept.push((signaling, bridge, kubelet));
        ports.push(port);
    }
    let pools: Api<RecorderPool> = Api::namespaced(client.clone(), ns);
    for (shard, port) in ["meet-a", "meet-b"].into_iter().zip(ports.iter().copied()) {
        let name = format!("{shard}-recorders");
        let status =
            eventually(&format!("{name}: 2 recorders registered"), Duration::from_secs(120), || async {
                let s = pools.get(&name).await?.status.unwrap_or_default();
                Ok((registered(port).await == 2 && s.capacity_free == Some(20)).then_some(s))
            })
            .await;
        eprintln!("{name}: {} recorders in status, capacity {}", status.recorders.len(), status.capacity);
    }

    let mut mods = vec![];
    for port in &ports {
        let mut m = moderator(*port, "standup").await;
        m.record().await;
        mods.push(m);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for m in &mut mods {
        m.stop_recording().await;
        m.never_cut();
    }

    // meet-a: in the example's bucket, under the shard's prefix, its manifest final.
    let manifest = eventually("meet-a's recording in the bucket", Duration::from_secs(60), || async {
        let list = curl(s3_port, "GET", "/convene-recordings?list-type=2")?;
        let key = list
            .split("<Key>")
            .filter_map(|k| k.split("</Key>").next())
            .find(|k| k.starts_with("meet-a/standup/") && k.ends_with("/manifest.json"))
            .map(String::from);
        match key {
            Some(k) => Ok(Some(curl(s3_port, "GET", &format!("/convene-recordings/{k}"))?)),
            None => Ok(None),
        }
    })
    .await;
    assert!(manifest.contains("stopped_wall_ms"), "{manifest}");
    // meet-b: on the volume of the recorder that took it (the claim's directory).
    let volumes = cluster_dir().join("volumes").join(ns);
    let found = eventually("meet-b's recording on a volume", Duration::from_secs(60), || {
        let volumes = volumes.clone();
        async move {
            // The claims' directories (`recordings-<pod>`).
            let claims = std::fs::read_dir(&volumes)?.flatten().map(|e| e.path());
            let claims = claims.filter(|p| {
                p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("recordings-meet-b-"))
            });
            for claim in claims {
                for e in std::fs::read_dir(claim.join("standup")).into_iter().flatten().flatten() {
                    let m = std::fs::read_to_string(e.path().join("manifest.json")).unwrap_or_default();
                    if m.contains("stopped_wall_ms") {
                        return Ok(Some(e.path()));
                    }
                }
            }
            Ok(None)
        }
    })
    .await;
    eprintln!("meet-b's recording on its volume: {}", found.display());
    let claims = kubectl_ok(&[
        "get",
        "pvc",
        "-n",
        ns,
        "-o",
        "custom-columns=N:.metadata.name,S:.status.phase",
        "--no-headers",
    ]);
    assert_eq!(claims.lines().filter(|l| l.contains("Bound")).count(), 2, "{claims}");
}
