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

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Why the witness file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// Reading, writing, syncing or renaming the file failed.
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

    /// Replaces the file atomically and durably: write a temporary file, fsync it, rename it
    /// over the witness, fsync the directory.
    pub async fn write(&self, note: &str) -> Result<(), WitnessError> {
        let path = self.path.clone();
        let note = note.to_owned();
        tokio::task::spawn_blocking(move || {
            let io = |source| WitnessError::Io {
                path: path.clone(),
                source,
            };
            let tmp = path.with_extension("tmp");
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(note.as_bytes()).map_err(io)?;
            f.sync_all().map_err(io)?;
            drop(f);
            std::fs::rename(&tmp, &path).map_err(io)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io)?;
            }
            Ok(())
        })
        .await
        .expect("witness write task does not panic")
    }
}
