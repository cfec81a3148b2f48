//! `kubectl convene` as an admin runs it (issue 15, item 6): installed as a kubectl plugin
//! (the workspace's `kubectl-convene` on PATH), against a healthy shard and then the same
//! shard broken three ways: a wrong static address, a missing TLS Secret, a missing TurnPool.
//! The operator runs under the chart's ServiceAccount; the plugin with the admin's kubeconfig.
//! The doctor's probes reach only loopback: the domain is `localhost`, the bridge runs (by the
//! test kubelet) on its node's 127.0.6.x address, the relay is a real coturn started here on
//! the TurnPool's published address with the pool's secret, and the wrong static address is an
//! unused loopback address. On the way, the Shard's Ingress certificate: one expiring in 5 days
//! and a missing Secret each make it Degraded, with a Warning Event.
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test doctor -- --ignored

use anyhow::anyhow;
use convene_e2e::kubelet::Kubelet;
use convene_e2e::*;
use convene_operator::crd::{BridgePool, Shard, TurnPool};
use k8s_openapi::api::core::v1::Secret;
use std::process::{Command, Stdio};
use std::time::Duration;

const NS: &str = "doctor";
const TIMEOUT: Duration = Duration::from_secs(90);
/// The broken case's static address: loopback, but no node's.
const WRONG: &str = "127.0.6.250";

/// `kubectl convene <args>`: (exit code, stdout).
fn plugin(args: &[&str]) -> (i32, String) {
    let bin_dir = workspace_binary("kubectl-convene").parent().expect("bin dir").to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out =
        Command::new("kubectl").arg("convene").args(args).env("PATH", path).output().expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("--- kubectl convene {}\n{stdout}{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), stdout)
}

fn manifest(address: &str) -> String {
    format!(
        r#"apiVersion: convene.dev/v1alpha1
kind: Shard
metadata: {{name: trial}}
spec:
  domain: localhost
  ingress: {{enabled: true, tlsSecretName: trial-tls}}
  turnPoolRef: {{name: relays}}
  signaling:
    placement:
      tolerations: [{{key: convene.dev/doctor, operator: Exists}}]
---
apiVersion: convene.dev/v1alpha1
kind: BridgePool
metadata: {{name: trial}}
spec:
  shardRef: {{name: trial}}
  replicas: 1
  publicAddress: {address}
  ports: {{http: 18280, media: 10500, tcpFallback: 4843}}
  bridge:
    placement:
      nodeSelector: {{convene.dev/doctor: "true"}}
      tolerations: [{{key: convene.dev/doctor, operator: Exists}}]
"#
    )
}

const TURN: &str = r#"apiVersion: convene.dev/v1alpha1
kind: TurnPool
metadata: {name: relays}
spec:
  realm: meet.doctor.example
  ports: {listening: 3578}
  relayPorts: {min: 50000, max: 50100}
  turn:
    placement:
      nodeSelector: {convene.dev/doctor: "true"}
      tolerations: [{key: convene.dev/doctor, operator: Exists}]
"#;

/// A TLS Secret for the shard's domain, valid until `not_after` (None: rcgen's default, far in
/// the future).
fn tls_secret(not_after: Option<(i32, u8, u8)>) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    if let Some((y, m, d)) = not_after {
        params.not_after = rcgen::date_time_ymd(y, m, d);
    }
    let cert = params.self_signed(&key).expect("cert");
    let dir = std::env::temp_dir().join(format!("convene-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.pem()).expect("crt");
    std::fs::write(&k, key.serialize_pem()).expect("key");
    let (c, k) = (c.to_string_lossy().into_owned(), k.to_string_lossy().into_owned());
    kubectl_ok(&["create", "secret", "tls", "trial-tls", "-n", NS, "--cert", &c, "--key", &k]);
    let _ = std::fs::remove_dir_all(dir);
}

/// A real coturn on `ip:port` with the TurnPool's shared secret, as the pool's pod would run.
fn coturn(ip: &str, port: u16, secret: &str) -> Process {
    let dir = std::env::temp_dir().join(format!("convene-doctor-coturn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let log = std::fs::File::create(dir.join("coturn.log")).expect("log");
    let child = Command::new("turnserver")
        .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--use-auth-secret", "--realm=meet.doctor.example"])
        .arg(format!("--listening-ip={ip}"))
        .arg(format!("--relay-ip={ip}"))
        .arg(format!("--listening-port={port}"))
        .args(["--min-port=50000", "--max-port=50100"])
        .arg(format!("--static-auth-secret={secret}"))
        .arg(format!("--pidfile={}", dir.join("pid").display()))
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .expect("turnserver (coturn) is installed: run scripts/install-deps.sh");
    let addr = format!("{ip}:{port}");
    let started = std::time::Instant::now();
    while std::net::UdpSocket::bind(&addr).is_ok() {
        assert!(started.elapsed() < Duration::from_secs(10), "coturn did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Process(child)
}

/// The Shard's Degraded condition once its reason is `reason`.
async fn degraded(client: &kube::Client, reason: &str) -> String {
    eventually(&format!("Shard trial Degraded with {reason}"), TIMEOUT, || async {
        let s: Shard = get(client, NS, "trial").await?.ok_or_else(|| anyhow!("no shard"))?;
        let c = condition(&s.conditions(), "Degraded").cloned();
        Ok(c.filter(|c| c.status == "True" && c.reason == reason).map(|c| c.message))
    })
    .await
}

/// The types of the Shard's Events with `reason`.
fn shard_events(reason: &str) -> String {
    kubectl_ok(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        &format!("involvedObject.kind=Shard,involvedObject.name=trial,reason={reason}"),
        "-o",
        "jsonpath={.items[*].type}",
    ])
}

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn doctor_names_the_component_of_each_broken_part() {
    install_crds();
    for i in 0..2u8 {
        let name = format!("doctor-{i}");
        add_node(&name, &format!("127.0.6.{}", 2 + i), None, &[("convene.dev/doctor", "true")]);
        kubectl_ok(&["taint", "node", &name, "convene.dev/doctor=true:NoSchedule", "--overwrite"]);
    }
    let _ns = fresh_namespace(NS);
    let client = client().await;
    let _op = Operator::start(NS, "op-doctor", "convene-operator", 15).unwrap();
    tls_secret(None);
    // The bridge runs for real (its probes need it); signaling does not, so its control
    // connection goes to a closed loopback port and keeps retrying.
    let _bridges = Kubelet::start(
        client.clone(),
        NS,
        "app.kubernetes.io/instance=trial,app.kubernetes.io/component=bridge",
        &[(convene_proto::bridge::env::SIGNALING_URL, "ws://127.0.0.1:9/bridge")],
    );
    let healthy = manifest("{source: NodeInternalIP}");
    assert!(
        kubectl(&["apply", "-n", NS, "-f", "-"], Some(&format!("{healthy}---\n{TURN}"))).status.success()
    );
    eventually("Shard Ready with its relays", TIMEOUT, || async {
        let s: Shard = get(&client, NS, "trial").await?.ok_or_else(|| anyhow!("no shard"))?;
        let ready = condition(&s.conditions(), "Ready").is_some_and(|c| c.status == "True");
        let p: BridgePool = get(&client, NS, "trial").await?.ok_or_else(|| anyhow!("no pool"))?;
        let addressed = p.status.is_some_and(|st| st.bridges.iter().all(|b| b.address.is_some()));
        Ok((ready && addressed).then_some(()))
    })
    .await;
    let relay: TurnPool = eventually("the TurnPool publishes its relay", TIMEOUT, || async {
        let t: TurnPool = get(&client, NS, "relays").await?.ok_or_else(|| anyhow!("no pool"))?;
        Ok(t.status.as_ref().is_some_and(|s| !s.addresses.is_empty()).then_some(t))
    })
    .await;
    let relay_ip = relay.status.unwrap().addresses[0].clone();
    let secret: Secret = get(&client, NS, "relays-turn").await.unwrap().expect("the pool's secret");
    let secret = String::from_utf8(secret.data.unwrap()["secret"].0.clone()).unwrap();
    let _coturn = coturn(&relay_ip, 3578, &secret);
    // What an ingress controller would publish (none runs here): where `localhost` resolves.
    kubectl_ok(&[
        "patch",
        "ingress",
        "trial",
        "-n",
        NS,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"127.0.0.1"}]}}}"#,
    ]);

    let (code, status) = plugin(&["status", "trial", "-n", NS]);
    assert_eq!(code, 0);
    for want in
        ["Shard doctor/trial", "BridgePool trial  1/1 ready", "trial-bridge-0", "127.0.6.", "TurnPool relays"]
    {
        assert!(status.contains(want), "status lacks {want}");
    }
    let (code, report) = plugin(&["doctor", "trial", "-n", NS]);
    assert_eq!(code, 0, "a healthy shard fails no check");
    assert!(!report.contains("FAIL"));
    assert!(report.contains("OK    Ingress TLS (Secret trial-tls) → certificate valid"));
    assert!(report.contains("OK    TurnPool relays"));
    let bridge = get::<BridgePool>(&client, NS, "trial").await.unwrap().unwrap().status.unwrap().bridges[0]
        .address
        .clone()
        .unwrap();
    for want in [
        "OK    DNS localhost → resolves to 127.0.0.1, the Ingress's address".to_string(),
        format!("OK    bridge trial-bridge-0 → udp {bridge}:10500 answers STUN"),
        format!("OK    bridge trial-bridge-0 → tcp {bridge}:4843 (ICE-TCP) accepts"),
        format!("OK    TURN relay {relay_ip}:3578 → allocation succeeded"),
    ] {
        assert!(report.contains(&want), "no `{want}`");
    }

    // The pool's secret rotated while the relay kept the old one: the Allocate is refused.
    kubectl_ok(&["patch", "secret", "relays-turn", "-n", NS, "-p", r#"{"stringData":{"secret":"rotated"}}"#]);
    let (code, report) = plugin(&["doctor", "trial", "-n", NS]);
    assert_eq!(code, 1);
    assert!(report.contains(&format!(
        "FAIL  TURN relay {relay_ip}:3578 → credentials refused (the relay's secret differs from Secret relays-turn)"
    )));

    // The Ingress certificate expires in 5 days (midnight UTC of the day after, whole days
    // counted down): Degraded with the date and the Secret, and a
    // Warning Event; then the Secret is gone (as while cert-manager issues it).
    let soon = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(6 * 24))
        .unwrap();
    let d = soon.to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC).date();
    kubectl_ok(&["delete", "secret", "trial-tls", "-n", NS]);
    tls_secret(Some((i32::from(d.year()), d.month() as u8, d.day() as u8)));
    let message = degraded(&client, "CertificateExpiring").await;
    assert!(message.contains("trial-tls") && message.contains(&d.to_string()), "{message}");
    assert!(message.contains("(in 5 days)"), "{message}");
    assert!(shard_events("CertificateExpiring").contains("Warning"), "a Warning Event says it");

    // Break it: no TLS Secret, no TurnPool, a static address that is not the node's (an unused
    // loopback address: the probe never leaves the machine).
    kubectl_ok(&["delete", "secret", "trial-tls", "-n", NS]);
    let message = degraded(&client, "IngressTLSSecretMissing").await;
    assert!(message.contains("cert-manager may still be issuing it"), "{message}");
    assert!(shard_events("IngressTLSSecretMissing").contains("Warning"));
    kubectl_ok(&["delete", "turnpool", "relays", "-n", NS]);
    let broken = manifest(&format!("{{source: Static, staticAddresses: [{WRONG}]}}"));
    assert!(kubectl(&["apply", "-n", NS, "-f", "-"], Some(&broken)).status.success());
    eventually("the pool advertises the static address", TIMEOUT, || async {
        let p: BridgePool = get(&client, NS, "trial").await?.ok_or_else(|| anyhow!("no pool"))?;
        let st = p.status.unwrap_or_default();
        Ok(st.bridges.iter().any(|b| b.address.as_deref() == Some(WRONG)).then_some(()))
    })
    .await;
    let (code, report) = plugin(&["doctor", "trial", "-n", NS]);
    assert_eq!(code, 1, "a failed check exits 1");
    let under = |symptom: &str, line: &str| {
        let section = report.split("\n\n").find(|s| s.starts_with(symptom)).unwrap_or_default();
        assert!(section.contains(line), "no `{line}` under `{symptom}`");
    };
    under("Page does not load", "FAIL  Ingress TLS (Secret trial-tls) → Secret trial-tls does not exist");
    under(
        "Users can join but no audio/video",
        &format!("WARN  bridge trial-bridge-0 → advertises {WRONG}, not an address of node doctor-"),
    );
    under(
        "Users can join but no audio/video",
        &format!("FAIL  bridge trial-bridge-0 → udp {WRONG}:10500 unreachable"),
    );
    under("Users behind corporate networks fail", "FAIL  TurnPool → TurnPool relays does not exist");
    delete_namespace(NS);
}
