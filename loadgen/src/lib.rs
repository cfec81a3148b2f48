//! `convene-loadgen`: N simulated participants in M rooms through a running
//! `convene-signaling`, each behaving like the web app (join, `media` → offer audio, simulcast
//! camera and screen m-lines, answer every bridge offer, renegotiate from scratch on
//! `media{migration:true}`) and sending real RTP through str0m (ICE, DTLS, SRTP).
//!
//! Speaks the client protocol of `convene_proto::client`, as the web app does.
//!
//! Layout: [`config`] (flags), [`publish`] (synthetic
//! Opus/VP8 frames), [`peer`] (one str0m peer connection and its UDP socket), [`participant`]
//! (signaling + peer task), [`stats`] (counters, gaps, drop rules), [`report`] (JSON, progress).
//!
//! One task per participant on a small shared runtime: it sleeps until its UDP socket is
//! readable, a signaling frame arrives, or the next str0m/frame deadline.
pub mod config;
pub mod participant;
pub mod peer;
pub mod publish;
pub mod report;
pub mod stats;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use config::Config;
pub use report::Report;
use stats::Stats;

/// Install str0m's default crypto provider (aws-lc-rs) for the process, once.
pub fn install_crypto() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        str0m::crypto::from_feature_flags().install_process_default();
    });
}

/// How long participants get to leave once the run is over.
const LEAVE_GRACE: Duration = Duration::from_secs(5);

/// Run the load until `duration_s` passes or `shutdown` resolves; participants then leave
/// and the report is built. Must run inside a tokio runtime.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Report {
    let started = Instant::now();
    let cpu_at_start = report::process_cpu_seconds();
    let (stop_tx, stop_rx) = watch::channel(false);
    let rules = cfg.drop_rules();
    // One line per session: a participant under churn adds one each time it joins again.
    let slots: Sessions = Arc::new(Mutex::new(
        (0..cfg.participants)
            .map(|i| Arc::new(Mutex::new(Stats::new(cfg.name_of(i), cfg.room_of(i), started))))
            .collect(),
    ));

    let spawner = {
        let specs: Vec<participant::Spec> = (0..cfg.participants)
            .map(|i| participant::Spec {
                url: cfg.signaling_url.clone(),
                room: cfg.room_of(i),
                name: cfg.name_of(i),
                token: cfg.token.clone(),
                bind: cfg.bind_ip,
                publish: cfg.publish(),
                constraints: cfg.constraints(),
            })
            .collect();
        let first: Vec<Arc<Mutex<Stats>>> = lock(&slots).clone();
        let slots = slots.clone();
        let mut stop = stop_rx.clone();
        let ramp = Duration::from_millis(cfg.ramp_ms);
        let churn = cfg.clone();
        tokio::spawn(async move {
            let mut handles = Vec::new();
            for (i, (spec, slot)) in specs.into_iter().zip(first).enumerate() {
                if i > 0 && !ramp.is_zero() {
                    tokio::select! {
                        _ = tokio::time::sleep(ramp) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                }
                if *stop.borrow() {
                    break;
                }
                lock(&slot).started = Instant::now();
                handles.push(tokio::spawn(sessions(
                    i,
                    spec,
                    slot,
                    slots.clone(),
                    churn.clone(),
                    stop.clone(),
                )));
            }
            handles
        })
    };

    let progress = (cfg.progress_s > 0).then(|| {
        let slots = slots.clone();
        let rules = rules.clone();
        let every = Duration::from_secs(cfg.progress_s);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let now = Instant::now();
                let all = lock(&slots).clone();
                let snapshot: Vec<Stats> = all.iter().map(|s| lock(s).clone()).collect();
                eprintln!("{}", report::progress_line(started.elapsed(), all.len(), &snapshot, &rules, now));
            }
        })
    });

    let run_for = async {
        match cfg.duration_s {
            0 => std::future::pending().await,
            s => tokio::time::sleep(Duration::from_secs(s)).await,
        }
    };
    tokio::select! {
        _ = run_for => tracing::info!("duration reached: leaving"),
        _ = shutdown => tracing::info!("stop requested: leaving"),
    }
    let duration = started.elapsed();
    let _ = stop_tx.send(true);
    let handles = spawner.await.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + LEAVE_GRACE;
    for h in handles {
        if tokio::time::timeout_at(deadline, h).await.is_err() {
            tracing::warn!("a participant did not leave in time");
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    let end = Instant::now();
    let all = lock(&slots).clone();
    let per_participant = all
        .iter()
        .map(|s| {
            let mut s = lock(s);
            s.finish(end);
            report::ParticipantReport::new(&s, &rules, end)
        })
        .collect();
    let cpu = report::process_cpu_seconds().zip(cpu_at_start).map(|(b, a)| b - a);
    Report::new(cfg.rooms as usize, duration, per_participant, cpu)
}

type Sessions = Arc<Mutex<Vec<Arc<Mutex<Stats>>>>>;

/// Participant `i`'s sessions: one for the whole run, or under churn one after another, each
/// leaving at its length and the next joining `rejoin_ms` later, until the run stops.
async fn sessions(
    i: usize,
    spec: participant::Spec,
    first: Arc<Mutex<Stats>>,
    all: Sessions,
    cfg: Config,
    mut stop: watch::Receiver<bool>,
) {
    let mut slot = first;
    for session in 0u32.. {
        let Some(length) = cfg.session_length(i, session) else {
            return participant::run(spec, slot, stop).await;
        };
        let (leave_tx, leave_rx) = watch::channel(false);
        let mut run_stop = stop.clone();
        let timer = tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(length) => {}
                _ = run_stop.wait_for(|s| *s) => {}
            }
            let _ = leave_tx.send(true);
        });
        participant::run(spec.clone(), slot, leave_rx).await;
        timer.abort();
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(cfg.rejoin_ms)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if *stop.borrow() {
            return;
        }
        slot = Arc::new(Mutex::new(Stats::new(spec.name.clone(), spec.room.clone(), Instant::now())));
        lock(&all).push(slot.clone());
    }
}

fn lock<T>(s: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}
