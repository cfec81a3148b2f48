//! Signaling, bridges and recorders as real processes on loopback, sharing a fresh secret, for
//! the tests that drive them with `convene-loadgen` (tests/loadgen.rs, tests/soak.rs,
//! tests/recording.rs). They need the
//! workspace binaries built first (`cargo build --workspace`, as scripts/test.sh does).

use crate::{Process, eventually, free_port, http_get, workspace_binary};
use anyhow::{Context as _, Result, bail};
use serde_json::Value;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A workspace binary next to the test binary, or in `CONVENE_E2E_BIN_DIR` when set (e.g.
/// `target/release` for a benchmark).
pub fn binary(name: &str) -> PathBuf {
    let bin = match std::env::var_os("CONVENE_E2E_BIN_DIR") {
        Some(dir) => PathBuf::from(dir).join(name),
        None => workspace_binary(name),
    };
    assert!(bin.exists(), "{} is missing: run `cargo build --workspace` first", bin.display());
    bin
}

/// A scratch folder for one test's logs and report.
pub fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("convene-loadgen-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(format!("{name}.log"))).expect("log file")
}

pub fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub struct Bridge {
    pub id: String,
    pub http_port: u16,
    pub process: Option<Process>,
}

/// A `convene-bridge` on 127.0.0.1 (free ports) registering with the signaling on `sig_port`
/// with `secret`, logging into `dir`.
pub fn spawn_bridge(dir: &Path, id: &str, sig_port: u16, secret: &str) -> Bridge {
    let (udp, tcp, http) = (free_port(), free_port(), free_port());
    let process = Process(
        Command::new(binary("convene-bridge"))
            .args(["--bind", "127.0.0.1", "--address-source", "static", "--static-addresses", "127.0.0.1"])
            .args(["--udp-port", &udp.to_string(), "--tcp-port", &tcp.to_string()])
            .args(["--http-port", &http.to_string(), "--bridge-id", id, "--load-interval-s", "1"])
            .args(["--signaling-url", &format!("ws://127.0.0.1:{sig_port}/bridge")])
            .env("CONVENE_BRIDGE_SECRET", secret)
            .env("RUST_LOG", "info,str0m=warn,dimpl=warn,is=warn")
            .stdout(log_file(dir, id))
            .stderr(log_file(dir, &format!("{id}.err")))
            .spawn()
            .expect("convene-bridge starts"),
    );
    Bridge { id: id.into(), http_port: http, process: Some(process) }
}

/// Signaling and two bridges sharing a fresh secret.
pub struct Stack {
    pub dir: PathBuf,
    pub secret: String,
    pub sig_port: u16,
    pub signaling: Process,
    pub bridges: Vec<Bridge>,
}

impl Stack {
    pub async fn start(test: &str, signaling_yaml: Option<&str>) -> Stack {
        Self::start_with(test, signaling_yaml, &["bridge-a", "bridge-b"]).await
    }

    /// Signaling and the named bridges, once all of them registered.
    pub async fn start_with(test: &str, signaling_yaml: Option<&str>, bridges: &[&str]) -> Stack {
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
        let mut stack = Stack { dir, secret, sig_port, signaling, bridges: Vec::new() };
        for id in bridges {
            stack.start_bridge(id);
        }
        let want = format!("{} bridge(s)", bridges.len());
        eventually("the bridges registered", Duration::from_secs(30), || {
            let want = want.clone();
            async move {
                let ready = http_get(sig_port, "/ready").await?;
                Ok(ready.contains(&want).then_some(()))
            }
        })
        .await;
        stack
    }

    pub fn start_bridge(&mut self, id: &str) {
        let bridge = spawn_bridge(&self.dir, id, self.sig_port, &self.secret);
        self.bridges.push(bridge);
    }

    /// Start a `convene-recorder` writing under `dir` with room for `capacity` recordings (the
    /// secret from a file, as a pod mounts it), once it registered.
    pub async fn start_recorder(&self, id: &str, dir: &Path, capacity: u32) -> Process {
        self.start_recorder_with(id, dir, capacity, &[], None).await.0
    }

    /// [`Self::start_recorder`] with more flags (`extra`) and another binary (`program`, e.g. a
    /// release build for a benchmark); also returns its HTTP port (`/metrics`, `/load`, `/drain`).
    pub async fn start_recorder_with(
        &self,
        id: &str,
        dir: &Path,
        capacity: u32,
        extra: &[&str],
        program: Option<&Path>,
    ) -> (Process, u16) {
        let secret_file = self.dir.join("secret");
        std::fs::write(&secret_file, format!("{}\n", self.secret)).expect("secret file");
        let (first, http) = (free_port(), free_port());
        let program = program.map_or_else(|| binary("convene-recorder"), Path::to_path_buf);
        // A UDP port per recording, twice over (other processes' ephemeral ports fall in it).
        let last = first.saturating_add((2 * capacity).max(10) as u16 - 1);
        let process = Process(
            Command::new(program)
                .args(["--signaling-url", &format!("ws://127.0.0.1:{}/recorder", self.sig_port)])
                .arg("--secret-file")
                .arg(&secret_file)
                .arg("--recordings-dir")
                .arg(dir)
                .args(["--capacity", &capacity.to_string(), "--recorder-id", id, "--bind", "127.0.0.1"])
                .args(["--udp-ports", &format!("{first}-{last}")])
                .args(["--http-port", &http.to_string()])
                .args(extra)
                .env("RUST_LOG", "info,str0m=warn,dimpl=warn,is=warn")
                .stdout(log_file(&self.dir, id))
                .stderr(log_file(&self.dir, &format!("{id}.err")))
                .spawn()
                .expect("convene-recorder starts"),
        );
        let port = self.sig_port;
        eventually("the recorder registered", Duration::from_secs(30), || async move {
            let ready = http_get(port, "/ready").await?;
            Ok(ready.contains("1 recorder(s)").then_some(()))
        })
        .await;
        // Its own readiness probe agrees (a pod's probe).
        eventually("the recorder ready", Duration::from_secs(10), || async move {
            Ok(http_get(http, "/ready").await.ok().map(|_| ()))
        })
        .await;
        (process, http)
    }

    /// Start the load generator with `args` (it leaves by itself after its `--duration-s`).
    pub fn loadgen(&self, args: &[String]) -> (Process, PathBuf) {
        let report = self.dir.join("report.json");
        let p = Process(
            Command::new(binary("convene-loadgen"))
                .args(["--signaling-url", &format!("ws://127.0.0.1:{}/ws", self.sig_port)])
                .args(args)
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
    pub async fn endpoints(&self) -> Result<Vec<(usize, u64)>> {
        let mut out = Vec::new();
        for (i, b) in self.bridges.iter().enumerate().filter(|(_, b)| b.process.is_some()) {
            let text = http_get(b.http_port, "/metrics").await?;
            let n = metric(&text, "convene_bridge_endpoints").context("no convene_bridge_endpoints")?;
            out.push((i, n as u64));
        }
        Ok(out)
    }

    /// Wait until `participants` endpoints exist, give media a few seconds, and return the
    /// index of the bridge hosting the most endpoints (the one to fail).
    pub async fn steady_victim(&self, participants: u64) -> usize {
        let counts = eventually("all participants allocated", Duration::from_secs(30), || async {
            let e = self.endpoints().await?;
            Ok((e.iter().map(|(_, n)| n).sum::<u64>() == participants).then_some(e))
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        counts.iter().max_by_key(|(_, n)| *n).map(|(i, _)| *i).expect("two bridges")
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["loadgen", "signaling", "bridge-a", "bridge-b", "recorder-1"] {
            s += &format!("\n--- {name} (tail) ---\n{}", tail(&self.dir.join(format!("{name}.log")), 40));
        }
        s
    }
}

pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// POST with the bridge secret (the e2e crate's client only GETs).
pub fn post(port: u16, path: &str, secret: &str) -> Result<String> {
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

/// Wait for the load generator to finish (it runs `run_s`); its exit status and report.
pub fn finish(mut lg: Process, report: &Path, stack: &Stack, run_s: u64) -> (Option<i32>, Value) {
    let deadline = Instant::now() + Duration::from_secs(run_s + 30);
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
