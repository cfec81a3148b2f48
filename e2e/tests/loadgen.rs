//! `convene-loadgen` against real processes on loopback: `convene-signaling`, two
//! `convene-bridge` and the load generator. Mid-run one bridge is killed (or drained) and the
//! report must show its participants migrated to the other bridge with nobody dropped.
//!
//! Runs in the netns tier of scripts/test.sh (`unshare -n`, loopback only); it needs the
//! workspace binaries built first (`cargo build --workspace`, as scripts/test.sh does):
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test loadgen'

use anyhow::{Context as _, Result, bail};
use convene_e2e::{Process, eventually, free_port, http_get, workspace_binary};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PARTICIPANTS: usize = 6;
const ROOMS: usize = 2;
/// Run length of the load generator; the fault comes after a few seconds of steady media.
const RUN_S: u64 = 20;

fn binary(name: &str) -> PathBuf {
    let bin = workspace_binary(name);
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` first", bin.display());
    bin
}

/// A scratch folder for one test's logs and report.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convene-loadgen-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

struct Bridge {
    id: String,
    http_port: u16,
    process: Option<Process>,
}

/// Signaling and two bridges sharing a fresh secret.
struct Stack {
    dir: PathBuf,
    secret: String,
    sig_port: u16,
    _signaling: Process,
    bridges: Vec<Bridge>,
}

impl Stack {
    async fn start(test: &str, signaling_yaml: Option<&str>) -> Stack {
        let dir = scratch(test);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let secret = format!("e2e-{}-{}", std::process::id(), nanos.as_nanos());
        let sig_port = free_port();
        let mut cmd = Command::new(binary("convene-signaling"));
        cmd.args(["--listen", &format!("127.0.0.1:{sig_port}")]);
        if let Some(yaml) = signaling_yaml {
            let path = dir.join("signaling.yaml");
            std::fs::write(&path, yaml).expect("signaling config");
            cmd.arg("--config").arg(path);
        }
        let signaling = Process(
            cmd.env("CONVENE_BRIDGE_SECRET", &secret)
                .env("RUST_LOG", "info")
                .stdout(log_file(&dir, "signaling"))
                .stderr(log_file(&dir, "signaling.err"))
                .spawn()
                .expect("convene-signaling starts"),
        );
        eventually("signaling /health", Duration::from_secs(20), || async move {
            Ok(http_get(sig_port, "/health").await.ok().map(|_| ()))
        })
        .await;
        let mut stack = Stack { dir, secret, sig_port, _signaling: signaling, bridges: Vec::new() };
        for id in ["bridge-a", "bridge-b"] {
            stack.start_bridge(id);
        }
        eventually("both bridges registered", Duration::from_secs(30), || async move {
            let ready = http_get(sig_port, "/ready").await?;
            Ok(ready.contains("2 bridge(s)").then_some(()))
        })
        .await;
        stack
    }

    fn start_bridge(&mut self, id: &str) {
        let (udp, tcp, http) = (free_port(), free_port(), free_port());
        let process = Process(
            Command::new(binary("convene-bridge"))
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--address-source",
                    "static",
                    "--static-addresses",
                    "127.0.0.1",
                ])
                .args(["--udp-port", &udp.to_string(), "--tcp-port", &tcp.to_string()])
                .args(["--http-port", &http.to_string(), "--bridge-id", id, "--load-interval-s", "1"])
                .args(["--signaling-url", &format!("ws://127.0.0.1:{}/bridge", self.sig_port)])
                .env("CONVENE_BRIDGE_SECRET", &self.secret)
                .env("RUST_LOG", "info,str0m=warn,dimpl=warn,is=warn")
                .stdout(log_file(&self.dir, id))
                .stderr(log_file(&self.dir, &format!("{id}.err")))
                .spawn()
                .expect("convene-bridge starts"),
        );
        self.bridges.push(Bridge { id: id.into(), http_port: http, process: Some(process) });
    }

    /// Start the load generator (it leaves by itself after `RUN_S`).
    fn loadgen(&self) -> (Process, PathBuf) {
        let report = self.dir.join("report.json");
        let p = Process(
            Command::new(binary("convene-loadgen"))
                .args(["--signaling-url", &format!("ws://127.0.0.1:{}/ws", self.sig_port)])
                .args(["--participants", &PARTICIPANTS.to_string(), "--rooms", &ROOMS.to_string()])
                .args(["--duration-s", &RUN_S.to_string(), "--ramp-ms", "50", "--progress-s", "2"])
                .arg("--report")
                .arg(&report)
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(log_file(&self.dir, "loadgen"))
                .spawn()
                .expect("convene-loadgen starts"),
        );
        (p, report)
    }

    /// Endpoints per bridge, from each live bridge's /metrics.
    async fn endpoints(&self) -> Result<Vec<(usize, u64)>> {
        let mut out = Vec::new();
        for (i, b) in self.bridges.iter().enumerate().filter(|(_, b)| b.process.is_some()) {
            let text = http_get(b.http_port, "/metrics").await?;
            let n = metric(&text, "convene_bridge_endpoints").context("no convene_bridge_endpoints")?;
            out.push((i, n as u64));
        }
        Ok(out)
    }

    /// Wait until every participant has an endpoint, give media a few seconds, and return the
    /// index of the bridge hosting the most endpoints (the one to fail).
    async fn steady_victim(&self) -> usize {
        let counts = eventually("all participants allocated", Duration::from_secs(30), || async {
            let e = self.endpoints().await?;
            Ok((e.iter().map(|(_, n)| n).sum::<u64>() == PARTICIPANTS as u64).then_some(e))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        counts.iter().max_by_key(|(_, n)| *n).map(|(i, _)| *i).expect("two bridges")
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["loadgen", "signaling", "bridge-a", "bridge-b"] {
            s += &format!("\n--- {name} (tail) ---\n{}", tail(&self.dir.join(format!("{name}.log")), 40));
        }
        s
    }
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// POST with the bridge secret (the e2e crate's client only GETs).
fn post(port: u16, path: &str, secret: &str) -> Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {secret}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    if !resp.starts_with("HTTP/1.1 200") {
        bail!("POST {path}: {}", resp.lines().next().unwrap_or(""));
    }
    Ok(resp)
}

/// Wait for the load generator to finish; its exit status and report.
fn finish(mut lg: Process, report: &Path, stack: &Stack) -> (Option<i32>, Value) {
    let deadline = Instant::now() + Duration::from_secs(RUN_S + 30);
    let status = loop {
        match lg.0.try_wait() {
            Ok(Some(s)) => break s,
            _ if Instant::now() > deadline => panic!("loadgen did not finish{}", stack.logs()),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let text = std::fs::read_to_string(report)
        .unwrap_or_else(|e| panic!("no report at {}: {e}{}", report.display(), stack.logs()));
    let v: Value = serde_json::from_str(&text).expect("report is JSON");
    (status.code(), v)
}

/// The common verdict: nobody dropped, everyone received media, the victim's participants
/// moved (at least one migration, both bridges seen), gaps bounded. Returns the longest gap.
fn check(report: &Value, victim: &str, code: Option<i32>, stack: &Stack) -> u64 {
    let context = || format!("\nreport: {report:#}{}", stack.logs());
    assert_eq!(report["participants"], PARTICIPANTS as u64, "{}", context());
    assert_eq!(report["dropped"], 0, "participants dropped{}", context());
    assert_eq!(code, Some(0), "loadgen exit status{}", context());
    let per = report["per_participant"].as_array().expect("per_participant");
    let mut moved = 0;
    for p in per {
        assert!(p["frames_received"].as_u64() > Some(0), "{} received nothing{}", p["name"], context());
        assert!(p["first_media_ms"].as_u64().is_some(), "{}: no first media{}", p["name"], context());
        let bridges: Vec<&str> =
            p["bridges"].as_array().expect("bridges").iter().filter_map(|b| b.as_str()).collect();
        if bridges.first() == Some(&victim) {
            moved += 1;
            assert!(p["migrations"].as_u64() >= Some(1), "{} did not migrate{}", p["name"], context());
            assert!(bridges.len() >= 2, "{} saw only {bridges:?}{}", p["name"], context());
        }
        assert!(!bridges.is_empty(), "{}: no bridge{}", p["name"], context());
    }
    assert!(moved > 0, "no participant was on {victim}{}", context());
    let gap = report["longest_gap_ms"].as_u64().expect("longest_gap_ms");
    assert!(gap < 10_000, "longest gap {gap} ms{}", context());
    gap
}

#[tokio::test]
async fn participants_survive_a_bridge_being_killed() {
    let mut stack = Stack::start("kill", None).await;
    let (lg, report) = stack.loadgen();
    let victim = stack.steady_victim().await;
    let victim_id = stack.bridges[victim].id.clone();
    // SIGKILL: the control connection drops and signaling moves the conferences after its
    // reconnect grace.
    drop(stack.bridges[victim].process.take());
    let killed_at = Instant::now();
    let (code, v) = finish(lg, &report, &stack);
    let gap = check(&v, &victim_id, code, &stack);
    println!(
        "bridge {victim_id} killed {:.1}s before the end: longest gap {gap} ms, migrations {}, first media max {} ms",
        (Instant::now() - killed_at).as_secs_f64(),
        v["migrations"],
        v["first_media_ms_max"],
    );
}

#[tokio::test]
async fn participants_move_off_a_drained_bridge() {
    // Signaling moves a draining bridge's conferences after drainMigrateAfterSeconds (or the
    // deadline the drain request carries, where signaling honours it).
    let mut stack = Stack::start("drain", Some("drainMigrateAfterSeconds: 2\n")).await;
    let (lg, report) = stack.loadgen();
    let victim = stack.steady_victim().await;
    let victim_id = stack.bridges[victim].id.clone();
    let port = stack.bridges[victim].http_port;
    post(port, "/drain?migrate_after_seconds=2", &stack.secret).expect("drain accepted");
    // Its endpoints move away (and the old ones are expired a few seconds later).
    eventually("drained bridge emptied", Duration::from_secs(20), || async move {
        let text = http_get(port, "/metrics").await?;
        Ok((metric(&text, "convene_bridge_endpoints") == Some(0.0)).then_some(()))
    })
    .await;
    let (code, v) = finish(lg, &report, &stack);
    let gap = check(&v, &victim_id, code, &stack);
    assert!(http_get(port, "/metrics").await.is_ok(), "the drained bridge kept running");
    stack.bridges.clear();
    println!("bridge {victim_id} drained: longest gap {gap} ms, migrations {}", v["migrations"]);
}
