//! The witness file: a copy of the latest checkpoint kept outside the database.
//!
//! A database restored from an older backup is internally consistent — its leaves, tiles and
//! checkpoints all agree — so nothing inside it can reveal the rollback. The writer therefore
//! also writes each new checkpoint to a file (by default in the data directory, ideally on other
//! storage or copied off the machine) before acknowledging the batch. Verification and the
//! writer's startup compare the database with it: a witness for a larger tree, or for a
//! different root at a size the database has, means the database was rolled back or forked.
//!
//! Limit: an attacker who can replace both the database and the witness file with older copies
//! is not detected by this file alone; checkpoints held elsewhere (an operator's copy, passed to
//! verification as trusted checkpoints) close that gap.

use std::path::{Path, PathBuf};

use crate::checkpoint::Checkpoint;

/// Why the witness file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// Reading or locking the file failed.
    #[error("witness file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("witness file {0} is not UTF-8 text")]
    Encoding(PathBuf),
    /// Replacing the file atomically failed (the old witness is unchanged).
    #[error("witness file: {0}")]
    Write(#[from] ironroot_fs::WriteError),
}

/// A witness file at a fixed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessFile {
    path: PathBuf,
}

impl WitnessFile {
    /// The witness at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint note, or `None` if the file does not exist.
    pub async fn read(&self) -> Result<Option<String>, WitnessError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| WitnessError::Encoding(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(WitnessError::Io { path, source }),
        })
        .await
        .expect("witness read task does not panic")
    }

    /// Replaces the file atomically and durably with `note`, unless it already holds a
    /// checkpoint for a tree at least as large: write a temporary file, fsync it, rename it over
    /// the witness, fsync the directory.
    ///
    /// Several processes may append to one log (a server and `ironroot policy create` beside
    /// it), so the whole read-compare-replace runs under an exclusive lock on `<path>.lock`:
    /// two writers never share the temporary file, and a slow writer never moves the witness
    /// back to an older checkpoint than a faster one already wrote.
    pub async fn write(&self, note: &str) -> Result<(), WitnessError> {
        let path = self.path.clone();
        let note = note.to_owned();
        tokio::task::spawn_blocking(move || {
            let io = |source| WitnessError::Io {
                path: path.clone(),
                source,
            };
            let lock = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path.with_extension("lock"))
                .map_err(io)?;
            lock.lock().map_err(io)?;
            if let (Some(new), Ok(current)) = (note_size(&note), std::fs::read(&path))
                && std::str::from_utf8(&current)
                    .ok()
                    .and_then(note_size)
                    .is_some_and(|current| current >= new)
            {
                return Ok(());
            }
            ironroot_fs::write_atomically(&path, note.as_bytes())?;
            // The lock is released when `lock` is dropped.
            Ok(())
        })
        .await
        .expect("witness write task does not panic")
    }
}

/// The tree size a checkpoint note states (its body parsed by [`Checkpoint::parse_text`]),
/// without checking the signature: only used to keep the witness from moving backwards, never
/// to trust a checkpoint.
fn note_size(note: &str) -> Option<u64> {
    let (body, _signatures) = note.split_once("\n\n")?;
    Checkpoint::parse_text(&format!("{body}\n"))
        .ok()
        .map(|c| c.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(size: u64) -> String {
        // Base64 of a 32-byte all-zero root hash.
        let root = format!("{}=", "A".repeat(43));
        format!("example.com/log\n{size}\n{root}\n\n\u{2014} example.com/log sig\n")
    }

    #[tokio::test]
    async fn witness_never_moves_back_to_a_smaller_tree() {
        let dir = tempfile::tempdir().unwrap();
        let w = WitnessFile::new(dir.path().join("witness"));
        assert_eq!(w.read().await.unwrap(), None);
        w.write(&note(5)).await.unwrap();
        w.write(&note(7)).await.unwrap();
        // A slower writer of the same log arrives late with an older checkpoint.
        w.write(&note(6)).await.unwrap();
        assert_eq!(w.read().await.unwrap().unwrap(), note(7));
        w.write(&note(8)).await.unwrap();
        assert_eq!(w.read().await.unwrap().unwrap(), note(8));
    }

    #[tokio::test]
    async fn concurrent_writers_leave_the_largest_checkpoint_intact() {
        let dir = tempfile::tempdir().unwrap();
        let w = WitnessFile::new(dir.path().join("witness"));
        let mut tasks = Vec::new();
        for size in 1..=64u64 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move { w.write(&note(size)).await }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(w.read().await.unwrap().unwrap(), note(64));
    }

    #[test]
    fn size_is_read_from_the_second_line_only() {
        assert_eq!(note_size(&note(42)), Some(42));
        assert_eq!(note_size("origin\nnot a number\n"), None);
        // The same canonical form as every other checkpoint: no sign, no leading zero.
        assert_eq!(note_size(&note(42).replacen("42", "+42", 1)), None);
        assert_eq!(note_size(&note(42).replacen("42", "042", 1)), None);
        assert_eq!(note_size(""), None);
    }
}
