//! The service's log file: `agent.log` in a directory (the data directory's `logs`), rotated
//! by size: when it would pass [`MAX_BYTES`] it becomes `agent.1.log` (the older ones shift
//! up) and a new `agent.log` starts; [`KEEP`] rotated files are kept, older ones removed.
//!
//! A service has no console, so the binary installs a tracing subscriber writing here
//! (`Mutex<LogFile>` is a `MakeWriter`). It writes what tracing hands it: the agent logs ids
//! and hashes, never label bytes, names or addresses. Write errors are returned to tracing,
//! which drops the line: logging never stops the agent.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The current log file's name.
pub const FILE_NAME: &str = "agent.log";
/// The size at which the file is rotated.
pub const MAX_BYTES: u64 = 10 * 1024 * 1024;
/// How many rotated files are kept besides the current one.
pub const KEEP: usize = 4;

/// A size-rotated log file.
#[derive(Debug)]
pub struct LogFile {
    dir: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: File,
    written: u64,
}

/// The name of the `n`th rotated file (`agent.N.log`).
pub fn rotated_name(n: usize) -> String {
    format!("agent.{n}.log")
}

impl LogFile {
    /// Opens (appending) `dir/agent.log`, creating `dir`.
    ///
    /// # Errors
    /// The system's error.
    pub fn open(dir: &Path) -> io::Result<LogFile> {
        LogFile::with_limits(dir, MAX_BYTES, KEEP)
    }

    /// Like [`LogFile::open`] with other limits (tests).
    ///
    /// # Errors
    /// The system's error.
    pub fn with_limits(dir: &Path, max_bytes: u64, keep: usize) -> io::Result<LogFile> {
        fs::create_dir_all(dir)?;
        let file = open_append(&dir.join(FILE_NAME))?;
        let written = file.metadata()?.len();
        Ok(LogFile {
            dir: dir.to_owned(),
            max_bytes,
            keep,
            file,
            written,
        })
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        let _ = fs::remove_file(self.dir.join(rotated_name(self.keep)));
        for n in (1..self.keep).rev() {
            let from = self.dir.join(rotated_name(n));
            if from.exists() {
                fs::rename(&from, self.dir.join(rotated_name(n + 1)))?;
            }
        }
        let current = self.dir.join(FILE_NAME);
        if self.keep == 0 {
            fs::remove_file(&current)?;
        } else {
            // Rust opens files with FILE_SHARE_DELETE on Windows, so the open file can move.
            fs::rename(&current, self.dir.join(rotated_name(1)))?;
        }
        self.file = open_append(&current)?;
        self.written = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn rotates_by_size_and_keeps_a_few_files() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("logs");
        let mut log = LogFile::with_limits(&dir, 100, 2).expect("open");
        for i in 0..10 {
            log.write_all(format!("line {i:02} {}\n", "x".repeat(40)).as_bytes())
                .expect("write");
        }
        log.flush().expect("flush");
        assert_eq!(names(&dir), ["agent.1.log", "agent.2.log", "agent.log"]);
        let current = fs::read_to_string(dir.join(FILE_NAME)).expect("read");
        assert!(current.contains("line 09"), "{current}");
        for name in names(&dir) {
            let len = fs::metadata(dir.join(&name)).expect("meta").len();
            assert!(len <= 100, "{name}: {len}");
        }
        let oldest = fs::read_to_string(dir.join("agent.2.log")).expect("read");
        assert!(oldest.contains("line 04"), "{oldest}");
    }

    #[test]
    fn reopening_appends() {
        let tmp = tempfile::tempdir().expect("tmp");
        LogFile::open(tmp.path())
            .expect("open")
            .write_all(b"one\n")
            .expect("write");
        LogFile::open(tmp.path())
            .expect("open")
            .write_all(b"two\n")
            .expect("write");
        assert_eq!(
            fs::read_to_string(tmp.path().join(FILE_NAME)).expect("read"),
            "one\ntwo\n"
        );
    }
}
