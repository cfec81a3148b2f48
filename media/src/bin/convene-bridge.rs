//! `convene-bridge`: the SFU media bridge (see media/NOTES.md and media/CONTROL.md).
use clap::Parser;
use convene_media::bridge::Bridge;
use convene_media::config::{Config, init_logging};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cfg = Config::parse();
    init_logging(cfg.log_format);
    let bridge = Bridge::start(cfg).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    bridge.shutdown();
    Ok(())
}
