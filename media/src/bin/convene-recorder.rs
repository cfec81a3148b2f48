//! `convene-recorder`: records rooms as a bridge's hidden endpoint, told what to record by
//! signaling over `/recorder` (see media/NOTES.md, "Recorder").
use clap::Parser;
use convene_media::config::init_logging;
use convene_media::recorder::config::RecorderConfig;
use convene_media::recorder::control::Recorder;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let cfg = RecorderConfig::parse();
    init_logging(cfg.log_format);
    convene_media::recorder::compose::install(&cfg.compose);
    let id = cfg
        .recorder_id
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "recorder".into());
    let http = match cfg.http_port {
        0 => None,
        port => Some(tokio::net::TcpListener::bind((cfg.bind, port)).await?),
    };
    let recorder = Recorder::new(cfg, id)?;
    if let Some(listener) = http {
        tokio::spawn(convene_media::recorder::http::serve(listener, recorder.http()));
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let task = tokio::spawn(recorder.run(stopped));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    let _ = stop.send(true);
    let _ = task.await;
    Ok(())
}
