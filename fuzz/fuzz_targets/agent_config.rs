//! The agent's configuration file (TOML) on arbitrary text, parsed and resolved as
//! `sealprint-agent run` does. Never panics; a resolved configuration listens somewhere,
//! heartbeats every 1..=300 s, and its printers have unique names and URIs that parse.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sealprint_agent::config::{parse_file, resolve, Flags};
use sealprint_agent::printer::PrinterUri;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_file(text) else {
        return;
    };
    let flags = Flags {
        data_dir: Some("/var/lib/sealprint-agent".into()),
        ..Flags::default()
    };
    let Ok(config) = resolve(file, flags) else {
        return;
    };
    assert!(!config.listen.is_empty());
    assert!((1..=300).contains(&config.heartbeat_interval.as_secs()));
    let mut names = HashSet::new();
    for p in &config.printers {
        assert!(names.insert(p.name.as_str()), "printer {:?} twice", p.name);
        assert!(p.uri.parse::<PrinterUri>().is_ok(), "{:?}", p.uri);
    }
});
