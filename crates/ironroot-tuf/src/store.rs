//! A [`Store`] in a directory (std): trusted metadata under unversioned names, each written
//! with the one atomic write of `ironroot-fs`.

use std::path::{Path, PathBuf};

use crate::TufError;
use crate::client::Store;
use crate::util::quote_file_name;

/// Trusted metadata files in one directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
    max_len: u64,
}

impl DirStore {
    /// A store in `dir` (created if missing); files larger than 16 MiB are not read.
    pub fn new(dir: &Path) -> Result<Self, TufError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TufError::Store(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_len: 16 * 1024 * 1024,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        // Names are ours (`root.json`, quoted role names), but never let one leave the directory.
        self.dir.join(quote_file_name(name))
    }
}

impl Store for DirStore {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, TufError> {
        let path = self.path(name);
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TufError::Store(format!("{}: {e}", path.display()))),
            Ok(m) if m.len() > self.max_len => return Ok(None),
            Ok(_) => {}
        }
        std::fs::read(&path)
            .map(Some)
            .map_err(|e| TufError::Store(format!("{}: {e}", path.display())))
    }

    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), TufError> {
        ironroot_fs::write_atomically(&self.path(name), bytes)
            .map_err(|e| TufError::Store(e.to_string()))
    }

    fn remove(&mut self, name: &str) -> Result<(), TufError> {
        match std::fs::remove_file(self.path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(TufError::Store(format!("{name}: {e}")))
            }
            _ => Ok(()),
        }
    }
}
