//! Printer URIs (`[[printer]] uri` in the agent's config, `--printer NAME=URI`, CUPS
//! `device-uri`s turned into URIs) on arbitrary strings. Never panics; an accepted URI prints
//! in a normal form that parses back to the same URI and prints the same again; an IPP URI's
//! normal form goes into an IPP request (`printer-uri`) that decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealprint_agent::printer::fuzzing::{cups_server, ipp_request_round_trip};
use sealprint_agent::printer::{PrinterConfig, PrinterUri};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = PrinterConfig::from_flag(s);
    let _ = cups_server(s);
    let Ok(uri) = s.parse::<PrinterUri>() else {
        return;
    };
    let shown = uri.to_string();
    let back: PrinterUri = shown
        .parse()
        .unwrap_or_else(|e| panic!("{shown:?} (from {s:?}) does not parse: {e}"));
    assert_eq!(back, uri, "{shown:?}");
    assert_eq!(back.to_string(), shown);
    if let PrinterUri::Ipp { .. } = uri {
        let values = ["printer-state", "printer-uuid"];
        let (id, texts, offset, len) =
            ipp_request_round_trip(7, &shown, "requested-attributes", &values)
                .unwrap_or_else(|| panic!("request for {shown:?} does not decode"));
        assert_eq!((id, offset), (7, len));
        assert_eq!(texts, values);
    }
});
