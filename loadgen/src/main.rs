//! `convene-loadgen`: simulated participants through `convene-signaling` (see
//! the `convene_loadgen` library and media/NOTES.md). Exit status: 0 when no participant dropped,
//! 1 when one did, 2 on bad flags or an unwritable report.
use std::process::ExitCode;

use clap::Parser;
use convene_loadgen::{self as loadgen, Config};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cfg = Config::parse();
    // Logs go to stderr: stdout may carry the report (`--report -`).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,str0m=warn,dimpl=warn,is=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(usize::from(cfg.threads))
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report_path = cfg.report.clone();
    let report = runtime.block_on(loadgen::run(cfg, stop_signal()));
    eprintln!(
        "loadgen done: {} participants, {} dropped, {} migrations, longest gap {} ms, cpu {}",
        report.participants,
        report.dropped,
        report.migrations,
        report.longest_gap_ms,
        report.cpu_s.map(|s| format!("{s:.1} s")).unwrap_or_else(|| "n/a".into()),
    );
    for p in report.per_participant.iter().filter(|p| p.dropped) {
        eprintln!("  dropped {} ({}): {}", p.name, p.room, p.reason.as_deref().unwrap_or(""));
    }
    let json = report.to_json();
    let written = match report_path.as_deref() {
        None => Ok(()),
        Some("-") => {
            println!("{json}");
            Ok(())
        }
        Some(path) => std::fs::write(path, json + "\n"),
    };
    if let Err(e) = written {
        tracing::error!("cannot write the report: {e}");
        return ExitCode::from(2);
    }
    if report.dropped == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    match term {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
