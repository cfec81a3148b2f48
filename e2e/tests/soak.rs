//! Soak: loadgen participants in many rooms with churn (each leaves after a few seconds and
//! joins again) against a real signaling and two real bridges on loopback, for a bounded
//! time. It asserts zero errors and drops, that signaling's and the bridges' RSS stop growing
//! (< 10% between the reference point and the end), and that everything is released once
//! everyone has left: 0 endpoints, 0 conferences, 0 rooms, 0 participants, 0 queued frames.
//!
//! CI runs the short version (netns tier). The full soak, 10 minutes with the RSS
//! reference at the 2nd minute:
//!   CONVENE_SOAK_S=600 cargo test -p convene-e2e --release --test soak -- --nocapture
//! (`--release` needs `cargo build --release --workspace` first; binaries are taken from the
//! test's own profile.)

use convene_e2e::stack::{Stack, finish};
use convene_e2e::{eventually, http_get, metric_sum};
use std::time::{Duration, Instant};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
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

#[tokio::test]
async fn churn_leaves_nothing_behind_and_memory_flat() {
    let run_s = env("CONVENE_SOAK_S", 150);
    let participants = env("CONVENE_SOAK_PARTICIPANTS", 200);
    let rooms = env("CONVENE_SOAK_ROOMS", 20);
    let churn_s = env("CONVENE_SOAK_CHURN_S", 8);
    // RSS is compared from here to the end: the 2nd minute of a long run, a third of a short.
    let reference = Duration::from_secs(if run_s >= 300 { 120 } else { run_s / 3 });

    let stack = Stack::start("soak", None).await;
    // Light media keeps the packet rate within a debug build on two shared cores: the soak is
    // about lifecycles and memory, not throughput (convene-bridge-bench measures that).
    let args: Vec<String> = [
        "--participants",
        &participants.to_string(),
        "--rooms",
        &rooms.to_string(),
        "--duration-s",
        &run_s.to_string(),
        "--churn-s",
        &churn_s.to_string(),
        "--ramp-ms",
        "20",
        "--no-audio",
        "--no-simulcast",
        "--video-kbps",
        "60",
        "--fps",
        "5",
        "--keyframe-interval-s",
        "2",
        "--last-n",
        "2",
        "--progress-s",
        "10",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    let started = Instant::now();
    let (lg, report) = stack.loadgen(&args);

    let mut pids = vec![("signaling", stack.signaling.0.id())];
    for b in &stack.bridges {
        pids.push((
            if b.id == "bridge-a" { "bridge-a" } else { "bridge-b" },
            b.process.as_ref().expect("running").0.id(),
        ));
    }
    let sample = || pids.iter().map(|(_, p)| rss_mib(*p)).collect::<Vec<f64>>();
    let mut curve: Vec<(f64, Vec<f64>)> = vec![];
    let mut at_reference = None;
    let end = started + Duration::from_secs(run_s.saturating_sub(2));
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(5).min(end.saturating_duration_since(Instant::now()))).await;
        let s = sample();
        if at_reference.is_none() && started.elapsed() >= reference {
            at_reference = Some(s.clone());
        }
        curve.push((started.elapsed().as_secs_f64(), s));
    }
    let last = curve.last().map(|(_, s)| s.clone()).expect("sampled");
    let first = curve.first().map(|(_, s)| s.clone()).expect("sampled");
    let reference_rss = at_reference.unwrap_or_else(|| first.clone());

    let (code, v) = finish(lg, &report, &stack, run_s);
    let context = || {
        format!(
            "\nreport totals: participants {} dropped {}{}",
            v["participants"],
            v["dropped"],
            stack.logs()
        )
    };
    println!("RSS (MiB) over the run, {}:", pids.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" / "));
    for (t, s) in curve.iter().step_by(3) {
        println!("  {t:>6.0} s  {}", s.iter().map(|m| format!("{m:>7.1}")).collect::<String>());
    }
    println!(
        "start {first:.1?}, reference ({} s) {reference_rss:.1?}, end {last:.1?}; sessions {}",
        reference.as_secs(),
        v["participants"]
    );

    let per = v["per_participant"].as_array().expect("per_participant");
    let errors: u64 = per.iter().filter_map(|p| p["errors"].as_u64()).sum();
    let failures: Vec<String> = per
        .iter()
        .filter(|p| p["dropped"] == true || p["errors"].as_u64() > Some(0))
        .map(|p| format!("{} ({}): {} {}", p["name"], p["room"], p["reason"], p["last_error"]))
        .take(10)
        .collect();
    assert_eq!(v["dropped"], 0, "dropped sessions: {failures:#?}{}", context());
    assert_eq!(errors, 0, "errors: {failures:#?}{}", context());
    assert_eq!(v["malformed_frames"], 0, "{}", context());
    assert_eq!(code, Some(0), "loadgen exit status{}", context());
    let sessions = v["participants"].as_u64().unwrap_or(0);
    assert!(
        sessions >= participants + participants * run_s / (churn_s * 3),
        "churn: only {sessions} sessions for {participants} participants{}",
        context()
    );
    for (i, (name, _)) in pids.iter().enumerate() {
        let growth = (last[i] - reference_rss[i]) / reference_rss[i];
        assert!(
            growth < 0.10,
            "{name} RSS grew {:.0}% from {:.1} to {:.1} MiB after the reference point",
            growth * 100.0,
            reference_rss[i],
            last[i]
        );
    }

    // Everyone has left: nothing is held anywhere.
    let sig = stack.sig_port;
    let bridges: Vec<u16> = stack.bridges.iter().map(|b| b.http_port).collect();
    eventually("everything released", Duration::from_secs(30), || {
        let bridges = bridges.clone();
        async move {
            let s = http_get(sig, "/metrics").await?;
            let mut held = vec![
                ("signaling rooms", metric_sum(&s, "convene_signaling_rooms")),
                ("signaling participants", metric_sum(&s, "convene_signaling_participants")),
                ("signaling queued frames", metric_sum(&s, "convene_signaling_queued_frames")),
                ("signaling websockets", metric_sum(&s, "convene_signaling_websocket_connections")),
            ];
            for port in bridges {
                let b = http_get(port, "/metrics").await?;
                held.push(("bridge endpoints", metric_sum(&b, "convene_bridge_endpoints")));
                held.push(("bridge conferences", metric_sum(&b, "convene_bridge_conferences")));
            }
            let left: Vec<_> = held.into_iter().filter(|(_, v)| *v != 0.0).collect();
            if !left.is_empty() {
                println!("still held: {left:?}");
            }
            Ok(left.is_empty().then_some(()))
        }
    })
    .await;
}
