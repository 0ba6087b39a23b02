//! `sealprint-release`: make the release key, sign a release manifest, verify one.

mod commands;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Release signing for sealprint: the Ed25519 release key and signed manifests.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a new private release key (mode 0600, never overwritten) and `<out>.pub`.
    Keygen {
        /// Where to write the private key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Signs a manifest of the given artifacts (version, platform, size, SHA-256 of each).
    ///
    /// The private key is read from `--key-file` / SEALPRINT_RELEASE_KEY_FILE, or from the
    /// 64 hex digits in SEALPRINT_RELEASE_KEY; never from the command line.
    Sign {
        /// File holding the private key (64 hex digits).
        #[arg(long, env = "SEALPRINT_RELEASE_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// Release version, e.g. 0.1.0.
        #[arg(long)]
        version: String,
        /// An artifact as PLATFORM=PATH (repeat), e.g. linux-amd64=dist/sealprint-agent_0.1.0_amd64.deb.
        #[arg(long = "artifact", required = true)]
        artifacts: Vec<String>,
        /// Where to write the signed manifest (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Verifies a signed manifest against the trusted public key, then every artifact it
    /// lists (size and SHA-256) in `--dir` (default: the manifest's directory).
    Verify {
        /// The trusted public key (64 hex digits), or a file holding it.
        #[arg(long)]
        public_key: String,
        /// The signed manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// Directory of the artifacts.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Keygen { out } => commands::keygen(&out),
        Command::Sign {
            key_file,
            version,
            artifacts,
            out,
        } => commands::sign(key_file.as_deref(), &version, &artifacts, &out),
        Command::Verify {
            public_key,
            manifest,
            dir,
        } => commands::verify(&public_key, &manifest, dir.as_deref()),
    }
}
