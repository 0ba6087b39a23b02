//! Agent configuration: a TOML file (`--config`) merged with command-line flags.
//!
//! Parsing and validation are pure functions over strings, so tests need no files. Every
//! problem is reported at once, before anything binds a port.

use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use serde::Deserialize;

use crate::printer::PrinterConfig;

/// The agent's configuration file. Every field is optional; flags override it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory (keys, certificate, pins). Default on Windows `%ProgramData%\sealprint`;
    /// elsewhere none: it must be given here or by flag.
    pub data_dir: Option<PathBuf>,
    /// Multiaddrs to listen on for site peers. Default: `/ip4/0.0.0.0/tcp/0`.
    #[serde(default)]
    pub listen: Vec<String>,
    /// Static site peers to dial (multiaddrs), in addition to mDNS discovery.
    #[serde(default)]
    pub peers: Vec<String>,
    /// Seconds between heartbeats. Default: 10.
    pub heartbeat_interval_secs: Option<u64>,
    /// Whether this station dials the coordinator itself. Default: true. A station without
    /// internet access sets `false` and reaches the coordinator through a site peer.
    pub uplink: Option<bool>,
    /// Discover site peers with mDNS. Default: true.
    pub mdns: Option<bool>,
    /// The printers this station serves.
    #[serde(default, rename = "printer")]
    pub printers: Vec<PrinterConfig>,
    /// Prometheus `/metrics` over plain HTTP on this `IP:PORT`. Default: off. Bind it to
    /// loopback or a private interface (no authentication; no PII).
    pub metrics_listen: Option<String>,
    /// Seconds a new version has to get a heartbeat acknowledged before the previous binary
    /// is restored (remote updates). Default: 120.
    pub update_trial_secs: Option<u64>,
    /// Whether a remote update may install a version not above this one (never one below the
    /// fleet minimum). Default: false.
    pub allow_update_downgrade: Option<bool>,
}

/// Flags given on the command line (the binary fills this from clap).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen`, repeated.
    pub listen: Vec<String>,
    /// `--peer`, repeated.
    pub peers: Vec<String>,
    /// `--printer NAME=URI`, repeated (pool `default`).
    pub printers: Vec<String>,
    /// `--heartbeat-interval-secs`.
    pub heartbeat_interval_secs: Option<u64>,
    /// `--no-uplink`.
    pub no_uplink: bool,
    /// `--no-mdns`.
    pub no_mdns: bool,
    /// `--metrics-listen`.
    pub metrics_listen: Option<String>,
    /// `--update-trial-secs`.
    pub update_trial_secs: Option<u64>,
    /// `--allow-update-downgrade`.
    pub allow_update_downgrade: bool,
}

/// The validated configuration of `sealprint-agent run`.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen multiaddrs.
    pub listen: Vec<Multiaddr>,
    /// Static peers.
    pub peers: Vec<Multiaddr>,
    /// Heartbeat period.
    pub heartbeat_interval: Duration,
    /// Dial the coordinator directly.
    pub uplink: bool,
    /// Use mDNS.
    pub mdns: bool,
    /// Printers.
    pub printers: Vec<PrinterConfig>,
    /// Where `/metrics` is served, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// How long a new version has to heartbeat before it is rolled back.
    pub update_trial: Duration,
    /// Whether remote updates may install a version not above this one.
    pub allow_update_downgrade: bool,
}

/// Parses a TOML configuration file's text.
///
/// # Errors
/// The TOML error, which names the line and the offending key.
pub fn parse_file(text: &str) -> Result<FileConfig, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Merges file and flags (flags win; lists from both are combined) and validates the result.
///
/// # Errors
/// Every problem found, one per entry.
pub fn resolve(file: FileConfig, flags: Flags) -> Result<RunConfig, Vec<String>> {
    let mut problems = Vec::new();
    let data_dir = flags
        .data_dir
        .or(file.data_dir)
        .or_else(crate::data_dir::default_dir);
    if data_dir.is_none() {
        problems.push("data_dir is required (--data-dir or data_dir in the config)".to_owned());
    }
    let parse_addrs = |what: &str, list: Vec<String>, problems: &mut Vec<String>| {
        list.into_iter()
            .filter_map(|a| match a.parse::<Multiaddr>() {
                Ok(m) => Some(m),
                Err(e) => {
                    problems.push(format!("{what} {a:?} is not a multiaddr: {e}"));
                    None
                }
            })
            .collect::<Vec<_>>()
    };
    let mut listen_raw = file.listen;
    listen_raw.extend(flags.listen);
    if listen_raw.is_empty() {
        listen_raw.push("/ip4/0.0.0.0/tcp/0".to_owned());
    }
    let listen = parse_addrs("listen address", listen_raw, &mut problems);
    let mut peers_raw = file.peers;
    peers_raw.extend(flags.peers);
    let peers = parse_addrs("peer", peers_raw, &mut problems);
    let secs = flags
        .heartbeat_interval_secs
        .or(file.heartbeat_interval_secs)
        .unwrap_or(10);
    if secs == 0 || secs > 300 {
        problems.push(format!("heartbeat interval {secs}s is outside 1..=300"));
    }
    let mut printers = file.printers;
    for flag in flags.printers {
        match PrinterConfig::from_flag(&flag) {
            Ok(p) => printers.push(p),
            Err(e) => problems.push(format!("--printer {flag:?}: {e}")),
        }
    }
    let mut names = std::collections::HashSet::new();
    for p in &printers {
        if let Err(e) = sealprint_protocol::validate_id(&p.name) {
            problems.push(format!("printer name {:?}: {e}", p.name));
        }
        if let Err(e) = sealprint_protocol::validate_id(&p.pool) {
            problems.push(format!("printer {:?} pool {:?}: {e}", p.name, p.pool));
        }
        if let Err(e) = p.uri.parse::<crate::printer::PrinterUri>() {
            problems.push(format!("printer {:?}: {e}", p.name));
        }
        if !names.insert(p.name.clone()) {
            problems.push(format!("printer name {:?} is used twice", p.name));
        }
    }
    let metrics_listen = flags
        .metrics_listen
        .or(file.metrics_listen)
        .and_then(|raw| match raw.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("metrics_listen {raw:?} is not IP:PORT"));
                None
            }
        });
    let trial = flags
        .update_trial_secs
        .or(file.update_trial_secs)
        .unwrap_or(crate::update::DEFAULT_TRIAL_SECS);
    if trial == 0 || trial > 3600 {
        problems.push(format!("update trial {trial}s is outside 1..=3600"));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(RunConfig {
        update_trial: Duration::from_secs(trial),
        allow_update_downgrade: flags.allow_update_downgrade
            || file.allow_update_downgrade.unwrap_or(false),
        data_dir: data_dir.unwrap_or_default(),
        listen,
        peers,
        heartbeat_interval: Duration::from_secs(secs),
        uplink: !flags.no_uplink && file.uplink.unwrap_or(true),
        mdns: !flags.no_mdns && file.mdns.unwrap_or(true),
        printers,
        metrics_listen,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_flags_merge() {
        let file = parse_file(
            r#"
            data_dir = "/var/lib/sealprint-agent"
            peers = ["/ip4/10.0.0.2/tcp/7000"]
            heartbeat_interval_secs = 5
            [[printer]]
            name = "zebra-1"
            uri = "raw://10.0.0.50:9100"
            pool = "outbound"
            "#,
        )
        .expect("parses");
        let flags = Flags {
            printers: vec!["zebra-2=raw://10.0.0.51:9100".into()],
            no_uplink: true,
            ..Flags::default()
        };
        let cfg = resolve(file, flags).expect("valid");
        assert_eq!(cfg.printers.len(), 2);
        assert_eq!(cfg.printers[1].pool, "default");
        assert_eq!(cfg.heartbeat_interval, Duration::from_secs(5));
        assert!(!cfg.uplink);
        assert_eq!(cfg.listen.len(), 1);
    }

    #[test]
    fn every_problem_reported() {
        let file =
            parse_file("listen = [\"nonsense\"]\nheartbeat_interval_secs = 0").expect("toml");
        let flags = Flags {
            printers: vec!["a=raw://h:1".into(), "a=raw://h:2".into(), "bad".into()],
            ..Flags::default()
        };
        let problems = resolve(file, flags).expect_err("invalid");
        assert_eq!(problems.len(), 5, "{problems:?}");
    }

    #[test]
    fn deploy_examples_parse_and_validate() {
        for (name, text) in [
            (
                "examples/agent.toml",
                include_str!("../../deploy/examples/agent.toml"),
            ),
            (
                "compose/agent-1.toml",
                include_str!("../../deploy/compose/agent-1.toml"),
            ),
            (
                "compose/agent-2.toml",
                include_str!("../../deploy/compose/agent-2.toml"),
            ),
        ] {
            let file = parse_file(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            resolve(file, Flags::default()).unwrap_or_else(|p| panic!("{name}: {p:?}"));
        }
    }

    #[test]
    fn unknown_keys_refused() {
        assert!(parse_file("colour = \"blue\"").is_err());
    }
}
