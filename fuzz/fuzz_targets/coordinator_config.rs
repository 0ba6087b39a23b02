//! The coordinator's configuration file (TOML) on arbitrary text, parsed and resolved as
//! `sealprint-coordinator serve` does (no files are read: the secrets' paths are only
//! checked later). Never panics, and resolving is a pure function of the file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_coordinator::app::config::{parse_file, resolve, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_file(text) else {
        return;
    };
    let once = resolve(file.clone(), Overrides::default());
    let twice = resolve(file, Overrides::default());
    assert_eq!(once.is_ok(), twice.is_ok());
    if let (Ok(a), Ok(b)) = (once, twice) {
        assert_eq!(a, b);
    }
});
