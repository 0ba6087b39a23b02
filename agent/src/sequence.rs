//! The heartbeat counter: every heartbeat carries a number larger than any this device sent
//! before, across restarts, so the coordinator can refuse a replayed one.
//!
//! The counter is not written at every heartbeat: the data directory holds a ceiling
//! (`heartbeat.seq`), and a process hands out numbers below the ceiling it reserved at start,
//! reserving the next block (and writing it, atomically and synced) before it runs out. A
//! restart starts above the last ceiling, so no number is ever handed out twice; unused
//! numbers of a block are simply skipped.

use std::path::{Path, PathBuf};

use crate::identity::{write_private, IdentityError};

/// The file the ceiling is kept in, inside the data directory.
pub const SEQUENCE_FILE: &str = "heartbeat.seq";
/// How many numbers one write reserves.
const BLOCK: u64 = 1 << 16;

/// Hands out heartbeat counters.
#[derive(Debug)]
pub struct HeartbeatCounter {
    path: PathBuf,
    next: u64,
    ceiling: u64,
}

impl HeartbeatCounter {
    /// Reads the ceiling of `dir` and reserves the next block.
    ///
    /// # Errors
    /// [`IdentityError`] when the file is unreadable or corrupt, or the reservation cannot
    /// be written: the agent then does not start (it could repeat counters).
    pub fn load(dir: &Path) -> Result<HeartbeatCounter, IdentityError> {
        let path = dir.join(SEQUENCE_FILE);
        let start = match std::fs::read(&path) {
            Ok(b) => {
                let raw: [u8; 8] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| IdentityError::Corrupt {
                        path: path.clone(),
                        reason: "heartbeat counter is not 8 bytes".into(),
                    })?;
                u64::from_be_bytes(raw)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(IdentityError::Io { path, source }),
        };
        let mut c = HeartbeatCounter {
            path,
            next: start.saturating_add(1),
            ceiling: start,
        };
        c.reserve()?;
        Ok(c)
    }

    fn reserve(&mut self) -> Result<(), IdentityError> {
        let ceiling = self.ceiling.saturating_add(BLOCK);
        write_private(&self.path, &ceiling.to_be_bytes())?;
        self.ceiling = ceiling;
        Ok(())
    }

    /// The next counter.
    ///
    /// # Errors
    /// [`IdentityError`] when a block had to be reserved and could not be written: no
    /// number is handed out then (the heartbeat is skipped).
    pub fn issue(&mut self) -> Result<u64, IdentityError> {
        if self.next >= self.ceiling {
            self.reserve()?;
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_across_restarts_and_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = HeartbeatCounter::load(dir.path()).expect("loads");
        let first = c.issue().expect("n");
        let mut last = first;
        for _ in 0..(BLOCK + 5) {
            let n = c.issue().expect("n");
            assert!(n > last);
            last = n;
        }
        drop(c);
        let mut again = HeartbeatCounter::load(dir.path()).expect("loads");
        assert!(again.issue().expect("n") > last);
        std::fs::write(dir.path().join(SEQUENCE_FILE), b"bad").expect("writes");
        assert!(HeartbeatCounter::load(dir.path()).is_err());
    }
}
