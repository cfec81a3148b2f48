//! `kubectl convene` as an admin runs it (issue 15, item 6): installed as a kubectl plugin
//! (the workspace's `kubectl-convene` on PATH), against a healthy shard and then the same
//! shard broken three ways: a wrong static address, a missing TLS Secret, a missing TurnPool.
//! The operator runs under the chart's ServiceAccount; the plugin with the admin's kubeconfig.
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test doctor -- --ignored

use anyhow::anyhow;
use convene_e2e::*;
use convene_operator::crd::{BridgePool, Shard};
use std::process::Command;
use std::time::Duration;

const NS: &str = "doctor";
const TIMEOUT: Duration = Duration::from_secs(90);

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
  domain: meet.doctor.example
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

/// A TLS Secret for the shard's domain (rcgen's default validity, far in the future).
fn tls_secret() {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["meet.doctor.example".into()])
        .and_then(|p| p.self_signed(&key))
        .expect("cert");
    let dir = std::env::temp_dir().join(format!("convene-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&c, cert.pem()).expect("crt");
    std::fs::write(&k, key.serialize_pem()).expect("key");
    let (c, k) = (c.to_string_lossy().into_owned(), k.to_string_lossy().into_owned());
    kubectl_ok(&["create", "secret", "tls", "trial-tls", "-n", NS, "--cert", &c, "--key", &k]);
    let _ = std::fs::remove_dir_all(dir);
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
    tls_secret();
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

    // Break it: a static address that is not the node's, no TLS Secret, no TurnPool.
    kubectl_ok(&["delete", "secret", "trial-tls", "-n", NS]);
    kubectl_ok(&["delete", "turnpool", "relays", "-n", NS]);
    let broken = manifest("{source: Static, staticAddresses: [203.0.113.9]}");
    assert!(kubectl(&["apply", "-n", NS, "-f", "-"], Some(&broken)).status.success());
    eventually("the pool advertises the static address", TIMEOUT, || async {
        let p: BridgePool = get(&client, NS, "trial").await?.ok_or_else(|| anyhow!("no pool"))?;
        let st = p.status.unwrap_or_default();
        Ok(st.bridges.iter().any(|b| b.address.as_deref() == Some("203.0.113.9")).then_some(()))
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
        "WARN  bridge trial-bridge-0 → advertises 203.0.113.9, not an address of node doctor-",
    );
    under("Users behind corporate networks fail", "FAIL  TurnPool → TurnPool relays does not exist");
    delete_namespace(NS);
}
