//! `sealprint-compose-demo`: the one-shots of the compose demo (`deploy/compose.yaml`), a
//! TEST AND DEMO binary packaged only in the `sealprint-demo` image (see
//! `sealprint_testkit::compose_demo`).
//!
//! - `secrets --handover DIR`: the first admin's password, before `init`;
//! - `bootstrap --handover DIR --api HOST:PORT --ca-file PEM --agent NAME…`: tenant, site,
//!   subscription, attestation, one enrollment token file per agent;
//! - `labels --handover DIR --api HOST:PORT --ca-file PEM`: prints labels end to end.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use sealprint_testkit::compose_demo::{self, ApiTarget};

#[derive(Parser)]
#[command(
    name = "sealprint-compose-demo",
    version,
    about = "The compose demo's one-shots (test and demo only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the admin password into the hand-over directory unless it is there.
    Secrets {
        /// The hand-over directory (a volume shared by the containers).
        #[arg(long)]
        handover: PathBuf,
    },
    /// Tenant, site, subscription, attestation and one token file per agent.
    Bootstrap {
        #[command(flatten)]
        target: Target,
        /// An agent's name (its token goes to NAME.token); repeatable.
        #[arg(long = "agent", required = true)]
        agents: Vec<String>,
    },
    /// Wait for the printers, print labels, wait until every one is printed.
    Labels {
        #[command(flatten)]
        target: Target,
        /// Verified printers to wait for.
        #[arg(long, default_value_t = 2)]
        printers: usize,
        /// Labels to print.
        #[arg(long, default_value_t = 6)]
        count: usize,
    },
}

#[derive(Args)]
struct Target {
    /// The hand-over directory.
    #[arg(long)]
    handover: PathBuf,
    /// The coordinator's API, HOST:PORT.
    #[arg(long, default_value = "coordinator:8443")]
    api: String,
    /// The coordinator's certificate (its data directory's tls/cert.pem).
    #[arg(long)]
    ca_file: PathBuf,
}

impl From<Target> for ApiTarget {
    fn from(t: Target) -> ApiTarget {
        ApiTarget {
            api: t.api,
            ca_file: t.ca_file,
            handover: t.handover,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Secrets { handover } => compose_demo::secrets(&handover),
        Command::Bootstrap { target, agents } => {
            compose_demo::bootstrap(&target.into(), &agents).await
        }
        Command::Labels {
            target,
            printers,
            count,
        } => compose_demo::labels(&target.into(), printers, count).await,
    }
}
