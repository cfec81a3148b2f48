//! Benchmark, not a timed test: 100 Shards, each with a 2-bridge BridgePool on kwok nodes,
//! reconciled by an operator under the chart's ServiceAccount. It measures the operator given
//! as the baseline (`CONVENE_BASELINE_OPERATOR_BIN`, optional) and this build's, in the same
//! run on the same cluster, and prints each figure with the ratio to the baseline. Run it with
//! `e2e/cluster/bench-scale.sh [baseline git rev]`.
//!
//! Figures: creation → Ready (p50, p99), reconciles per object while building up, the
//! operator's RSS at steady state, API requests per minute at steady state (from the API
//! server's `apiserver_request_total`, less the cluster's own background rate measured
//! before), and reconciles per minute with autoscaling on (bridges are kwok pods: their load is
//! unknown and steady, so nothing changes).

use convene_e2e::*;
use convene_operator::crd::{BridgePool, Shard};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::Api;
use kube::api::ListParams;
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const NS: &str = "bench";

fn shards() -> usize {
    std::env::var("CONVENE_BENCH_SHARDS").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}

/// Seconds of each steady-state sample.
fn window() -> Duration {
    Duration::from_secs(std::env::var("CONVENE_BENCH_WINDOW").ok().and_then(|v| v.parse().ok()).unwrap_or(60))
}

/// One node per bridge (bridges use host ports), addresses 127.1.x.y; created in one apply.
fn add_nodes(n: usize) {
    let mut docs = String::new();
    for i in 0..n {
        let ip = format!("127.1.{}.{}", i / 250, 2 + i % 250);
        docs.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata:\n  name: bench-{i}\n  annotations: {{kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: \"0\"}}\n  labels: {{kubernetes.io/hostname: bench-{i}, kubernetes.io/os: linux, type: kwok}}\nstatus:\n  addresses: [{{type: InternalIP, address: \"{ip}\"}}]\n  capacity: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}\n  allocatable: {{cpu: \"32\", memory: 256Gi, pods: \"110\"}}\n"
        ));
    }
    let out = kubectl(&["apply", "-f", "-"], Some(&docs));
    assert!(out.status.success(), "nodes: {}", String::from_utf8_lossy(&out.stderr));
    kubectl_ok(&["wait", "--for=condition=Ready", "node", "-l", "type=kwok", "--timeout=180s"]);
}

fn manifests(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: convene.dev/v1alpha1\nkind: Shard\nmetadata: {{name: s{i}}}\nspec: {{domain: s{i}.meet.localhost}}\n---\napiVersion: convene.dev/v1alpha1\nkind: BridgePool\nmetadata: {{name: s{i}}}\nspec:\n  shardRef: {{name: s{i}}}\n  replicas: 2\n  publicAddress: {{source: NodeInternalIP}}\n"
            )
        })
        .collect()
}

async fn client_shards(api: &Api<Shard>) -> Vec<Shard> {
    api.list(&ListParams::default()).await.map(|l| l.items).unwrap_or_default()
}

/// Per Shard: seconds from its creation to the creation of the last StatefulSet run for it
/// (signaling's and its pool's), from creation timestamps (whole seconds).
async fn children_created(shards: &[Shard]) -> Vec<f64> {
    let sets: Vec<StatefulSet> = Api::<StatefulSet>::namespaced(client().await, NS)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let created = |m: &kube::api::ObjectMeta| m.creation_timestamp.as_ref().map(|t| t.0.as_second() as f64);
    shards
        .iter()
        .filter_map(|s| {
            let name = s.metadata.name.as_deref()?;
            let start = created(&s.metadata)?;
            sets.iter()
                .filter(|x| {
                    x.metadata.labels.as_ref().and_then(|l| l.get("convene.dev/shard")).map(String::as_str)
                        == Some(name)
                })
                .filter_map(|x| created(&x.metadata))
                .reduce(f64::max)
                .map(|last| last - start)
        })
        .collect()
}

/// Where Ready's time goes after the operator: for every pod of the Shards, its creation
/// (after the Shard's), its scheduling and its Ready, from the API's timestamps (1 s
/// resolution). Returns p99 of (Shard created → pod created, pod created → scheduled,
/// scheduled → Ready, Ready → that status written).
async fn pod_stages(shards: &[Shard]) -> [f64; 4] {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Vec<Pod> = Api::<Pod>::namespaced(client().await, NS)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let shard_created: HashMap<&str, f64> = shards
        .iter()
        .filter_map(|s| {
            Some((s.metadata.name.as_deref()?, s.metadata.creation_timestamp.as_ref()?.0.as_second() as f64))
        })
        .collect();
    let at = |p: &Pod, ty: &str| {
        let c =
            p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == ty && c.status == "True")?;
        Some(c.last_transition_time.as_ref()?.0.as_second() as f64)
    };
    // kwok stamps Ready when it decides; the API server stamps the write that carried it.
    let written = |p: &Pod| {
        p.metadata
            .managed_fields
            .as_ref()?
            .iter()
            .filter(|m| m.subresource.as_deref() == Some("status"))
            .filter_map(|m| m.time.as_ref().map(|t| t.0.as_second() as f64))
            .reduce(f64::max)
    };
    let mut stages: [Vec<f64>; 4] = Default::default();
    for p in &pods {
        let shard = p.metadata.labels.as_ref().and_then(|l| l.get("convene.dev/shard"));
        let (Some(start), Some(created)) = (
            shard.and_then(|s| shard_created.get(s.as_str())),
            p.metadata.creation_timestamp.as_ref().map(|t| t.0.as_second() as f64),
        ) else {
            continue;
        };
        let (Some(scheduled), Some(ready)) = (at(p, "PodScheduled"), at(p, "Ready")) else { continue };
        let written = written(p).unwrap_or(ready);
        let steps = [created - start, scheduled - created, ready - scheduled, written - ready];
        for (v, x) in stages.iter_mut().zip(steps) {
            v.push(x);
        }
    }
    stages.map(|mut v| {
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.99)
    })
}

type Seen = (std::sync::Arc<std::sync::Mutex<HashMap<String, f64>>>, tokio::task::JoinHandle<()>);

/// Watch `api` in the background: the first time `key` names an object, the seconds since
/// `started` are recorded under that name.
fn first_seen<K>(api: Api<K>, started: Instant, key: impl Fn(&K) -> Option<String> + Send + 'static) -> Seen
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    use futures::StreamExt;
    use kube::runtime::{WatchStreamExt, watcher};
    let seen: std::sync::Arc<std::sync::Mutex<HashMap<String, f64>>> = Default::default();
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let mut events =
            std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff().applied_objects());
        while let Some(obj) = events.next().await {
            if let Ok(obj) = obj
                && let Some(k) = key(&obj)
            {
                out.lock().unwrap().entry(k).or_insert(started.elapsed().as_secs_f64());
            }
        }
    });
    (seen, task)
}

/// All requests the API server has served, summed over verbs and resources.
fn apiserver_requests() -> f64 {
    let text = kubectl_ok(&["get", "--raw", "/metrics"]);
    metric_sum(&text, "apiserver_request_total")
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[derive(Debug, Default)]
struct Figures {
    ready: usize,
    ready_p50: f64,
    ready_p99: f64,
    /// Seconds after `kubectl apply` began: the last Shard created, every Shard Ready.
    last_created: f64,
    all_ready: f64,
    /// The operator's share of Ready: Shard created → its last StatefulSet created.
    children_p99: f64,
    /// The cluster's share, per pod: Shard created → pod created, → scheduled, → Ready.
    pod_created_p99: f64,
    pod_scheduled_p99: f64,
    pod_ready_p99: f64,
    /// Pod Ready (kwok's timestamp) → that status written (the API server's managedFields time).
    pod_ready_written_p99: f64,
    /// Seconds after the apply: all of a Shard's StatefulSets report ready replicas; its pool's
    /// status shows them.
    sets_ready_p99: f64,
    pool_ready_p99: f64,
    reconciles_per_object: f64,
    rss_mib: f64,
    requests_per_min: f64,
    reconciles_per_min: f64,
    autoscaling_reconciles_per_min: f64,
}

/// API requests per minute the cluster makes with no operator running.
async fn background_rate() -> f64 {
    let before = apiserver_requests();
    tokio::time::sleep(window()).await;
    (apiserver_requests() - before) * 60.0 / window().as_secs_f64()
}

async fn measure(label: &str, bin: PathBuf, chart: &ChartIdentity, background: f64) -> Figures {
    let n = shards();
    let _ns = fresh_namespace(NS);
    let op =
        Operator::start_binary(&bin, chart, None, label, &format!("bench-{label}"), 15).expect("operator");
    let api: Api<Shard> = Api::namespaced(client().await, NS);
    eventually("the operator leads", Duration::from_secs(60), || async {
        Ok((op.counter("convene_operator_leader", "").await? >= 1.0).then_some(()))
    })
    .await;

    // Build-up: apply everything at once, watch for each Shard's Ready. Watches, not polled
    // lists: listing 300 StatefulSets four times a second took CPU from the API server whose
    // latency is being measured. Also timed: when each StatefulSet first reported all replicas
    // ready (the controller-manager's share) and each pool's status showed them (the
    // operator's copy).
    let started = Instant::now();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs_f64();
    let c = client().await;
    let ready_at = first_seen(api.clone(), started, |s: &Shard| {
        let ready = s
            .status
            .as_ref()
            .and_then(|st| condition(&st.conditions, "Ready"))
            .is_some_and(|c| c.status == "True");
        ready.then(|| s.metadata.name.clone().unwrap_or_default())
    });
    let set_ready_at = first_seen(Api::<StatefulSet>::namespaced(c.clone(), NS), started, |s| {
        let want = s.spec.as_ref().and_then(|sp| sp.replicas).unwrap_or(1);
        let shard = s.metadata.labels.as_ref()?.get("convene.dev/shard")?;
        let ready = s.status.as_ref().and_then(|st| st.ready_replicas).unwrap_or(0) >= want;
        ready.then(|| format!("{shard}/{}", s.metadata.name.clone().unwrap_or_default()))
    });
    let pool_ready_at = first_seen(Api::<BridgePool>::namespaced(c, NS), started, |p| {
        let ready = p.status.as_ref().is_some_and(|st| st.ready_replicas >= p.spec.replicas);
        ready.then(|| p.spec.shard_ref.name.clone())
    });
    tokio::time::sleep(Duration::from_millis(500)).await; // the watches have listed
    // kubectl runs on a blocking thread: the watches on this (single-threaded) runtime must
    // keep stamping times while it sends the objects. (Run inline, it froze them until the
    // whole apply returned, which once read as ~20 s of Ready latency per Shard.)
    let manifests = manifests(n);
    let out = tokio::task::spawn_blocking(move || kubectl(&["apply", "-n", NS, "-f", "-"], Some(&manifests)))
        .await
        .expect("kubectl apply ran");
    assert!(out.status.success(), "apply: {}", String::from_utf8_lossy(&out.stderr));
    while ready_at.0.lock().unwrap().len() < n && started.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stop watching before the steady-state window counts requests.
    let [ready_at, set_ready_at, pool_ready_at] =
        [ready_at, set_ready_at, pool_ready_at].map(|(seen, task)| {
            task.abort();
            seen.lock().unwrap().clone()
        });
    // Latency per Shard counts from its own creation (the API's timestamp, whole seconds, so
    // up to 1 s too long), not from the start of `kubectl apply`: kubectl sends 200 objects one
    // by one under its client-side rate limit, so the last Shard exists ~20 s after the first.
    let listed = client_shards(&api).await;
    let created: HashMap<String, f64> = listed
        .iter()
        .filter_map(|s| {
            let t = s.metadata.creation_timestamp.as_ref()?.0.as_second() as f64;
            Some((s.metadata.name.clone()?, t - started_unix))
        })
        .collect();
    let since_created = |shard: &str, t: f64| created.get(shard).map(|c| t - c);
    let mut times: Vec<f64> = ready_at.iter().filter_map(|(k, t)| since_created(k, *t)).collect();
    times.sort_by(f64::total_cmp);
    let all_ready = ready_at.values().copied().fold(0.0, f64::max);
    let last_created = created.values().copied().fold(0.0, f64::max);
    let mut sets_ready: HashMap<&str, f64> = HashMap::new();
    for (key, t) in &set_ready_at {
        let shard = key.split('/').next().unwrap_or_default();
        let e = sets_ready.entry(shard).or_insert(0.0);
        *e = e.max(*t);
    }
    let p99_of = |v: Vec<f64>| {
        let mut v = v;
        v.sort_by(f64::total_cmp);
        percentile(&v, 0.99)
    };
    let sets_ready_p99 = p99_of(sets_ready.iter().filter_map(|(k, t)| since_created(k, *t)).collect());
    let pool_ready_p99 = p99_of(pool_ready_at.iter().filter_map(|(k, t)| since_created(k, *t)).collect());
    let build_reconciles = op.counter("convene_operator_reconciles_total", "").await.unwrap_or(0.0);
    let children = children_created(&listed).await;
    let [pod_created_p99, pod_scheduled_p99, pod_ready_p99, pod_ready_written_p99] =
        pod_stages(&listed).await;

    // Steady state: let the last writes settle, then count for one window.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let (req0, rec0) =
        (apiserver_requests(), op.counter("convene_operator_reconciles_total", "").await.unwrap_or(0.0));
    tokio::time::sleep(window()).await;
    let (req1, rec1) =
        (apiserver_requests(), op.counter("convene_operator_reconciles_total", "").await.unwrap_or(0.0));
    let per_min = 60.0 / window().as_secs_f64();
    let rss = rss_mib(op.pid());

    // Autoscaling on for every pool (2..4 bridges); bridges' load stays unknown and steady.
    for i in 0..n {
        let patch = r#"{"spec":{"autoscaling":{"enabled":true,"minReplicas":2,"maxReplicas":4}}}"#;
        let _ =
            kubectl(&["patch", "bridgepool", &format!("s{i}"), "-n", NS, "--type=merge", "-p", patch], None);
    }
    tokio::time::sleep(Duration::from_secs(20)).await;
    let a0 = op.counter("convene_operator_reconciles_total", "kind=\"BridgePool\"").await.unwrap_or(0.0);
    tokio::time::sleep(window()).await;
    let a1 = op.counter("convene_operator_reconciles_total", "kind=\"BridgePool\"").await.unwrap_or(0.0);

    delete_convene_resources(NS);
    drop(op);
    Figures {
        ready: times.len(),
        ready_p50: percentile(&times, 0.5),
        ready_p99: percentile(&times, 0.99),
        last_created,
        all_ready,
        children_p99: percentile(&children, 0.99),
        pod_created_p99,
        pod_scheduled_p99,
        pod_ready_p99,
        pod_ready_written_p99,
        sets_ready_p99,
        pool_ready_p99,
        reconciles_per_object: build_reconciles / (2 * n) as f64,
        rss_mib: rss,
        requests_per_min: ((req1 - req0) * per_min - background).max(0.0),
        reconciles_per_min: (rec1 - rec0) * per_min,
        autoscaling_reconciles_per_min: (a1 - a0) * per_min,
    }
}

#[tokio::test]
#[ignore = "benchmark: e2e/cluster/bench-scale.sh"]
async fn hundred_shards() {
    let n = shards();
    install_crds();
    add_nodes(2 * n);
    let _ns = fresh_namespace("bench-system");
    let chart = install_chart_rbac("bench", "bench-system", &[]);
    let background = background_rate().await;
    println!(
        "{n} Shards with 2-bridge pools on {} kwok nodes; background {background:.0} API requests/min",
        2 * n
    );

    let mut runs: Vec<(&str, Figures)> = vec![];
    if let Ok(bin) = std::env::var("CONVENE_BASELINE_OPERATOR_BIN") {
        // The baseline read its pools' status back with a GET the chart no longer grants.
        let extra = format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: bench-baseline}}\nrules:\n- apiGroups: [convene.dev]\n  resources: [bridgepools/status]\n  verbs: [get]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {{name: bench-baseline}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: bench-baseline}}\nsubjects: [{{kind: ServiceAccount, name: {}, namespace: {}}}]\n",
            chart.service_account, chart.namespace
        );
        assert!(kubectl(&["apply", "-f", "-"], Some(&extra)).status.success(), "baseline's extra rights");
        runs.push(("baseline", measure("baseline", PathBuf::from(bin), &chart, background).await));
    }
    runs.push(("current", measure("current", operator_binary(), &chart, background).await));

    type Figure = fn(&Figures) -> f64;
    let rows: [(&str, Figure); 16] = [
        ("Ready p50 (s after the Shard's creation)", |f| f.ready_p50),
        ("Ready p99 (s after the Shard's creation)", |f| f.ready_p99),
        ("  last Shard created (s after apply began)", |f| f.last_created),
        ("  every Shard Ready (s after apply began)", |f| f.all_ready),
        ("children created p99 (s, 1 s resolution)", |f| f.children_p99),
        ("  pods created p99 (s after the Shard)", |f| f.pod_created_p99),
        ("  pod created → scheduled p99 (s)", |f| f.pod_scheduled_p99),
        ("  pod scheduled → Ready p99 (s)", |f| f.pod_ready_p99),
        ("  pod Ready → status written p99 (s)", |f| f.pod_ready_written_p99),
        ("  StatefulSets all ready p99 (s after the Shard)", |f| f.sets_ready_p99),
        ("  pool status ready p99 (s after the Shard)", |f| f.pool_ready_p99),
        ("reconciles per object, build-up", |f| f.reconciles_per_object),
        ("RSS at steady state (MiB)", |f| f.rss_mib),
        ("API requests/min, steady", |f| f.requests_per_min),
        ("reconciles/min, steady", |f| f.reconciles_per_min),
        ("BridgePool reconciles/min, autoscaling", |f| f.autoscaling_reconciles_per_min),
    ];
    for (label, f) in &runs {
        println!("{label}: {} of {n} Shards Ready", f.ready);
    }
    println!("{:<42}{}", "figure", runs.iter().map(|(l, _)| format!("{l:>12}")).collect::<String>());
    for (name, get) in rows {
        let mut line = format!("{name:<42}");
        for (_, f) in &runs {
            line.push_str(&format!("{:>12.1}", get(f)));
        }
        if let [(_, base), (_, cur)] = &runs[..] {
            let (b, c) = (get(base), get(cur));
            line.push_str(&format!("   current/baseline {:.3}", if b > 0.0 { c / b } else { f64::NAN }));
        }
        println!("{line}");
    }
    let cur = &runs.last().expect("current ran").1;
    assert_eq!(cur.ready, n, "every Shard became Ready");
}
