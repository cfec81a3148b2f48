//! The chart's alerts against a real Prometheus (issue 15 item 4), on the cluster tier: the
//! operator (with the chart's RBAC), a real `convene-signaling` and a BridgePool of two real
//! `convene-bridge` processes (the kubelet stand-in runs them on this test's kwok nodes), all
//! scraped by the pinned Prometheus server built by `ops/install-prometheus.sh`, which evaluates
//! `charts/convene/files/alerts.yaml`. Run through the cluster tier:
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test alerts -- --ignored --nocapture --test-threads=1
//!
//! Time is scaled: the chart's `for` windows are minutes (ConveneBridgePoolNoReadyBridge and
//! ConveneBridgeDown 1m, …) and ConveneBridgeLost counts losses over `[2m]`, so Prometheus loads
//! a copy of the rules (written by the test; the chart's file is not touched) in which every
//! `for` window and every range window is divided by [`SCALE`] = 10 (1m -> 6s, 2m -> 12s, 5m ->
//! 30s, …; the list is printed), and scrapes and evaluates every second. The expressions,
//! labels and thresholds are the chart's.
//!
//! The bridges are discovered as `ops/prometheus/prometheus-convene.yml` discovers them: its
//! annotation-scrape job (kubernetes_sd pods through the test cluster's API server, the pods'
//! `prometheus.io/*` annotations, its relabeling to the target labels namespace, pod, component,
//! shard, pool, image), kept to `component="bridge"`. The operator and signaling run on loopback,
//! not as pods, so they are static targets carrying the labels the chart's monitors set.

use anyhow::Result;
use convene_e2e::kubelet::Kubelet;
use convene_e2e::loadgen::{Loadgen, assert_no_drops};
use convene_e2e::prometheus::{
    Alert, Job, KubeStateMetrics, Prometheus, Target, annotation_job, scaled_rules,
};
use convene_e2e::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const NS: &str = "alerts";
/// The shard and the pool are both called `alerts`.
const NAME: &str = "alerts";
const HTTP_PORT: u16 = 18095;
const SELECTOR: &str = "app.kubernetes.io/instance=alerts,app.kubernetes.io/component=bridge";
/// Every `for` and range window of the rules is divided by this.
const SCALE: u64 = 10;
/// Prometheus scrapes and evaluates the rules this often.
const INTERVAL: Duration = Duration::from_secs(1);
/// The scaled `for` window of ConveneBridgePoolNoReadyBridge (1m / 10).
const NO_READY_FOR: Duration = Duration::from_secs(6);
/// On top of a `for` window: two scrapes for the change to be seen, then evaluations (the
/// pending alert turns firing on the first evaluation after `for`), the API round trip and a
/// loaded 2-core machine.
const SLACK: Duration = Duration::from_secs(8);
/// The alerts this test drives.
const DRIVEN: [&str; 3] = ["ConveneBridgeLost", "ConveneBridgePoolNoReadyBridge", "ConveneBridgeDown"];

fn apply_shard() {
    let manifest = format!(
        r#"apiVersion: convene.dev/v1alpha1
kind: Shard
metadata: {{name: {NAME}}}
spec: {{domain: alerts.localhost, turnPoolRef: {{name: {NAME}}}}}
---
# No relay runs on the cluster tier (coturn is tested in the browser tier): a pool of none, so
# its StatefulSet and reconciles feed the TURN dashboard without a relay missing.
apiVersion: convene.dev/v1alpha1
kind: TurnPool
metadata: {{name: {NAME}}}
spec: {{replicas: 0, realm: alerts.localhost}}
---
apiVersion: convene.dev/v1alpha1
kind: BridgePool
metadata: {{name: {NAME}}}
spec:
  shardRef: {{name: {NAME}}}
  replicas: 2
  autoscaling: {{enabled: false, drainTimeoutSeconds: 5}}
  publicAddress: {{source: NodeInternalIP}}
  ports: {{media: 10000, tcpFallback: 4443, http: {HTTP_PORT}}}
  bridge:
    logLevel: info
    placement:
      nodeSelector: {{convene.dev/alerts: "true"}}
      tolerations: [{{key: convene.dev/alerts, operator: Equal, value: "true", effect: NoSchedule}}]
"#
    );
    let out = kubectl(&["apply", "-n", NS, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Deletes the namespace when the test ends, pass or fail, while the operator, signaling and
/// the bridges still run: the Convene objects first (the BridgePool's finalizer needs the
/// operator, whose ServiceAccount lives in the namespace), then the namespace.
struct Namespace;

impl Drop for Namespace {
    fn drop(&mut self) {
        delete_convene_resources(NS);
        let _ = kubectl(&["delete", "namespace", NS, "--wait=true", "--timeout=120s"], None);
    }
}

async fn bridge_pods(client: &Client) -> Result<Vec<Pod>> {
    Ok(Api::<Pod>::namespaced(client.clone(), NS).list(&ListParams::default().labels(SELECTOR)).await?.items)
}

fn pod_ip(p: &Pod) -> String {
    p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default()
}

/// Wait until both bridges run and are registered with signaling.
async fn wait_bridges(client: &Client, kubelet: &Kubelet, timeout: Duration) {
    eventually("2 bridges running and registered", timeout, || async {
        let pods = bridge_pods(client).await?;
        let mut uids: Vec<String> = pods.iter().filter_map(|p| p.uid()).collect();
        uids.sort();
        if pods.len() != 2 || uids != kubelet.running() {
            return Ok(None);
        }
        for p in &pods {
            let m = http_get_host(&pod_ip(p), HTTP_PORT, "/metrics").await?;
            if !m.contains("convene_bridge_signaling_connected 1") {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await;
}

fn describe(alerts: &[Alert]) -> String {
    let mut lines: Vec<String> = alerts
        .iter()
        .map(|a| {
            let labels: Vec<String> =
                a.labels.iter().filter(|(k, _)| *k != "alertname").map(|(k, v)| format!("{k}={v}")).collect();
            format!("{} [{}] {{{}}}", a.name, a.state, labels.join(", "))
        })
        .collect();
    lines.sort();
    if lines.is_empty() { "(none)".into() } else { lines.join("\n  ") }
}

/// Wait until alert `name` fires; returns it and the time from `since`.
async fn wait_firing(prom: &Prometheus, name: &str, since: Instant, timeout: Duration) -> (Alert, Duration) {
    let alert = eventually(&format!("{name} firing"), timeout, || async {
        Ok(prom.firing(name).await?.into_iter().next())
    })
    .await;
    (alert, since.elapsed())
}

/// Wait until none of `names` is pending or firing; returns the time from `since`.
async fn wait_resolved(prom: &Prometheus, names: &[&str], since: Instant, timeout: Duration) -> Duration {
    eventually(&format!("{names:?} resolved"), timeout, || async {
        let active = prom.alerts().await?;
        Ok((!active.iter().any(|a| names.contains(&a.name.as_str()))).then_some(()))
    })
    .await;
    since.elapsed()
}

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn bridge_alerts_fire_and_resolve_in_a_real_prometheus() {
    let test_start = Instant::now();
    install_crds();
    for i in 0..2u8 {
        let name = format!("alerts-{i}");
        add_node(&name, &format!("127.0.7.{}", 2 + i), None, &[("convene.dev/alerts", "true")]);
        kubectl_ok(&["taint", "node", &name, "convene.dev/alerts=true:NoSchedule", "--overwrite"]);
    }
    let _ns = fresh_namespace(NS);
    // Declared in this order so that, dropped in reverse, the namespace goes first.
    let mut kubelet: Option<Kubelet>;
    let op = Operator::start(NS, "op-alerts", "convene-operator", 15).expect("operator starts");
    let client = client().await;
    apply_shard();
    let secret = bridge_control_secret(&client, NS, NAME).await;
    let (_signaling, signaling_port) = start_signaling(NS, &secret);
    let _ns = Namespace;
    let url = format!("ws://127.0.0.1:{signaling_port}/bridge");
    let env = [("CONVENE_SIGNALING_URL", url.as_str())];
    kubelet = Some(Kubelet::start(client.clone(), NS, SELECTOR, &env));
    wait_bridges(&client, kubelet.as_ref().unwrap(), Duration::from_secs(90)).await;
    println!("operator, signaling and 2 bridges up after {:.1} s", test_start.elapsed().as_secs_f64());

    // Prometheus: the operator and signaling (on loopback, not pods) as static targets with the
    // labels the chart's monitors give them; the bridges discovered as the shipped
    // ops/prometheus/prometheus-convene.yml discovers them (kubernetes_sd pods through the API
    // server, the pods' prometheus.io annotations, its relabeling to the target labels).
    let mut pods = bridge_pods(&client).await.unwrap();
    pods.sort_by_key(|p| p.name_any());
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG (run through with-cluster.sh)");
    let ksm =
        KubeStateMetrics::start(Path::new(&kubeconfig), &[NS]).await.expect("kube-state-metrics starts");
    let jobs = [
        Job {
            name: "convene-operator".into(),
            honor_labels: true,
            targets: vec![Target::new(
                format!("127.0.0.1:{}", op.port),
                &[("namespace", NS), ("pod", "convene-operator-0"), ("component", "operator")],
            )],
        }
        .config(),
        Job {
            name: "convene-signaling".into(),
            honor_labels: false,
            targets: vec![Target::new(
                format!("127.0.0.1:{signaling_port}"),
                &[
                    ("namespace", NS),
                    ("pod", "alerts-signaling-0"),
                    ("component", "signaling"),
                    ("shard", NAME),
                ],
            )],
        }
        .config(),
        annotation_job("convene-pods", Path::new(&kubeconfig), &[NS], &["bridge"]).unwrap(),
        Job {
            name: "kube-state-metrics".into(),
            honor_labels: true,
            targets: vec![Target::new(format!("127.0.0.1:{}", ksm.port), &[])],
        }
        .config(),
    ];
    let (rules, scaled) = scaled_rules(SCALE).expect("the chart's rules");
    println!("windows scaled by 1/{SCALE} for this test:\n  {}", scaled.join("\n  "));
    let prom = Prometheus::start("alerts", INTERVAL, &rules, &jobs).await.expect("prometheus starts");
    println!("prometheus on 127.0.0.1:{} ({})", prom.port, prom.dir.display());
    let targets = 3 + pods.len();
    eventually(
        "every target scraped and the pool's desired replicas seen",
        Duration::from_secs(30),
        || async {
            let up = prom.query("count(up == 1)").await?;
            let n = up.first().and_then(|r| r["value"][1].as_str()).unwrap_or("0").to_string();
            let desired = prom
                .query(&format!(
                    r#"convene_operator_bridgepool_desired_replicas{{namespace="{NS}",pool="{NAME}"}}"#
                ))
                .await?;
            let desired = desired.first().and_then(|r| r["value"][1].as_str()).unwrap_or("0").to_string();
            Ok((n == targets.to_string() && desired == "2").then_some(()))
        },
    )
    .await;

    // The bridges' target labels, from the pods through the shipped relabeling.
    let up = prom.query(r#"up{component="bridge"}"#).await.unwrap();
    let mut seen: Vec<String> =
        up.iter().map(|r| r["metric"]["pod"].as_str().unwrap_or_default().into()).collect();
    seen.sort();
    assert_eq!(seen, pods.iter().map(|p| p.name_any()).collect::<Vec<_>>(), "{up:?}");
    for r in &up {
        let m = &r["metric"];
        let image = pods
            .iter()
            .find(|p| p.name_any() == m["pod"])
            .and_then(|p| p.spec.as_ref()?.containers[0].image.clone());
        assert_eq!(
            (&m["namespace"], &m["shard"], &m["pool"]),
            (&json!(NS), &json!(NAME), &json!(NAME)),
            "{m}"
        );
        assert_eq!(m["image"].as_str(), image.as_deref(), "{m}");
        assert_eq!(
            m["instance"],
            json!(format!(
                "{}:{HTTP_PORT}",
                pods.iter().find(|p| p.name_any() == m["pod"]).map(pod_ip).unwrap_or_default()
            )),
            "{m}"
        );
    }
    println!("bridges discovered through the API server with target labels {}", up[0]["metric"]);

    // All up: no alert fires, and none of the three this test drives is even pending, after
    // more than their scaled `for` windows of evaluations.
    tokio::time::sleep(NO_READY_FOR + SLACK).await;
    let baseline = prom.alerts().await.unwrap();
    println!("all up, alerts pending or firing:\n  {}", describe(&baseline));
    for a in &baseline {
        assert!(!DRIVEN.contains(&a.name.as_str()), "{} is active with every bridge up: {a:?}", a.name);
        assert_ne!(a.state, "firing", "an alert fires with everything up: {a:?}");
    }

    // Real participants through the pool, then every dashboard query must return a series from
    // this Prometheus (issue 15 item 2): the chart's panels read what Convene really exports.
    let calls = Loadgen::start("dashboards", signaling_port, 6, 2);
    eventually("media forwarded by the bridges, as Prometheus sees it", Duration::from_secs(60), || async {
        let q = format!(r#"sum(rate(convene_bridge_packets_out_total{{namespace="{NS}"}}[5s]))"#);
        let r = prom.query(&q).await?;
        let pps: f64 = r.first().and_then(|r| r["value"][1].as_str()?.parse().ok()).unwrap_or(0.0);
        Ok((pps > 0.0).then_some(()))
    })
    .await;
    // A few more scrapes, so the loss and RTT the peers report are in.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let url = format!("http://127.0.0.1:{}", prom.port);
    let check =
        Command::new("python3").args(["ops/dashboards/check.py", "live", &url]).current_dir(repo()).output();
    let check = check.expect("python3 runs ops/dashboards/check.py");
    let said = String::from_utf8_lossy(&check.stderr);
    println!("dashboards against this Prometheus, with traffic:\n{said}");
    assert!(check.status.success(), "a dashboard query returns no data from the cluster tier: {said}");
    assert_no_drops("dashboards", &calls.stop());

    // SIGKILL one bridge: signaling loses a serving bridge, ConveneBridgeLost (no `for`) fires
    // on the first evaluation after the next scrape of signaling.
    let victim = pods[0].name_any();
    let killed = Instant::now();
    assert!(kubelet.as_ref().unwrap().kill(&victim), "{victim} runs");
    let (lost, t) = wait_firing(&prom, "ConveneBridgeLost", killed, Duration::from_secs(60)).await;
    println!("ConveneBridgeLost fired {:.1} s after SIGKILL of {victim}: {lost:?}", t.as_secs_f64());
    assert_eq!(lost.labels.get("shard").map(String::as_str), Some(NAME));
    assert_eq!(lost.labels.get("namespace").map(String::as_str), Some(NS));
    assert!(t <= SLACK, "ConveneBridgeLost has no `for`: fired after {t:?}");
    // The kubelet restarts it (3 s back-off); the other bridge was ready all along.
    wait_bridges(&client, kubelet.as_ref().unwrap(), Duration::from_secs(60)).await;
    println!("{victim} back and registered {:.1} s after the kill", killed.elapsed().as_secs_f64());
    let no_ready = prom.firing("ConveneBridgePoolNoReadyBridge").await.unwrap();
    assert!(no_ready.is_empty(), "a pool with one ready bridge has a ready bridge: {no_ready:?}");

    // No ready bridge: every bridge process of the pool stops (the kubelet stand-in goes, as
    // when the pool's nodes are lost) while the operator still wants 2.
    drop(kubelet.take());
    let stopped = Instant::now();
    let (alert, t) =
        wait_firing(&prom, "ConveneBridgePoolNoReadyBridge", stopped, NO_READY_FOR + Duration::from_secs(60))
            .await;
    println!(
        "ConveneBridgePoolNoReadyBridge fired {:.1} s after both bridges stopped: {alert:?}",
        t.as_secs_f64()
    );
    assert_eq!(alert.labels.get("pool").map(String::as_str), Some(NAME));
    assert_eq!(alert.labels.get("severity").map(String::as_str), Some("critical"));
    assert!(t <= NO_READY_FOR + SLACK, "fired {t:?} after the bridges stopped, `for` is {NO_READY_FOR:?}");
    let active = prom.alerts().await.unwrap();
    println!("with no bridge, alerts pending or firing:\n  {}", describe(&active));

    // Restore: the bridges start again and register; every alert this test drove resolves.
    kubelet = Some(Kubelet::start(client.clone(), NS, SELECTOR, &env));
    let restored = Instant::now();
    wait_bridges(&client, kubelet.as_ref().unwrap(), Duration::from_secs(60)).await;
    println!("bridges back and registered {:.1} s after the restore", restored.elapsed().as_secs_f64());
    let t =
        wait_resolved(&prom, &["ConveneBridgePoolNoReadyBridge"], restored, Duration::from_secs(30)).await;
    println!("ConveneBridgePoolNoReadyBridge resolved {:.1} s after the restore", t.as_secs_f64());
    // ConveneBridgeLost counts losses over its (scaled) 12 s window after the last one.
    let t = wait_resolved(&prom, &DRIVEN, restored, Duration::from_secs(60)).await;
    println!(
        "ConveneBridgeLost and ConveneBridgeDown resolved {:.1} s after the restore ({:.1} s after the SIGKILL)",
        t.as_secs_f64(),
        killed.elapsed().as_secs_f64()
    );
    let end = prom.alerts().await.unwrap();
    println!("restored, alerts pending or firing:\n  {}", describe(&end));
    assert!(end.iter().all(|a| a.state != "firing"), "an alert still fires once restored");
    println!("test took {:.1} s", test_start.elapsed().as_secs_f64());
}
