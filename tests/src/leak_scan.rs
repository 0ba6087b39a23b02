//! Looks for a secret (a label's marker text) in every file under a directory: raw, base64
//! (standard and URL-safe alphabets, at each of the three byte alignments) and inside gzip
//! streams anywhere in a file. The end-to-end tests run it after the processes have stopped,
//! so every log line and store flush is on disk.
//!
//! It does not decrypt anything (encrypted copies are the point) and does not look inside
//! other compression formats.

use std::io::Read as _;
use std::path::Path;

use base64::Engine as _;

/// Largest decompressed size looked at per gzip stream.
const MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// The forms `needle` can take in a file: `(what, bytes)`.
fn forms(needle: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut forms = vec![("raw".to_owned(), needle.to_vec())];
    let engines = [
        ("base64", &base64::engine::general_purpose::STANDARD),
        ("base64url", &base64::engine::general_purpose::URL_SAFE),
    ];
    for (name, engine) in engines {
        for shift in 0..3 {
            // Encode behind `shift` filler bytes and keep only the characters that depend on
            // the needle alone: not the first group (filler) nor the last (padding).
            let mut data = vec![0u8; shift];
            data.extend_from_slice(needle);
            let text = engine.encode(&data);
            let skip = if shift == 0 { 0 } else { 4 };
            let keep = text.len().saturating_sub(4);
            if keep > skip + 8 {
                forms.push((
                    format!("{name} (shift {shift})"),
                    text.as_bytes()[skip..keep].to_vec(),
                ));
            }
        }
    }
    forms
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The gzip streams in `bytes`, inflated (as much of each as decodes).
fn inflated(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(3).position(|w| w == [0x1f, 0x8b, 0x08]) {
        let start = at + pos;
        let mut data = Vec::new();
        let decoder = flate2::read::GzDecoder::new(&bytes[start..]);
        // A truncated or corrupt stream still yields what decoded before the damage.
        let _ = decoder.take(MAX_INFLATED).read_to_end(&mut data);
        if !data.is_empty() {
            out.push(data);
        }
        at = start + 1;
    }
    out
}

/// Every file under `dir` holding `needle` in any form, as `"path: form"`.
pub fn leaks(dir: &Path, needle: &[u8]) -> Vec<String> {
    let forms = forms(needle);
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            for (form, f) in &forms {
                if contains(&bytes, f) {
                    hits.push(format!("{}: {form}", p.display()));
                }
            }
            for inner in inflated(&bytes) {
                for (form, f) in &forms {
                    if contains(&inner, f) {
                        hits.push(format!("{}: gzip, {form}", p.display()));
                    }
                }
            }
        }
    }
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    #[test]
    fn finds_raw_base64_and_gzip_copies_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let needle = b"PII0123456789abcdef";
        let label = [&b"^XA^FDJane "[..], needle, b" Doe^FS^XZ"].concat();
        std::fs::write(dir.path().join("clean"), b"nothing here").expect("write");
        std::fs::write(dir.path().join("raw"), &label).expect("write");
        for (i, shift) in ["", "x", "xy"].iter().enumerate() {
            let text = base64::engine::general_purpose::STANDARD
                .encode([shift.as_bytes(), &label].concat());
            std::fs::write(dir.path().join(format!("b64-{i}")), text).expect("write");
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&label).expect("gzip");
        let mut file = b"header".to_vec();
        file.extend(gz.finish().expect("gzip"));
        std::fs::write(dir.path().join("gz"), file).expect("write");
        let mut hits = leaks(dir.path(), needle);
        hits.sort();
        let files: Vec<&str> = hits
            .iter()
            .filter_map(|h| Path::new(h.split(':').next()?).file_name()?.to_str())
            .collect();
        for f in ["raw", "b64-0", "b64-1", "b64-2", "gz"] {
            assert!(files.contains(&f), "{f} not found in {hits:?}");
        }
        assert!(!files.contains(&"clean"), "{hits:?}");
    }
}
