//! The log's files in an ironroot data directory `D`:
//!
//! ```text
//!  D/audit/                 mode 0700
//!  D/audit/checkpoint.key   mode 0600  the checkpoint signing key (signed-note signer key string)
//!  D/audit/checkpoint.pub             its verifier key string: hand it to auditors
//!  D/audit/witness                    the latest checkpoint, outside the database (rollback check)
//! ```
//!
//! The signing key is created on the first open of an empty log, from the operating system's
//! random number generator, written to a private temporary file, fsynced and then linked into
//! place, so a crash never leaves a half-written key and two processes opening the log at the
//! same time end up with the same key. A key file readable by group or others is refused (like
//! OpenSSH does), and its contents never appear in an error message.
//!
//! The verifier key (`checkpoint.pub`, also printed by `ironroot audit key`) is public: give it
//! to whoever must check proofs or verify the log, through a channel an attacker of the server
//! does not control. Verification with a key taken from the same disk as the database only
//! proves integrity against someone who changed the database but not the key files.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::note::{NoteError, NoteSigner, NoteVerifier};
use crate::witness::WitnessFile;

/// Name of the log's sub-directory in a data directory.
pub const AUDIT_DIR: &str = "audit";
/// File name of the signing key.
pub const KEY_FILE: &str = "checkpoint.key";
/// File name of the verifier key.
pub const VERIFIER_FILE: &str = "checkpoint.pub";
/// File name of the witness checkpoint.
pub const WITNESS_FILE: &str = "witness";
/// Prefix of the origin (log name) of a log created by [`AuditDir::load_or_create_signer`];
/// 16 random hex digits follow, so two installations never share a log name.
pub const ORIGIN_PREFIX: &str = "ironroot/audit/";

/// Why the key files could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file or directory operation failed.
    #[error("audit key file {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key or verifier file could not be written atomically (the old one is unchanged).
    #[error("audit key file: {0}")]
    Write(#[source] ironroot_fs::WriteError),
    /// The signing key file can be read by group or others.
    #[error(
        "audit signing key {path} has mode {mode:03o}: it must be readable by its owner only \
         (chmod 600 {path})"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file does not hold a valid key string (its contents are never shown).
    #[error("audit key file {path} is not a valid key: {source}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: NoteError,
    },
    /// `checkpoint.pub` is not the public half of `checkpoint.key`.
    #[error("{verifier} does not match the signing key {key}")]
    Mismatch {
        /// The signing key file.
        key: PathBuf,
        /// The verifier key file.
        verifier: PathBuf,
    },
    /// The key file does not exist.
    #[error("no audit key at {0} (it is created when the audit log is first opened for writing)")]
    Missing(PathBuf),
    /// The log already has entries or a witness, but its signing key is gone: a new key would
    /// start a second, unrelated log.
    #[error(
        "the audit log has entries but its signing key {0} is missing: restore it from a backup"
    )]
    LostKey(PathBuf),
    /// A new key could not be generated.
    #[error("generating the audit signing key: {0}")]
    Generate(NoteError),
}

/// The audit files of one data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditDir {
    path: PathBuf,
}

impl AuditDir {
    /// The audit files of data directory `data_dir` (they live in `data_dir/audit`).
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(AUDIT_DIR),
        }
    }

    /// `D/audit`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `D/audit/checkpoint.key`.
    pub fn key_path(&self) -> PathBuf {
        self.path.join(KEY_FILE)
    }

    /// `D/audit/checkpoint.pub`.
    pub fn verifier_path(&self) -> PathBuf {
        self.path.join(VERIFIER_FILE)
    }

    /// The witness file `D/audit/witness`.
    pub fn witness(&self) -> WitnessFile {
        WitnessFile::new(self.path.join(WITNESS_FILE))
    }

    /// Whether a signing key file exists.
    pub fn has_key(&self) -> bool {
        self.key_path().exists()
    }

    /// Loads the signing key, or creates one named `ironroot/audit/<16 hex digits>` if there is
    /// none. Only call this for an empty log (see [`KeyError::LostKey`]).
    pub fn load_or_create_signer(&self) -> Result<NoteSigner, KeyError> {
        if self.has_key() {
            return self.load_signer();
        }
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|_| KeyError::Generate(NoteError::Random))?;
        let hex: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        self.create_signer(&format!("{ORIGIN_PREFIX}{hex}"))
    }

    /// Creates a signing key for a log named `origin` unless a key already exists, in which
    /// case that key is loaded and returned (another process won the race).
    pub fn create_signer(&self, origin: &str) -> Result<NoteSigner, KeyError> {
        let signer = NoteSigner::generate(origin).map_err(KeyError::Generate)?;
        create_private_dir(&self.path)?;
        let key = self.key_path();
        let mut text = signer.to_key_string(); // zeroized on drop
        text.push('\n');
        // Create-if-absent: the first creator wins, atomically (temp file + hard link).
        let created = ironroot_fs::create_atomically(
            &key,
            ironroot_fs::Permissions::OwnerOnly,
            text.as_bytes(),
        )
        .map_err(KeyError::Write)?;
        if created == ironroot_fs::Created::AlreadyExisted {
            return self.load_signer();
        }
        self.write_verifier(signer.verifier())?;
        Ok(signer)
    }

    /// Loads the signing key and makes sure `checkpoint.pub` matches it (writing it if absent).
    pub fn load_signer(&self) -> Result<NoteSigner, KeyError> {
        let path = self.key_path();
        let io = |source| KeyError::Io {
            path: path.clone(),
            source,
        };
        let file = std::fs::File::open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KeyError::Missing(path.clone())
            } else {
                io(e)
            }
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions { path, mode });
            }
        }
        let mut text = Zeroizing::new(String::new());
        std::io::Read::read_to_string(&mut &file, &mut text).map_err(io)?;
        let signer = NoteSigner::parse(text.trim_end()).map_err(|source| KeyError::Malformed {
            path: path.clone(),
            source,
        })?;
        match self.read_verifier_file()? {
            None => self.write_verifier(signer.verifier())?,
            Some(v) if &v == signer.verifier() => {}
            Some(_) => {
                return Err(KeyError::Mismatch {
                    key: path,
                    verifier: self.verifier_path(),
                });
            }
        }
        Ok(signer)
    }

    /// Loads the verifier key from `checkpoint.pub`.
    pub fn load_verifier(&self) -> Result<NoteVerifier, KeyError> {
        self.read_verifier_file()?
            .ok_or_else(|| KeyError::Missing(self.verifier_path()))
    }

    fn read_verifier_file(&self) -> Result<Option<NoteVerifier>, KeyError> {
        let path = self.verifier_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => NoteVerifier::parse(text.trim_end())
                .map(Some)
                .map_err(|source| KeyError::Malformed { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    fn write_verifier(&self, verifier: &NoteVerifier) -> Result<(), KeyError> {
        ironroot_fs::write_atomically(&self.verifier_path(), format!("{verifier}\n").as_bytes())
            .map_err(KeyError::Write)
    }
}

fn create_private_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| KeyError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_private_once_and_reloaded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AuditDir::new(tmp.path());
        let signer = dir.load_or_create_signer().unwrap();
        assert!(signer.name().starts_with(ORIGIN_PREFIX));
        assert_eq!(signer.name().len(), ORIGIN_PREFIX.len() + 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.key_path()), 0o600);
            assert_eq!(mode(dir.path()), 0o700);
        }
        let again = dir.load_or_create_signer().unwrap();
        assert_eq!(again.verifier(), signer.verifier());
        assert_eq!(&dir.load_verifier().unwrap(), signer.verifier());
        // A second create keeps the first key (the race loser loads the winner's key).
        let raced = dir.create_signer("ironroot/audit/other").unwrap();
        assert_eq!(raced.verifier(), signer.verifier());
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [KEY_FILE, VERIFIER_FILE]);
    }

    #[cfg(unix)]
    #[test]
    fn a_key_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp = tempfile::tempdir().unwrap();
        let dir = AuditDir::new(tmp.path());
        dir.load_or_create_signer().unwrap();
        std::fs::set_permissions(dir.key_path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        match dir.load_signer() {
            Err(KeyError::Permissions { mode: 0o644, .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn broken_and_mismatched_key_files_are_named_without_their_contents() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = AuditDir::new(tmp.path());
        let signer = dir.load_or_create_signer().unwrap();
        // checkpoint.pub replaced with another log's key.
        let other = NoteSigner::generate("ironroot/audit/other").unwrap();
        std::fs::write(dir.verifier_path(), format!("{}\n", other.verifier())).unwrap();
        assert!(matches!(dir.load_signer(), Err(KeyError::Mismatch { .. })));
        // A damaged key file: the error names the file, never its (secret) contents.
        let secret = signer.to_key_string();
        let damaged = secret.replace("PRIVATE+KEY+", "PRIVATE+KEY");
        std::fs::write(dir.key_path(), &damaged).unwrap();
        let err = dir.load_signer().unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(matches!(err, KeyError::Malformed { .. }), "{shown}");
        let seed_part = secret.rsplit('+').next().unwrap();
        assert!(!shown.contains(seed_part), "{shown}");
        std::fs::remove_file(dir.key_path()).unwrap();
        assert!(matches!(dir.load_signer(), Err(KeyError::Missing(_))));
    }
}
