//! `convene-loadgen` against real processes on loopback: `convene-signaling`, two
//! `convene-bridge` and the load generator. Mid-run one bridge is killed (or drained) and the
//! report must show its participants migrated to the other bridge with nobody dropped.
//!
//! Runs in the netns tier of scripts/test.sh (`unshare -n`, loopback only); it needs the
//! workspace binaries built first (`cargo build --workspace`, as scripts/test.sh does):
//!
//!   unshare -rn sh -c 'ip link set lo up; cargo test -p convene-e2e --test loadgen'

use convene_e2e::eventually;
use convene_e2e::http_get;
use convene_e2e::stack::{Stack, finish, metric, post};
use serde_json::Value;
use std::time::{Duration, Instant};

const PARTICIPANTS: usize = 6;
const ROOMS: usize = 2;
/// Run length of the load generator; the fault comes after a few seconds of steady media.
const RUN_S: u64 = 20;

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

fn args() -> Vec<String> {
    ["--participants", &PARTICIPANTS.to_string(), "--rooms", &ROOMS.to_string()]
        .into_iter()
        .chain(["--duration-s", &RUN_S.to_string(), "--ramp-ms", "50", "--progress-s", "2"])
        .map(String::from)
        .collect()
}

#[tokio::test]
async fn participants_survive_a_bridge_being_killed() {
    let mut stack = Stack::start("kill", None).await;
    let (lg, report) = stack.loadgen(&args());
    let victim = stack.steady_victim(PARTICIPANTS as u64).await;
    let victim_id = stack.bridges[victim].id.clone();
    // SIGKILL: the control connection drops and signaling moves the conferences after its
    // reconnect grace.
    drop(stack.bridges[victim].process.take());
    let killed_at = Instant::now();
    let (code, v) = finish(lg, &report, &stack, RUN_S);
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
    let (lg, report) = stack.loadgen(&args());
    let victim = stack.steady_victim(PARTICIPANTS as u64).await;
    let victim_id = stack.bridges[victim].id.clone();
    let port = stack.bridges[victim].http_port;
    post(port, "/drain?migrate_after_seconds=2", &stack.secret).expect("drain accepted");
    // Its endpoints move away (and the old ones are expired a few seconds later).
    eventually("drained bridge emptied", Duration::from_secs(20), || async move {
        let text = http_get(port, "/metrics").await?;
        Ok((metric(&text, "convene_bridge_endpoints") == Some(0.0)).then_some(()))
    })
    .await;
    let (code, v) = finish(lg, &report, &stack, RUN_S);
    let gap = check(&v, &victim_id, code, &stack);
    assert!(http_get(port, "/metrics").await.is_ok(), "the drained bridge kept running");
    stack.bridges.clear();
    println!("bridge {victim_id} drained: longest gap {gap} ms, migrations {}", v["migrations"]);
}
