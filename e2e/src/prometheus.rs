//! A real Prometheus server for the cluster tier: the pinned build of `ops/install-prometheus.sh`
//! (Prometheus 3.16.0 from its Go module, cached under `${CONVENE_CACHE:-~/.cache/convene}/ops/bin`)
//! on a free port of 127.0.0.1 with a temporary TSDB under the cluster's directory, scraping the
//! static targets a test gives it (with the target labels the chart's monitors set) and
//! evaluating the chart's alert rules, or a copy of them with shorter windows
//! ([`scaled_rules`]). Its HTTP API answers the test: [`Prometheus::query`],
//! [`Prometheus::alerts`].

use crate::{Process, cluster_dir, free_port, http_get, repo};
use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The chart's alert rules, the file the PrometheusRule includes.
pub fn rules_file() -> PathBuf {
    repo().join("charts/convene/files/alerts.yaml")
}

/// The `prometheus` binary: `$CONVENE_PROMETHEUS_BIN`, or the one `ops/install-prometheus.sh`
/// built (it builds only when the cache lacks the pinned version; a lock serialises builds).
pub fn binary() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("CONVENE_PROMETHEUS_BIN") {
        return Ok(PathBuf::from(p));
    }
    Ok(bin_dir()?.join("prometheus"))
}

/// The pinned `kube-state-metrics` that `ops/install-prometheus.sh` builds beside Prometheus.
pub fn kube_state_metrics_binary() -> Result<PathBuf> {
    Ok(bin_dir()?.join("kube-state-metrics"))
}

fn bin_dir() -> Result<PathBuf> {
    let out = Command::new(repo().join("ops/install-prometheus.sh"))
        .arg("--no-selftest")
        .current_dir(repo())
        .stderr(Stdio::inherit())
        .output()
        .context("running ops/install-prometheus.sh")?;
    if !out.status.success() {
        bail!("ops/install-prometheus.sh failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout.lines().last().ok_or_else(|| anyhow!("install-prometheus.sh printed no bin dir"))?;
    Ok(Path::new(dir.trim()).to_path_buf())
}

/// A Prometheus duration (`90s`, `5m`, `1h30m`, `500ms`) in milliseconds.
pub fn parse_duration(s: &str) -> Option<u64> {
    let (mut total, mut rest) = (0u64, s.trim());
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            _ => return None,
        };
        total += n * ms;
        rest = &rest[unit..];
    }
    Some(total)
}

/// Milliseconds as a Prometheus duration.
pub fn format_duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) { format!("{}s", ms / 1000) } else { format!("{ms}ms") }
}

/// `expr` with every range and subquery window (`[2m]`, `[30m:1m]`) divided by `scale`.
pub fn scale_ranges(expr: &str, scale: u64) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        let Some(close) = rest.find(']') else { break };
        let inner = &rest[..close];
        let parts: Vec<&str> = inner.split(':').collect();
        let scaled: Option<Vec<String>> = parts
            .iter()
            .map(|p| {
                if p.is_empty() {
                    Some(String::new())
                } else {
                    parse_duration(p).map(|ms| format_duration((ms / scale).max(1)))
                }
            })
            .collect();
        match scaled {
            Some(s) if parts.len() <= 2 => out.push_str(&s.join(":")),
            _ => out.push_str(inner),
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// The chart's alert rules with every `for` window and every range window in the expressions
/// divided by `scale`, so a test sees them fire and resolve in seconds, not minutes. Returns the
/// rule file (as JSON, which Prometheus reads as YAML) and, per alert, what was scaled
/// (`ConveneBridgePoolNoReadyBridge: for 1m -> 6s`).
pub fn scaled_rules(scale: u64) -> Result<(Value, Vec<String>)> {
    let text = std::fs::read_to_string(rules_file())?;
    let mut rules: Value = serde_saphyr::from_str(&text).context("alerts.yaml is YAML")?;
    let mut changes = vec![];
    let groups = rules["groups"].as_array_mut().ok_or_else(|| anyhow!("no groups"))?;
    for group in groups {
        for rule in group["rules"].as_array_mut().ok_or_else(|| anyhow!("a group without rules"))? {
            let name = rule["alert"].as_str().or(rule["record"].as_str()).unwrap_or("?").to_string();
            let mut what = vec![];
            for key in ["for", "keep_firing_for"] {
                if let Some(d) = rule[key].as_str().and_then(parse_duration) {
                    let scaled = format_duration((d / scale).max(1));
                    what.push(format!("{key} {} -> {scaled}", rule[key].as_str().unwrap_or_default()));
                    rule[key] = json!(scaled);
                }
            }
            let expr = rule["expr"].as_str().unwrap_or_default().to_string();
            let scaled = scale_ranges(&expr, scale);
            if scaled != expr {
                what.push("range windows / ".to_string() + &scale.to_string());
                rule["expr"] = json!(scaled);
            }
            if !what.is_empty() {
                changes.push(format!("{name}: {}", what.join(", ")));
            }
        }
    }
    Ok((rules, changes))
}

/// One static scrape target: `host:port` and its target labels.
pub struct Target {
    pub address: String,
    pub labels: BTreeMap<String, String>,
}

impl Target {
    pub fn new(address: impl Into<String>, labels: &[(&str, &str)]) -> Target {
        Target {
            address: address.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }
}

/// A scrape job of static targets (path `/metrics`, plain HTTP).
pub struct Job {
    pub name: String,
    /// Keep the labels the target exports (the operator's per-pool gauges carry their pool's
    /// `namespace`), as the chart's operator ServiceMonitor does.
    pub honor_labels: bool,
    pub targets: Vec<Target>,
}

impl Job {
    /// Its `scrape_configs` entry.
    pub fn config(&self) -> Value {
        json!({
            "job_name": self.name,
            "honor_labels": self.honor_labels,
            "static_configs": self.targets.iter().map(|t| json!({
                "targets": [t.address],
                "labels": t.labels,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The annotation-scrape job of `ops/prometheus/prometheus-convene.yml` (kubernetes_sd pods,
/// its relabeling to the monitors' target labels) as Prometheus outside the cluster runs it:
/// through `kubeconfig`, pods of `namespaces` only, and only the targets whose `component`
/// label is one of `components` (the cluster tier's signaling pod, for one, has no process).
pub fn annotation_job(
    name: &str,
    kubeconfig: &Path,
    namespaces: &[&str],
    components: &[&str],
) -> Result<Value> {
    let text = std::fs::read_to_string(repo().join("ops/prometheus/prometheus-convene.yml"))?;
    let config: Value = serde_saphyr::from_str(&text).context("prometheus-convene.yml is YAML")?;
    let mut job = config["scrape_configs"][0].clone();
    job["job_name"] = json!(name);
    job["kubernetes_sd_configs"] = json!([{
        "role": "pod",
        "kubeconfig_file": kubeconfig,
        "namespaces": {"names": namespaces},
    }]);
    let relabel = job["relabel_configs"].as_array_mut().ok_or_else(|| anyhow!("no relabel_configs"))?;
    relabel.push(json!({
        "source_labels": ["component"],
        "regex": components.join("|"),
        "action": "keep",
    }));
    Ok(job)
}

/// An alert as `/api/v1/alerts` lists it (pending or firing).
#[derive(Debug, Clone)]
pub struct Alert {
    pub name: String,
    pub state: String,
    pub labels: BTreeMap<String, String>,
}

/// A running Prometheus, killed when dropped (its TSDB stays under the cluster's directory for
/// a post-mortem, removed on the next start).
pub struct Prometheus {
    _process: Process,
    pub port: u16,
    pub dir: PathBuf,
}

/// Wait up to 30 s until `check` passes, failing early if `process` (`what`, logging to `log`
/// under the cluster dir) exits.
async fn ready<F, Fut>(process: &mut Process, what: &str, log: &str, check: F) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(());
        }
        if !matches!(process.0.try_wait(), Ok(None)) {
            bail!("{what} exited (see {log})");
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("{what} not ready within 30 s (see {log})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// kube-state-metrics against the test cluster's API server, serving the `kube_*` series of
/// `namespaces` on a free port of 127.0.0.1 (the dashboards' and kubernetes alerts' inputs).
pub struct KubeStateMetrics {
    _process: Process,
    pub port: u16,
}

impl KubeStateMetrics {
    pub async fn start(kubeconfig: &Path, namespaces: &[&str]) -> Result<KubeStateMetrics> {
        let bin = kube_state_metrics_binary()?;
        let (port, telemetry) = (free_port(), free_port());
        let log = std::fs::File::create(cluster_dir().join("logs/kube-state-metrics.log"))?;
        let child = Command::new(&bin)
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .args(["--telemetry-host=127.0.0.1", &format!("--telemetry-port={telemetry}")])
            .arg("--resources=statefulsets,pods")
            .arg(format!("--namespaces={}", namespaces.join(",")))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut ksm = KubeStateMetrics { _process: Process(child), port };
        let serves = || async {
            http_get(port, "/metrics").await.is_ok_and(|m| m.contains("kube_statefulset_replicas"))
        };
        ready(&mut ksm._process, "kube-state-metrics", "logs/kube-state-metrics.log", serves).await?;
        Ok(ksm)
    }
}

impl Prometheus {
    /// Start Prometheus `name` scraping `jobs` (`scrape_configs` entries) every `interval` and
    /// evaluating `rules` (a rule file's content, written under its directory) every
    /// `interval`; waits until it is ready.
    pub async fn start(name: &str, interval: Duration, rules: &Value, jobs: &[Value]) -> Result<Prometheus> {
        let bin = binary()?;
        let dir = cluster_dir().join(format!("prometheus-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let rules_path = dir.join("rules.yaml");
        std::fs::write(&rules_path, serde_json::to_string_pretty(rules)?)?;
        let every = format_duration(interval.as_millis() as u64);
        let config = json!({
            "global": {"scrape_interval": every, "scrape_timeout": every, "evaluation_interval": every},
            "rule_files": [rules_path],
            "scrape_configs": jobs,
        });
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
        let port = free_port();
        let log = std::fs::File::create(cluster_dir().join(format!("logs/prometheus-{name}.log")))?;
        let child = Command::new(&bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut prom = Prometheus { _process: Process(child), port, dir };
        let log = format!("logs/prometheus-{name}.log");
        ready(&mut prom._process, "prometheus", &log, || async { http_get(port, "/-/ready").await.is_ok() })
            .await?;
        Ok(prom)
    }

    /// An instant query: the `data.result` vector.
    pub async fn query(&self, q: &str) -> Result<Vec<Value>> {
        let body = http_get(self.port, &format!("/api/v1/query?query={}", encode(q))).await?;
        let v: Value = serde_json::from_str(&body)?;
        if v["status"] != "success" {
            bail!("query {q}: {body}");
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Every pending or firing alert.
    pub async fn alerts(&self) -> Result<Vec<Alert>> {
        let body = http_get(self.port, "/api/v1/alerts").await?;
        let v: Value = serde_json::from_str(&body)?;
        let list = v["data"]["alerts"].as_array().cloned().unwrap_or_default();
        Ok(list
            .into_iter()
            .map(|a| {
                let labels: BTreeMap<String, String> = a["labels"]
                    .as_object()
                    .map(|o| {
                        o.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().into())).collect()
                    })
                    .unwrap_or_default();
                Alert {
                    name: labels.get("alertname").cloned().unwrap_or_default(),
                    state: a["state"].as_str().unwrap_or_default().into(),
                    labels,
                }
            })
            .collect())
    }

    /// The firing alerts named `name`.
    pub async fn firing(&self, name: &str) -> Result<Vec<Alert>> {
        Ok(self.alerts().await?.into_iter().filter(|a| a.name == name && a.state == "firing").collect())
    }
}

/// Percent-encoding of a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_windows_scale() {
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("500ms"), Some(500));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(format_duration(6_000), "6s");
        assert_eq!(format_duration(1_500), "1500ms");
        assert_eq!(
            scale_ranges(r#"increase(a{b=~"[0-9]"}[2m]) + max_over_time(c[30m:1m]) + d[5m:]"#, 10),
            r#"increase(a{b=~"[0-9]"}[12s]) + max_over_time(c[180s:6s]) + d[30s:]"#
        );
    }

    #[test]
    fn the_chart_rules_scale() {
        let (rules, changes) = scaled_rules(10).unwrap();
        let text = rules.to_string();
        assert!(text.contains("\"for\":\"6s\""), "{text}");
        assert!(
            changes.iter().any(|c| c.starts_with("ConveneBridgePoolNoReadyBridge: for 1m -> 6s")),
            "{changes:?}"
        );
        assert!(
            changes.iter().any(|c| c.starts_with("ConveneBridgeLost: range windows / 10")),
            "{changes:?}"
        );
    }

    #[test]
    fn the_annotation_job_reads_the_shipped_config() {
        let job = annotation_job("bridges", Path::new("/k"), &["ns"], &["bridge"]).unwrap();
        assert_eq!(job["kubernetes_sd_configs"][0]["namespaces"]["names"][0], "ns");
        assert_eq!(job["honor_labels"], true);
        let relabel = job["relabel_configs"].as_array().unwrap();
        assert_eq!(relabel.last().unwrap()["regex"], "bridge");
        assert!(relabel.iter().any(|r| r["target_label"] == "pool"));
    }
}
