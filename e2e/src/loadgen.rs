//! `convene-loadgen` as the cluster tests run it: real WebRTC participants against signaling.
use crate::{Process, cluster_dir, workspace_binary};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A running `convene-loadgen`; stopped with SIGTERM, after which it writes its JSON report.
pub struct Loadgen {
    process: Process,
    report: PathBuf,
    name: String,
}

impl Loadgen {
    pub fn start(name: &str, signaling_port: u16, participants: u32, rooms: u32) -> Loadgen {
        let report = cluster_dir().join(format!("logs/loadgen-{name}.json"));
        let _ = std::fs::remove_file(&report);
        let log = std::fs::File::create(cluster_dir().join(format!("logs/loadgen-{name}.log"))).unwrap();
        let process = Process(
            Command::new(workspace_binary("convene-loadgen"))
                .args(["--signaling-url", &format!("ws://127.0.0.1:{signaling_port}/ws")])
                .args(["--participants", &participants.to_string(), "--rooms", &rooms.to_string()])
                .args(["--room-prefix", name, "--duration-s", "0", "--ramp-ms", "100"])
                .args(["--video-kbps", "150", "--fps", "10", "--max-gap-s", "15"])
                .arg("--report")
                .arg(&report)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("convene-loadgen starts"),
        );
        Loadgen { process, report, name: name.into() }
    }

    /// SIGTERM: participants leave, the report is written.
    pub fn stop(mut self) -> Value {
        let _ = Command::new("kill").arg("-TERM").arg(self.process.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && matches!(self.process.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let text = std::fs::read_to_string(&self.report).unwrap_or_else(|e| {
            panic!("loadgen {} wrote no report at {}: {e}", self.name, self.report.display())
        });
        serde_json::from_str(&text).expect("the report is JSON")
    }
}

/// Prints the report's headline and asserts no participant dropped and media flowed to all.
pub fn assert_no_drops(what: &str, r: &Value) {
    let per: &Vec<Value> = r["per_participant"].as_array().expect("per_participant");
    println!(
        "loadgen {what}: {} participants in {} rooms, dropped {}, migrations {}, longest media gap {} ms",
        r["participants"], r["rooms"], r["dropped"], r["migrations"], r["longest_gap_ms"]
    );
    for p in per {
        assert_eq!(p["dropped"], false, "{what}: participant dropped: {p}");
        assert!(p["frames_received"].as_u64().unwrap_or(0) > 0, "{what}: no media received: {p}");
    }
    assert_eq!(r["dropped"], 0, "{what}: {r}");
}
