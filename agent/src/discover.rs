//! Finding candidate printers for `sealprint-agent printers --discover`: the local CUPS
//! scheduler's queues (over IPP), printers announced by DNS-SD on the LAN, USB printer nodes
//! and, on Windows, the spooler's printers; rendered as `[[printer]]` TOML ready to paste.
//!
//! A candidate is only a suggestion: the agent verifies every configured printer anyway, and
//! refuses what is not a physical device.

mod dns_sd;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::printer::inventory;
use crate::printer::{Timeouts, DEFAULT_POOL};

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A queue of the local CUPS scheduler.
    Cups,
    /// A printer announced over DNS-SD (mDNS) on the LAN.
    DnsSd,
    /// A USB printer node (`/dev/usb/lpN`).
    Usb,
    /// A printer of the Windows spooler.
    Windows,
}

/// One printer that could be configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// A suggested name (unique among the candidates, valid as a printer name).
    pub name: String,
    /// The URI to configure.
    pub uri: String,
    /// Where it was found.
    pub source: Source,
    /// What it said about itself (make and model, service name), when anything.
    pub detail: String,
}

/// What to look at.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The CUPS scheduler (socket path or HOST[:PORT]); default: `CUPS_SERVER`, the local socket.
    pub cups_server: Option<String>,
    /// Where to look for USB printer nodes (`/dev/usb`; another directory only in tests: the
    /// URIs always name `/dev/usb/lpN`, the only nodes the agent prints to).
    pub usb_dir: PathBuf,
    /// How long to listen for DNS-SD answers; zero skips DNS-SD.
    pub dns_sd_wait: Duration,
    /// Printer timeouts (the CUPS query).
    pub timeouts: Timeouts,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            cups_server: None,
            usb_dir: PathBuf::from("/dev/usb"),
            dns_sd_wait: Duration::from_secs(3),
            timeouts: Timeouts::default(),
        }
    }
}

/// What discovery found, and why a source gave nothing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Discovery {
    /// The candidates, CUPS first, then DNS-SD, USB and Windows.
    pub candidates: Vec<Candidate>,
    /// One line per source that could not be asked (for a person; no PII).
    pub notes: Vec<String>,
}

/// Looks everywhere at once and returns what answered within the timeouts.
pub async fn discover(opts: &DiscoverOptions) -> Discovery {
    let (cups, dns_sd) = tokio::join!(cups_queues(opts), dns_sd::browse(opts.dns_sd_wait));
    let mut found = Discovery::default();
    for result in [cups, dns_sd, usb_nodes(opts), windows_printers().await] {
        match result {
            Ok(mut c) => found.candidates.append(&mut c),
            Err(note) => found.notes.push(note),
        }
    }
    unique_names(&mut found.candidates);
    found
}

async fn cups_queues(opts: &DiscoverOptions) -> Result<Vec<Candidate>, String> {
    let server = opts
        .cups_server
        .as_deref()
        .and_then(inventory::Server::parse)
        .unwrap_or_else(inventory::Server::local);
    let queues = inventory::all_queues(&server, opts.timeouts)
        .await
        .map_err(|e| format!("cups: {e}"))?;
    Ok(queues
        .into_iter()
        .map(|(queue, facts)| Candidate {
            name: name_from(&queue),
            uri: format!("cups://{queue}"),
            source: Source::Cups,
            detail: facts.make_and_model.unwrap_or_default(),
        })
        .collect())
}

fn usb_nodes(opts: &DiscoverOptions) -> Result<Vec<Candidate>, String> {
    let entries = match std::fs::read_dir(&opts.usb_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("usb: cannot list {}: {e}", opts.usb_dir.display())),
    };
    let mut nodes: Vec<Candidate> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_owned();
            let digits = file.strip_prefix("lp")?;
            let number = !digits.is_empty() && digits.len() <= 3;
            (number && digits.bytes().all(|b| b.is_ascii_digit())).then(|| Candidate {
                name: format!("usb-{file}"),
                // The agent prints only to /dev/usb/lpN, wherever the node was seen.
                uri: format!("usb:///dev/usb/{file}"),
                source: Source::Usb,
                detail: String::new(),
            })
        })
        .collect();
    nodes.sort_by(|a, b| a.uri.cmp(&b.uri));
    Ok(nodes)
}

async fn windows_printers() -> Result<Vec<Candidate>, String> {
    if !cfg!(windows) {
        return Ok(Vec::new());
    }
    let printers = inventory::spooler_printers()
        .await
        .map_err(|e| format!("windows spooler: {e}"))?;
    Ok(printers
        .into_iter()
        .filter(|p| inventory::spooler_virtual(&p.port, &p.driver).is_none())
        .map(|p| Candidate {
            name: name_from(&p.name),
            uri: format!("winspool://{}", p.name),
            source: Source::Windows,
            detail: p.driver,
        })
        .collect())
}

/// A valid printer name from what a device or queue calls itself: lower case, `[a-z0-9._-]`
/// only (anything else becomes one dash), at most 56 characters.
fn name_from(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            name.push(c);
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name.trim_end_matches('-').chars().take(56).collect();
    if name.is_empty() {
        "printer".to_owned()
    } else {
        name
    }
}

/// Makes the names unique by numbering repeats (`name-2`, `name-3`…).
fn unique_names(candidates: &mut [Candidate]) {
    let mut seen = std::collections::HashSet::new();
    for c in candidates {
        let base = c.name.clone();
        let mut n = 1;
        while !seen.insert(c.name.clone()) {
            n += 1;
            c.name = format!("{base}-{n}");
        }
    }
}

/// The candidates as `[[printer]]` tables of the agent config, each with a comment saying
/// where it was found.
pub fn to_toml(candidates: &[Candidate]) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut out = String::from(
        "# Found by `sealprint-agent printers --discover`: keep the printers this station \
         serves,\n# set their pools, then run `sealprint-agent printers` to verify them.\n",
    );
    for c in candidates {
        let source = match c.source {
            Source::Cups => "CUPS queue",
            Source::DnsSd => "announced on the LAN (DNS-SD)",
            Source::Usb => "USB printer node",
            Source::Windows => "Windows printer",
        };
        let detail: String = c.detail.chars().filter(|ch| !ch.is_control()).collect();
        out.push('\n');
        if detail.is_empty() {
            out.push_str(&format!("# {source}\n"));
        } else {
            out.push_str(&format!("# {source}: {detail}\n"));
        }
        out.push_str(&format!(
            "[[printer]]\nname = {}\nuri = {}\npool = {}\n",
            quote(&c.name),
            quote(&c.uri),
            quote(DEFAULT_POOL)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn toml_parses_as_agent_config_with_unique_valid_names() {
        let mut found = vec![
            Candidate {
                name: name_from("Zebra ZD420 \"dock\"\n"),
                uri: "cups://Zebra_ZD420".into(),
                source: Source::Cups,
                detail: "Zebra ZD420\n# injected".into(),
            },
            Candidate {
                name: name_from("zebra-zd420-\"dock\""),
                uri: "ipp://10.0.0.5:631/ipp/print".into(),
                source: Source::DnsSd,
                detail: String::new(),
            },
            Candidate {
                name: "usb-lp0".into(),
                uri: "usb:///dev/usb/lp0".into(),
                source: Source::Usb,
                detail: String::new(),
            },
        ];
        unique_names(&mut found);
        let text = format!("data_dir = \"/tmp/x\"\n{}", to_toml(&found));
        let file = config::parse_file(&text).expect("discover output parses");
        let cfg = config::resolve(file, config::Flags::default()).expect("and validates");
        let names: Vec<_> = cfg.printers.iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, ["zebra-zd420-dock", "zebra-zd420-dock-2", "usb-lp0"]);
    }

    #[tokio::test]
    async fn finds_usb_nodes_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in ["lp0", "lp12", "lpx", "other"] {
            std::fs::write(dir.path().join(f), b"").expect("node");
        }
        let opts = DiscoverOptions {
            usb_dir: dir.path().to_owned(),
            ..DiscoverOptions::default()
        };
        let found = usb_nodes(&opts).expect("listed");
        let uris: Vec<_> = found.iter().map(|c| c.uri.clone()).collect();
        assert_eq!(uris, ["usb:///dev/usb/lp0", "usb:///dev/usb/lp12"]);
    }
}
