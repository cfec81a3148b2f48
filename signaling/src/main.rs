//! The `convene-signaling` binary: flags and config, logging, listeners (the server itself is
//! the `convene_signaling` library).
use clap::Parser;
use convene_signaling::state::App;
use convene_signaling::{bridge, config, routing, serve, tls};

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        b.json().init();
    } else {
        b.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = config::Args::parse();
    init_logging(&args.log_format);
    if !args.self_signed.is_empty() {
        return match tls::write_self_signed(&args) {
            Ok(fp) => {
                println!("{fp}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!("{e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let loaded = config::load_file(&args).and_then(|file| {
        let routing = file.routing.as_ref().map(routing::Routing::new).transpose()?;
        Ok((config::Settings::resolve(file, &args)?, routing))
    });
    let (settings, routing) = match loaded {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listen = settings.listen.clone();
    let app = match App::with_routing(settings, routing) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("{e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {listen}: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let acceptor = match &app.settings.tls {
        Some((cert, key)) => match serve::tls_acceptor(cert, key) {
            Ok(a) => Some(a),
            Err(e) => {
                tracing::error!("TLS: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or(listen);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let url = if app.settings.public_url.is_empty() {
        format!("{scheme}://{}/", local.replace("0.0.0.0", "localhost").replace("127.0.0.1", "localhost"))
    } else {
        app.settings.public_url.clone()
    };
    tracing::info!(listen = %local, tls = acceptor.is_some(), jwt = app.verifier.is_some(), turn = app.settings.turn.is_some(), "convene-signaling listening; open {url}");
    tokio::spawn(bridge::monitor(app.clone()));
    if let Some(r) = &app.routing {
        r.reload(&app);
        tracing::info!(group = %r.group, shard = %r.shard, "routing joins across the group");
        tokio::spawn(routing::watch(app.clone()));
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => return shutdown.await,
        };
        tokio::select! { _ = shutdown => {}, _ = term.recv() => {} }
        // WebSockets never finish by themselves: give in-flight HTTP a moment, then exit.
        tracing::info!("shutting down");
        tokio::spawn(async {
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            std::process::exit(0);
        });
    };
    if let Some(internal) = &args.internal_listen {
        match tokio::net::TcpListener::bind(internal).await {
            Ok(l) => {
                tracing::info!(listen = %internal, "plain-HTTP internal listener (bridges, probes)");
                tokio::spawn(serve::serve(l, app.clone(), None, std::future::pending()));
            }
            Err(e) => {
                tracing::error!("cannot listen on {internal}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    serve::serve(listener, app, acceptor, shutdown).await;
    std::process::ExitCode::SUCCESS
}
