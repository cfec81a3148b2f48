//! convene-operator: reconciles Shard, BridgePool, TurnPool and RecorderPool. Startup is one
//! pipeline: logs → metrics and health endpoint → client → CRD check → leader Lease →
//! controllers until shutdown or lost leadership.

use clap::Parser;
use convene_operator::controller;
use convene_operator::http;
use convene_operator::metrics::Metrics;
use convene_operator::reconcile::context::Shared;
use convene_operator::render::RenderConfig;
use kube::Client;
use kube::runtime::events::Reporter;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Parser, Debug)]
#[command(version, about = "Kubernetes operator for Convene video conferencing")]
struct Args {
    /// Log format: text or json.
    #[arg(long, env = "CONVENE_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "CONVENE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Namespaces to watch, comma separated; empty watches all.
    #[arg(long, env = "CONVENE_WATCH_NAMESPACES", default_value = "", value_delimiter = ',')]
    watch_namespaces: Vec<String>,
    /// Use a Lease so only one replica acts.
    #[arg(long, env = "CONVENE_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Namespace of the Lease (and of the operator).
    #[arg(long, env = "POD_NAMESPACE", default_value = "convene-system")]
    namespace: String,
    /// Name of the Lease.
    #[arg(long, env = "CONVENE_LEASE_NAME", default_value = "convene-operator")]
    lease_name: String,
    /// Identity in the Lease; defaults to the pod name.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a leader's Lease is valid without renewal.
    #[arg(long, env = "CONVENE_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
    /// Default image for signaling, bridges and recorders.
    #[arg(long, env = "CONVENE_MEDIA_IMAGE")]
    media_image: Option<String>,
    /// Default coturn image.
    #[arg(long, env = "CONVENE_TURN_IMAGE")]
    turn_image: Option<String>,
    /// The ClusterRole (installed with the operator) that lets bridges read Nodes.
    #[arg(long, env = "CONVENE_BRIDGE_NODE_READER_ROLE", default_value = "convene-bridge-node-reader")]
    bridge_node_reader_role: String,
    /// Namespaces of the Prometheus that scrapes the bridges (admitted by their NetworkPolicy).
    #[arg(long, env = "CONVENE_METRICS_NAMESPACES", value_delimiter = ',')]
    metrics_namespaces: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_logs(&args.log_format);
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,kube_lease_manager=warn".into());
    // Colours only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: Args) -> Result<(), String> {
    let metrics = Metrics::default();
    let ready = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http_addr))?;
    tokio::spawn(http::serve(listener, metrics.clone(), ready.clone()));

    let client = Client::try_default().await.map_err(|e| format!("cannot reach the Kubernetes API: {e}"))?;
    let first_ns = args.watch_namespaces.iter().find(|n| !n.is_empty()).cloned();
    controller::check_crds(&client, first_ns.as_deref()).await?;
    ready.store(true, Ordering::Relaxed);

    let identity = args.identity.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let mut render = RenderConfig {
        operator_namespace: args.namespace.clone(),
        node_reader_role: args.bridge_node_reader_role.clone(),
        metrics_namespaces: args.metrics_namespaces.iter().filter(|n| !n.is_empty()).cloned().collect(),
        ..RenderConfig::default()
    };
    if let Some(image) = args.media_image {
        render.media_image = image;
    }
    if let Some(image) = args.turn_image {
        render.turn_image = image;
    }
    let shared = Shared::new(
        client.clone(),
        render,
        metrics.clone(),
        Reporter { controller: "convene-operator".into(), instance: Some(identity.clone()) },
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = {
        let rx = stop_rx.clone();
        async move {
            let mut rx = rx;
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let shutdown = futures::FutureExt::shared(Box::pin(stop));

    // Leadership: wait for the Lease before acting; losing it ends the process so a fresh
    // standby takes over cleanly.
    let mut leader = None;
    if args.leader_election {
        let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&args.namespace)
            .with_identity(&identity)
            .with_duration(args.lease_seconds)
            .with_grace(args.lease_seconds / 3)
            .build()
            .await
            .map_err(|e| format!("cannot set up the leader Lease: {e}"))?;
        let (mut is_leader, task) = manager.watch().await;
        tracing::info!(identity, lease = args.lease_name, "waiting to become leader");
        tokio::select! {
            r = is_leader.wait_for(|l| *l) => { r.map_err(|_| "leader election stopped".to_string())?; }
            _ = shutdown_signal() => { return Ok(()); }
        }
        tracing::info!(identity, "became leader");
        metrics.leader.set(1);
        leader = Some((is_leader, task));
    } else {
        // The only instance leads: dashboards and the leader-missing alert read this gauge.
        metrics.leader.set(1);
    }

    let namespaces: Vec<Option<String>> = {
        let list: Vec<String> = args.watch_namespaces.into_iter().filter(|n| !n.is_empty()).collect();
        if list.is_empty() { vec![None] } else { list.into_iter().map(Some).collect() }
    };
    let controllers = futures::future::join_all(
        namespaces.into_iter().map(|ns| controller::run(shared.clone(), ns, shutdown.clone())),
    );
    tokio::pin!(controllers);

    let lost = async {
        match leader.as_mut() {
            Some((rx, _)) => {
                let _ = rx.wait_for(|l| !*l).await;
            }
            None => futures::future::pending::<()>().await,
        }
    };
    let outcome = tokio::select! {
        _ = &mut controllers => Ok(()),
        _ = shutdown_signal() => { tracing::info!("shutting down"); Ok(()) }
        _ = lost => Err("lost the leader Lease; exiting so a standby takes over".to_string()),
    };
    let _ = stop_tx.send(true);
    controllers.await;
    if let Some((rx, task)) = leader {
        // Dropping the receiver makes the manager release the Lease for a fast hand-over.
        drop(rx);
        let _ = task.await;
        metrics.leader.set(0);
    }
    outcome
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return futures::future::pending().await,
        };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "convene-operator".into())
}
