//! The bridge autoscaler under real load, on the cluster tier: the operator, a real
//! `convene-signaling`, one real `convene-bridge` per bridge Pod (started by the kubelet
//! stand-in on the kwok node the scheduler picked) and `convene-loadgen` participants sending
//! real RTP through them. Run through the cluster tier:
//!
//!   e2e/cluster/with-cluster.sh cargo test -p convene-e2e --test autoscale -- --ignored --test-threads=1
//!
//! These tests use their own tainted nodes (`load-*`, 127.0.0.30+) so they never share ports
//! or nodes with the `operator` tests.

use anyhow::Result;
use convene_e2e::kubelet::Kubelet;
use convene_e2e::loadgen::{Loadgen, assert_no_drops};
use convene_e2e::*;
use convene_operator::crd::BridgePool;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};
use std::sync::Once;
use std::time::{Duration, Instant};

const NODES: u8 = 5;
const HTTP_PORT: u16 = 18090;
const SELECTOR: &str = "app.kubernetes.io/instance=load,app.kubernetes.io/component=bridge";

fn setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        install_crds();
        for i in 0..NODES {
            let ip = format!("127.0.0.{}", 30 + i);
            let name = format!("load-{i}");
            add_node(&name, &ip, None, &[("convene.dev/load", "true")]);
            // Dedicated media nodes, as in production: nothing else lands on them (the
            // operator tests count the nodes their bridges can use).
            kubectl_ok(&["taint", "node", &name, "--overwrite", "convene.dev/load=true:NoSchedule"]);
        }
    });
}

/// A shard and an autoscaling bridge pool placed on the `load-*` nodes. `autoscaling` is the
/// pool's `spec.autoscaling` (YAML flow mapping).
fn apply_shard(ns: &str, autoscaling: &str, replicas: i32) {
    let manifest = format!(
        r#"apiVersion: convene.dev/v1alpha1
kind: Shard
metadata: {{name: load}}
spec: {{domain: load.localhost}}
---
apiVersion: convene.dev/v1alpha1
kind: BridgePool
metadata: {{name: load}}
spec:
  shardRef: {{name: load}}
  replicas: {replicas}
  autoscaling: {autoscaling}
  publicAddress: {{source: NodeInternalIP}}
  ports: {{media: 10000, tcpFallback: 4443, http: {HTTP_PORT}}}
  bridge:
    logLevel: info
    placement:
      nodeSelector: {{convene.dev/load: "true"}}
      tolerations: [{{key: convene.dev/load, operator: Equal, value: "true", effect: NoSchedule}}]
"#
    );
    let out = kubectl(&["apply", "-n", ns, "-f", "-"], Some(&manifest));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Everything one scenario runs: operator, signaling, and the kubelet stand-in for bridges.
struct Stack {
    ns: String,
    client: Client,
    _op: Operator,
    _signaling: Process,
    signaling_port: u16,
    kubelet: Kubelet,
}

impl Stack {
    async fn start(ns: &str, autoscaling: &str, replicas: i32) -> Stack {
        setup();
        // The Stack deletes its namespace when dropped, pass or fail.
        let _ = fresh_namespace(ns);
        let op = Operator::start(ns, "op-a", "convene-operator", 15).expect("operator starts");
        let client = client().await;
        apply_shard(ns, autoscaling, replicas);
        let secret = bridge_control_secret(&client, ns, "load").await;
        let (signaling, port) = start_signaling(ns, &secret);
        let url = format!("ws://127.0.0.1:{port}/bridge");
        let kubelet = Kubelet::start(client.clone(), ns, SELECTOR, &[("CONVENE_SIGNALING_URL", &url)]);
        Stack { ns: ns.into(), client, _op: op, _signaling: signaling, signaling_port: port, kubelet }
    }

    async fn pool(&self) -> Result<BridgePool> {
        Ok(Api::<BridgePool>::namespaced(self.client.clone(), &self.ns).get("load").await?)
    }

    /// Wait until the pool runs `n` bridges: exactly its pods have processes, and each is
    /// registered with signaling. Returns how long it took.
    async fn wait_bridges(&self, n: usize, timeout: Duration) -> Duration {
        let start = Instant::now();
        eventually(&format!("{n} bridge(s) running and registered"), timeout, || async {
            let pods = self.bridge_pods().await?;
            let mut uids: Vec<String> = pods.iter().filter_map(|p| p.uid()).collect();
            uids.sort();
            if pods.len() != n || uids != self.kubelet.running() {
                return Ok(None);
            }
            for p in &pods {
                let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
                let m = http_get_host(&ip, HTTP_PORT, "/metrics").await?;
                if !m.contains("convene_bridge_signaling_connected 1") {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await;
        start.elapsed()
    }

    async fn bridge_pods(&self) -> Result<Vec<Pod>> {
        let api = Api::<Pod>::namespaced(self.client.clone(), &self.ns);
        Ok(api.list(&ListParams::default().labels(SELECTOR)).await?.items)
    }

    /// The pool's endpoints per bridge, as the operator last scraped them.
    async fn endpoints(&self) -> Vec<(String, Option<i64>)> {
        let p = self.pool().await.unwrap();
        p.status.unwrap_or_default().bridges.into_iter().map(|b| (b.name, b.endpoints)).collect()
    }
}

impl Drop for Stack {
    /// Pass or fail, the namespace goes (while the operator still runs to lift finalizers), so
    /// the next test finds the nodes' ports free.
    fn drop(&mut self) {
        let _ = kubectl(&["delete", "namespace", &self.ns, "--wait=true", "--timeout=120s"], None);
    }
}

async fn wait_load(stack: &Stack, endpoints: i64, timeout: Duration) {
    eventually(&format!("the operator sees {endpoints} endpoints"), timeout, || async {
        let p = stack.pool().await?;
        let seen = p.status.and_then(|s| s.load).map_or(0, |l| l.endpoints);
        Ok((seen >= endpoints).then_some(()))
    })
    .await;
}

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn the_pool_grows_with_live_load_and_drains_back_to_min_without_dropping_a_call() {
    // 6 endpoints per bridge with 30% spare: 4.2 usable, so 12 endpoints need 3 bridges, 16 need 4.
    let autoscaling = "{enabled: true, minReplicas: 1, maxReplicas: 4, targetEndpointsPerBridge: 6, \
                       targetMbpsPerBridge: 1000, headroomPercent: 30, scaleUpStabilizationSeconds: 5, \
                       scaleDownStabilizationSeconds: 15, drainTimeoutSeconds: 10}";
    let s = Stack::start("autoscale", autoscaling, 1).await;
    s.wait_bridges(1, Duration::from_secs(90)).await;

    // Load up: 12 participants on the one bridge; the pool must grow to 3.
    let heavy = Loadgen::start("heavy", s.signaling_port, 12, 3);
    wait_load(&s, 12, Duration::from_secs(60)).await;
    let up = s.wait_bridges(3, Duration::from_secs(60)).await;
    println!("time to scale up 1 -> 3 bridges once the operator saw 12 endpoints: {:.1} s", up.as_secs_f64());

    // More load lands on the new bridges (a new conference goes to the least loaded one).
    let light = Loadgen::start("light", s.signaling_port, 4, 1);
    wait_load(&s, 16, Duration::from_secs(60)).await;
    let up = s.wait_bridges(4, Duration::from_secs(60)).await;
    println!("time to scale up 3 -> 4 bridges once the operator saw 16 endpoints: {:.1} s", up.as_secs_f64());
    println!("endpoints per bridge: {:?}", s.endpoints().await);

    // A bridge dies mid-call: its participants resume on other bridges.
    let busiest = eventually("a bridge carrying calls", Duration::from_secs(30), || async {
        let e = s.endpoints().await;
        Ok(e.into_iter().filter(|(_, n)| n.unwrap_or(0) > 0).max_by_key(|(_, n)| n.unwrap_or(0)))
    })
    .await;
    println!("killing {} with {:?} endpoint(s)", busiest.0, busiest.1);
    assert!(s.kubelet.kill(&busiest.0));
    let killed = Instant::now();
    eventually("participants resumed on other bridges", Duration::from_secs(60), || async {
        let others: i64 =
            s.endpoints().await.iter().filter(|(n, _)| *n != busiest.0).filter_map(|(_, e)| *e).sum();
        Ok((others >= 16).then_some(()))
    })
    .await;
    println!("all 16 endpoints back on other bridges {:.1} s after the kill", killed.elapsed().as_secs_f64());

    // Load down: the heavy rooms leave; the pool drains bridge after bridge back to min, moving
    // the light room off each draining bridge at its deadline.
    let report = heavy.stop();
    assert_no_drops("heavy (through a bridge crash)", &report);
    let down_from = Instant::now();
    s.wait_bridges(1, Duration::from_secs(240)).await;
    println!(
        "time to scale down 4 -> 1 bridges after the load fell (3 drains, 15 s window each): {:.1} s",
        down_from.elapsed().as_secs_f64()
    );
    // The light room kept going through every drain.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = light.stop();
    assert_no_drops("light (through the drains)", &report);

    // No bridge was stopped with calls on it.
    let stopped = s.kubelet.stopped();
    println!("bridges removed, with the endpoints they still carried: {stopped:?}");
    assert_eq!(stopped.len(), 3, "three bridges removed");
    for (pod, endpoints) in &stopped {
        assert_eq!(*endpoints, Some(0), "{pod} was removed with calls on it");
    }
    let pool = s.pool().await.unwrap();
    let st = pool.status.unwrap();
    assert_eq!(st.desired_replicas, 1);
    assert!(st.last_scale.is_some_and(|d| d.to == 1 && !d.reason.is_empty()));
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        "autoscale",
        "-o",
        "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
    ]);
    for reason in ["ScaledUp", "ScaledDown", "Draining", "ScalingDecision"] {
        assert!(events.lines().any(|l| l == reason), "a {reason} Event was published:\n{events}");
    }
}

#[tokio::test]
#[ignore = "cluster tier: run via e2e/cluster/with-cluster.sh (see .ci/run)"]
async fn a_new_bridge_template_rolls_out_one_drained_bridge_at_a_time() {
    let s = Stack::start("rollout", "{enabled: false, drainTimeoutSeconds: 10}", 2).await;
    s.wait_bridges(2, Duration::from_secs(90)).await;
    let calls = Loadgen::start("rollout", s.signaling_port, 6, 2);
    wait_load(&s, 6, Duration::from_secs(60)).await;
    let revision = |p: &Pod| p.labels().get("controller-revision-hash").cloned().unwrap_or_default();
    let old: Vec<String> = s.bridge_pods().await.unwrap().iter().map(revision).collect();

    // A template change (here the log level) rolls out by the operator, not the StatefulSet.
    let start = Instant::now();
    kubectl_ok(&[
        "patch",
        "-n",
        "rollout",
        "bridgepool/load",
        "--type=merge",
        "-p",
        r#"{"spec":{"bridge":{"logLevel":"debug"}}}"#,
    ]);
    eventually("every bridge replaced by the new template", Duration::from_secs(180), || async {
        let now = s.bridge_pods().await?;
        Ok((now.len() == 2 && now.iter().all(|p| !old.contains(&revision(p)))).then_some(()))
    })
    .await;
    s.wait_bridges(2, Duration::from_secs(60)).await;
    println!(
        "rolled 2 bridges carrying 6 endpoints to a new template in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    wait_load(&s, 6, Duration::from_secs(60)).await;
    let report = calls.stop();
    assert_no_drops("during the rollout", &report);
    let stopped = s.kubelet.stopped();
    println!("bridges replaced, with the endpoints they still carried: {stopped:?}");
    assert_eq!(stopped.len(), 2);
    for (pod, endpoints) in &stopped {
        assert_eq!(*endpoints, Some(0), "{pod} was replaced with calls on it");
    }
    let events = kubectl_ok(&[
        "get",
        "events",
        "-n",
        "rollout",
        "--field-selector",
        "reason=Replacing",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(events.contains("drained"), "{events}");
}
