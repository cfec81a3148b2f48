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
use convene_e2e::kubelet::Kubelet;
use convene_e2e::*;
use convene_operator::crd::RecorderPool;
use convene_proto::client::{ClientMsg, PROTOCOL_VERSION, ServerMsg};
use convene_proto::recorder::env as renv;
use futures_util::{SinkExt, StreamExt};
use kube::{Api, Client};
use tokio_tungstenite::tungstenite::Message;

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

/// A moderator: the first to join a room, speaking the client protocol (no media). A task
/// owns its socket and pings, so it is never idle however long the test waits.
struct Moderator {
    out: tokio::sync::mpsc::UnboundedSender<ClientMsg>,
    inbox: tokio::sync::mpsc::UnboundedReceiver<ServerMsg>,
    seen: Vec<ServerMsg>,
}

impl Moderator {
    async fn join(port: u16, room: &str) -> Moderator {
        let (mut ws, _) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await.expect("ws");
        let (out, mut outgoing) = tokio::sync::mpsc::unbounded_channel::<ClientMsg>();
        let (deliver, inbox) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut ping = tokio::time::interval(Duration::from_secs(5));
            loop {
                let msg = tokio::select! {
                    m = outgoing.recv() => match m { Some(m) => m, None => return },
                    _ = ping.tick() => ClientMsg::Ping,
                    f = ws.next() => {
                        match f {
                            Some(Ok(Message::Text(t))) => {
                                let m = convene_proto::client::parse_server(t.as_str()).expect("a server message");
                                if deliver.send(m).is_err() { return }
                            }
                            Some(Ok(_)) => {}
                            _ => return,
                        }
                        continue;
                    }
                };
                if ws.send(Message::text(msg.to_json())).await.is_err() {
                    return;
                }
            }
        });
        let mut m = Moderator { out, inbox, seen: vec![] };
        let join = ClientMsg::Join {
            v: PROTOCOL_VERSION,
            room: room.into(),
            name: Some(format!("Mod {room}")),
            avatar: None,
            token: None,
            password: None,
            audio_muted: true,
            video_muted: true,
        };
        m.send(join).await;
        // The room has its bridge once the moderator's media is set up.
        m.wait("media", |m| matches!(m, ServerMsg::Media { .. })).await;
        m
    }

    async fn send(&mut self, msg: ClientMsg) {
        self.out.send(msg).expect("the socket task runs");
    }

    async fn wait(&mut self, what: &str, f: impl Fn(&ServerMsg) -> bool) -> ServerMsg {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, self.inbox.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 30 s; saw {:?}", self.seen))
                .expect("socket open");
            self.seen.push(m.clone());
            if f(&m) {
                return m;
            }
        }
    }

    /// Everything received so far, kept.
    fn drain_inbox(&mut self) {
        while let Ok(m) = self.inbox.try_recv() {
            self.seen.push(m);
        }
    }

    /// Start recording; panics on the typed error instead.
    async fn record(&mut self) {
        self.send(ClientMsg::SetRecording { recording: true }).await;
        let m = self
            .wait("recording or an error", |m| {
                matches!(m, ServerMsg::Room { room } if room.recording)
                    || matches!(m, ServerMsg::Error { .. })
            })
            .await;
        assert!(matches!(m, ServerMsg::Room { .. }), "recording refused: {m:?}");
    }

    async fn stop(&mut self) {
        self.send(ClientMsg::SetRecording { recording: false }).await;
        self.wait("recording stopped", |m| matches!(m, ServerMsg::RecordingStopped { .. })).await;
    }

    /// It never heard of a stop it did not ask for.
    fn never_cut(&mut self) {
        self.drain_inbox();
        let cut = self.seen.iter().find(|m| matches!(m, ServerMsg::RecordingStopped { by: None, .. }));
        assert!(cut.is_none(), "a recording was cut: {cut:?}");
    }
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
    fresh_namespace(ns);
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
    let mut a = Moderator::join(port, "room-a").await;
    let mut b = Moderator::join(port, "room-b").await;
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
    let mut c = Moderator::join(port, "room-c").await;
    c.record().await;
    let status = eventually("three recordings, three recorders", Duration::from_secs(60), || async {
        let s = pool(&client, ns).await?.status.unwrap_or_default();
        Ok((s.recordings_active == Some(3) && s.desired_replicas == 3).then_some(s))
    })
    .await;
    eprintln!("grew to 2 recorders {grew_s:.1} s after 2 recordings; status {:?}", status.recorders);

    // Two end: the pool shrinks, but the recorder holding room-c's recording only drains.
    a.stop().await;
    b.stop().await;
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
    c.stop().await;
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
