//! Helpers for the cluster-tier tests: the cluster started by `e2e/cluster/with-cluster.sh`
//! (`KUBECONFIG`, `CONVENE_CLUSTER_DIR`), kubectl as an admin runs it, fake nodes, and the
//! operator binary as a child process.

pub mod client;
pub mod kubelet;
pub mod loadgen;
pub mod prometheus;
pub mod stack;

use convene_operator::crd::{BridgePool, RecorderPool, Shard, TurnPool};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use std::fmt::Debug;

use anyhow::{Context as _, Result, bail};
use kube::Client;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Root of the repository.
pub fn repo() -> PathBuf {
    // Read at run time (cargo sets it for tests): a target dir shared by several checkouts can
    // hold this crate built in another one, with that checkout's path compiled in.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    let root = dir.ancestors().find(|d| d.join("Cargo.lock").is_file());
    root.expect("tests run inside the repo").to_path_buf()
}

/// The state folder of the running test cluster.
pub fn cluster_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CONVENE_CLUSTER_DIR")
            .expect("CONVENE_CLUSTER_DIR is not set: run these tests through e2e/cluster/with-cluster.sh"),
    )
}

pub async fn client() -> Client {
    Client::try_default().await.expect("KUBECONFIG points at the test cluster")
}

/// Run kubectl (from the cluster tier's PATH) with `stdin` as input.
pub fn kubectl(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).current_dir(repo());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("kubectl is on PATH (with-cluster.sh puts it there)");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().expect("piped").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl ran")
}

/// kubectl that must succeed; returns stdout.
pub fn kubectl_ok(args: &[&str]) -> String {
    let out = kubectl(args, None);
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Install the CRDs as an admin would, and wait until they are served.
pub fn install_crds() {
    kubectl_ok(&["apply", "--server-side", "-f", "crds/"]);
    kubectl_ok(&["wait", "--for=condition=Established", "--timeout=60s", "-f", "crds/"]);
}

/// A kwok node with `ip` as InternalIP (and optionally an ExternalIP and labels).
pub fn add_node(name: &str, ip: &str, external_ip: Option<&str>, labels: &[(&str, &str)]) {
    let script = repo().join("e2e/cluster/add-node.sh");
    let out = Command::new(&script).arg(cluster_dir()).arg(name).arg(ip).output().expect("add-node.sh runs");
    assert!(out.status.success(), "add-node {name}: {}", String::from_utf8_lossy(&out.stderr));
    for (k, v) in labels {
        kubectl_ok(&["label", "node", name, "--overwrite", &format!("{k}={v}")]);
    }
    if let Some(ext) = external_ip {
        let patch = serde_json::json!({"status": {"addresses": [
            {"type": "InternalIP", "address": ip},
            {"type": "ExternalIP", "address": ext},
            {"type": "Hostname", "address": name},
        ]}});
        kubectl_ok(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ]);
    }
}

/// Create a fresh namespace (deleting a leftover one first). Hold the guard until the test
/// ends: a test that fails never reaches its own cleanup.
pub fn fresh_namespace(ns: &str) -> TestNamespace {
    delete_convene_resources(ns);
    let _ =
        kubectl(&["delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s"], None);
    kubectl_ok(&["create", "namespace", ns]);
    TestNamespace(ns.into())
}

/// A test's namespace. When the test panics, dropping this removes its StatefulSets and pods at
/// once: left behind, its bridges hold the nodes' host ports and the next test's bridges cannot
/// be placed. (Declare it before the operator, so the operator is gone and recreates nothing.)
#[must_use = "a failing test leaves its pods holding host ports unless the guard is held"]
pub struct TestNamespace(String);

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let ns = &self.0;
            let force = ["--all", "--grace-period=0", "--force", "--wait=false"];
            let _ = kubectl(&[&["delete", "-n", ns, "statefulsets,pods"][..], &force].concat(), None);
        }
    }
}

/// Delete the Convene resources of a namespace first, while the operator still has its Role
/// there (with `watchNamespaces` the Role goes with the namespace, and a BridgePool's finalizer
/// needs the operator), as the README tells admins to.
pub fn delete_convene_resources(ns: &str) {
    let _ = kubectl(
        &[
            "delete",
            "-n",
            ns,
            "shards,bridgepools,turnpools,recorderpools",
            "--all",
            "--ignore-not-found",
            "--wait=true",
            "--timeout=60s",
        ],
        None,
    );
}

/// Delete a namespace and wait until it is gone (its BridgePools' finalizers need a running
/// operator).
pub fn delete_namespace(ns: &str) {
    delete_convene_resources(ns);
    let out =
        kubectl(&["delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s"], None);
    assert!(out.status.success(), "namespace {ns} not deleted: {}", String::from_utf8_lossy(&out.stderr));
}

/// Poll `check` until it returns `Ok(Some(v))` or `timeout` passes; the last error or "not
/// yet" is reported on timeout.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let start = Instant::now();
    let mut last;
    loop {
        match check().await {
            Ok(Some(v)) => return v,
            Ok(None) => last = "condition not met yet".into(),
            Err(e) => last = format!("{e:#}"),
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The shard's bridge-control secret, once the operator has made it.
pub async fn bridge_control_secret(client: &Client, ns: &str, shard: &str) -> String {
    let name = format!("{shard}-bridge-control");
    let secret: k8s_openapi::api::core::v1::Secret =
        eventually("the shard's bridge-control secret", Duration::from_secs(60), || async {
            Ok(kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), ns)
                .get_opt(&name)
                .await?)
        })
        .await;
    let data = secret.data.unwrap_or_default();
    String::from_utf8_lossy(&data.get("secret").expect("a secret key").0).into_owned()
}

/// A `convene-signaling` on 127.0.0.1 with `secret` (a signaling pod's network is not
/// reachable from loopback, so the bridges and recorders the kubelet stand-in runs dial this
/// one), logging to the cluster's `logs/signaling-<ns>.log`. Returns it and its port.
pub fn start_signaling(ns: &str, secret: &str) -> (Process, u16) {
    let port = free_port();
    let log = std::fs::File::create(cluster_dir().join(format!("logs/signaling-{ns}.log"))).expect("log");
    let child = Command::new(workspace_binary("convene-signaling"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env("CONVENE_BRIDGE_SECRET", secret)
        .env("RUST_LOG", "info")
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("convene-signaling starts");
    (Process(child), port)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    // Never one this process handed out before: the kernel gives a just-released port again,
    // and the program it was for may not have bound it yet (two bridges of one stack once got
    // the same TCP port, and the second failed to start).
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
}

/// The operator binary built by `cargo build -p convene-operator`, next to the test binary.
pub fn operator_binary() -> PathBuf {
    if let Ok(p) = std::env::var("CONVENE_OPERATOR_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..");
    dir.join("convene-operator")
}

/// Another binary of the workspace, next to the test binary (target/<profile>/).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps/..").join(name)
}

/// A child process killed (and reaped) when dropped, so a failing test leaves nothing behind.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The identity the Helm chart gives the operator: its ServiceAccount, ClusterRoles, Roles and
/// Lease, applied from `helm template` (nothing else of the chart), and a kubeconfig with a
/// token of that ServiceAccount. The operator then runs with exactly the chart's rights.
#[derive(Clone, Debug)]
pub struct ChartIdentity {
    pub release: String,
    pub namespace: String,
    pub service_account: String,
    pub kubeconfig: PathBuf,
    pub node_reader_role: String,
}

/// A kubeconfig (in the cluster folder) with a fresh token of ServiceAccount `sa` in `namespace`.
pub fn token_kubeconfig(sa: &str, namespace: &str, tag: &str) -> PathBuf {
    let token = kubectl_ok(&["create", "token", sa, "-n", namespace, "--duration=24h"]);
    let server =
        kubectl_ok(&["config", "view", "--raw", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"]);
    let ca = kubectl_ok(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let kubeconfig = cluster_dir().join(format!("kubeconfig-{tag}"));
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: sa\n  context: {{cluster: c, user: sa, namespace: {namespace}}}\ncurrent-context: sa\n",
        token.trim()
    );
    std::fs::write(&kubeconfig, yaml).expect("write kubeconfig");
    kubeconfig
}

/// The chart's `fullname` for a release.
pub fn chart_fullname(release: &str) -> String {
    if release.contains("convene") { release.to_string() } else { format!("{release}-convene") }
}

/// Render the chart's RBAC for `release` in `namespace`, watching `watch` (empty: the whole
/// cluster), and apply it as an admin would.
pub fn install_chart_rbac(release: &str, namespace: &str, watch: &[&str]) -> ChartIdentity {
    let chart = repo().join("charts/convene");
    let mut args = vec![
        "template".to_string(),
        release.to_string(),
        chart.to_string_lossy().into_owned(),
        "-n".into(),
        namespace.into(),
        "--kube-version".into(),
        "1.36.3".into(),
        "--show-only".into(),
        "templates/serviceaccount.yaml".into(),
        "--show-only".into(),
        "templates/rbac.yaml".into(),
    ];
    if !watch.is_empty() {
        args.push("--set".into());
        args.push(format!("watchNamespaces={{{}}}", watch.join(",")));
    }
    let out = Command::new("helm").args(&args).output().expect("helm on PATH");
    assert!(out.status.success(), "helm template: {}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    let applied = kubectl(&["apply", "-f", "-"], Some(&rendered));
    assert!(
        applied.status.success(),
        "applying the chart's RBAC: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let fullname = chart_fullname(release);
    let kubeconfig = token_kubeconfig(&fullname, namespace, release);
    ChartIdentity {
        release: release.into(),
        namespace: namespace.into(),
        service_account: fullname.clone(),
        kubeconfig,
        node_reader_role: format!("{fullname}-bridge-node-reader"),
    }
}

/// Sum of metric `name` over all its label sets in Prometheus text `text`.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    metric_sum_where(text, name, "")
}

/// Sum of metric `name` over the label sets `filter` picks: `""` all, `k="v"` those with label
/// `k` = `v`, a bare `v` those with any label equal to `v`.
pub fn metric_sum_where(text: &str, name: &str, filter: &str) -> f64 {
    let Ok(scrape) = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))) else {
        return 0.0;
    };
    let wanted = |labels: &prometheus_parse::Labels| match filter.split_once('=') {
        _ if filter.is_empty() => true,
        Some((k, v)) => labels.get(k) == Some(v.trim_matches('"')),
        None => labels.values().any(|v| v.as_str() == filter),
    };
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && wanted(&s.labels))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// A running operator process, killed when dropped.
pub struct Operator {
    child: Child,
    pub port: u16,
    pub identity: String,
    pub log: PathBuf,
}

impl Operator {
    /// Start an operator that watches `ns` and elects its leader with `lease` in `ns`, with the
    /// rights the chart gives it when installed with `watchNamespaces: [ns]`.
    pub fn start(ns: &str, identity: &str, lease: &str, lease_seconds: u32) -> Result<Operator> {
        let chart = install_chart_rbac(&format!("op-{ns}"), ns, &[ns]);
        Self::start_as(&chart, Some(ns), identity, lease, lease_seconds)
    }

    /// Start an operator with the chart's identity `chart`, watching `watch` (None: every
    /// namespace), with its Lease in the chart's namespace.
    pub fn start_as(
        chart: &ChartIdentity,
        watch: Option<&str>,
        identity: &str,
        lease: &str,
        lease_seconds: u32,
    ) -> Result<Operator> {
        Self::start_binary(&operator_binary(), chart, watch, identity, lease, lease_seconds)
    }

    /// As [`Operator::start_as`], running the operator binary `bin`.
    pub fn start_binary(
        bin: &Path,
        chart: &ChartIdentity,
        watch: Option<&str>,
        identity: &str,
        lease: &str,
        lease_seconds: u32,
    ) -> Result<Operator> {
        let ns = chart.namespace.as_str();
        let port = free_port();
        let log = cluster_dir().join("logs").join(format!("operator-{ns}-{identity}.log"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        if !bin.exists() {
            bail!("{} is missing: run `cargo build -p convene-operator` first", bin.display());
        }
        let child = Command::new(bin)
            .args(["--watch-namespaces", watch.unwrap_or_default(), "--namespace", ns, "--lease-name", lease])
            .args(["--bridge-node-reader-role", &chart.node_reader_role])
            .env("KUBECONFIG", &chart.kubeconfig)
            .args(["--identity", identity, "--lease-seconds", &lease_seconds.to_string()])
            .args(["--http-addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info,convene_operator=debug,kube_lease_manager=info")
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting convene-operator")?;
        Ok(Operator { child, port, identity: identity.into(), log })
    }

    /// The operator's /metrics text.
    pub async fn metrics(&self) -> Result<String> {
        http_get(self.port, "/metrics").await
    }

    /// Sum of a metric over the label sets `label_filter` picks (see [`metric_sum_where`]),
    /// e.g. `convene_operator_reconciles_total`, `kind="Shard"`.
    pub async fn counter(&self, name: &str, label_filter: &str) -> Result<f64> {
        Ok(metric_sum_where(&self.metrics().await?, name, label_filter))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: the Lease is not released, as when a node dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait: graceful shutdown.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline && self.is_running() {
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// GET `path` from a server on 127.0.0.1 (the operator's own endpoint); the body of a 200.
pub async fn http_get(port: u16, path: &str) -> Result<String> {
    http_get_host("127.0.0.1", port, path).await
}

/// GET `path` from `host:port`; the body of a 200.
pub async fn http_get_host(host: &str, port: u16, path: &str) -> Result<String> {
    use http_body_util::{BodyExt, Empty};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<bytes::Bytes>>();
    let resp = client.get(format!("http://{host}:{port}{path}").parse()?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("GET {path}: {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// A namespaced object, if it exists.
pub async fn get<K>(client: &Client, ns: &str, name: &str) -> Result<Option<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
{
    Ok(Api::<K>::namespaced(client.clone(), ns).get_opt(name).await?)
}

/// The condition of type `t`.
pub fn condition<'a>(conds: &'a [Condition], t: &str) -> Option<&'a Condition> {
    conds.iter().find(|c| c.type_ == t)
}

/// Our resources, by their status conditions.
pub trait Conditioned {
    fn conditions(&self) -> Vec<Condition>;
}

macro_rules! conditioned {
    ($($kind:ty),*) => {$(
        impl Conditioned for $kind {
            fn conditions(&self) -> Vec<Condition> {
                self.status.clone().unwrap_or_default().conditions
            }
        }
    )*};
}
conditioned!(Shard, BridgePool, RecorderPool, TurnPool);
