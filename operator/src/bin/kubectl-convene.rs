//! `kubectl convene`, a kubectl plugin (kubectl runs `kubectl-convene` from PATH):
//!   kubectl convene status <shard> [-n NAMESPACE]
//!   kubectl convene doctor <shard> [-n NAMESPACE]
//! Reads with the caller's kubeconfig; writes nothing. `doctor` also probes from where it runs:
//! the domain's DNS, each bridge's media (STUN) and ICE-TCP ports, and each TURN relay (STUN,
//! and an Allocate with a credential minted from the pool's secret, released at once); it
//! exits 1 when a check fails.
use clap::{Parser, Subcommand};
use convene_operator::doctor::{self, Level};

#[derive(Parser)]
#[command(name = "kubectl convene", about = "Inspect and diagnose Convene shards")]
struct Cli {
    /// Namespace of the shard (default: the kubeconfig context's).
    #[arg(short, long, global = true)]
    namespace: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One screen of a shard: conditions, pools, bridges, load, recent decisions and events.
    Status { shard: String },
    /// Walk the failure-mode table against the live cluster and probe what clients reach: OK
    /// or what to check, per item.
    Doctor { shard: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = kube::Config::infer().await?;
    let ns = cli.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config)?;
    match cli.command {
        Command::Status { shard } => {
            let facts = doctor::facts::gather(&client, &ns, &shard).await?;
            print!("{}", doctor::status::render(&facts));
        }
        Command::Doctor { shard } => {
            let mut facts = doctor::facts::gather(&client, &ns, &shard).await?;
            facts.probes = doctor::facts::probe(&client, &facts).await;
            let now = jiff::Timestamp::now().as_second();
            let findings = doctor::diagnose(&facts, now);
            print!("{}", doctor::checks::render(&findings));
            if findings.iter().any(|f| f.level == Level::Fail) {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}
