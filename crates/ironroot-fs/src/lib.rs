//! The one atomic file write of ironroot: temp file in the same directory, write, fsync,
//! rename, fsync the directory.
//!
//! ```text
//!   write_atomically(path, bytes)            write_secret_atomically(path, bytes)
//!            │                                          │  (mode 0600 at creation)
//!            └──────────────┬───────────────────────────┘
//!                           ▼
//!   <dir>/.<name>.<pid>.<n>.tmp  (create_new: O_EXCL)  ── write ── fsync
//!                           │
//!                  rename over <dir>/<name>  ── fsync <dir>
//!   any failure: temp file removed, old file intact, WriteError { step, path }
//! ```
//!
//! The principal functions are [`write_atomically`] (public files: certificates, CRLs,
//! witness state) and [`write_secret_atomically`] (keys, passphrases: created with mode
//! `0600`, never `chmod`ed after the fact). [`write_atomically_with`] streams the content
//! through a closure instead of taking a buffer.
//!
//! # Getting started
//!
//! ```
//! # fn main() -> Result<(), ironroot_fs::WriteError> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("ca.crt.pem");
//! ironroot_fs::write_atomically(&path, b"-----BEGIN CERTIFICATE-----\n")?;
//! ironroot_fs::write_atomically(&path, b"replaced whole")?;
//! assert_eq!(std::fs::read(&path).unwrap(), b"replaced whole");
//! # Ok(()) }
//! ```
//!
//! # Public API
//! - [`write_atomically`], [`write_secret_atomically`], [`write_atomically_with`]
//! - [`create_atomically`]: create-if-absent, first creator wins ([`Created`])
//! - [`Permissions`]: the mode a new file is created with
//! - [`WriteError`], [`Step`]: what failed, where
#![forbid(unsafe_code)]

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The permissions a freshly written file is created with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Permissions {
    /// Owner read/write, everyone read (`0644`, less any umask bits): certificates, CRLs,
    /// public state. Never group- or world-writable, whatever the umask.
    #[default]
    Public,
    /// Owner read/write only (`0600`), set when the file is created: keys, passphrases, PINs.
    OwnerOnly,
}

/// The step of an atomic write that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Creating the temporary file next to the target (missing or read-only directory ...).
    CreateTemp,
    /// Writing the content into the temporary file.
    Write,
    /// Flushing the temporary file to stable storage.
    SyncFile,
    /// Renaming the temporary file over the target.
    Rename,
    /// Linking the temporary file to the target ([`create_atomically`]).
    Link,
    /// Flushing the directory, so the rename survives a power cut. The new content is in place
    /// when this fails, but may not be durable.
    SyncDirectory,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::CreateTemp => "create a temporary file for",
            Step::Write => "write",
            Step::SyncFile => "flush",
            Step::Rename => "rename the temporary file over",
            Step::Link => "link the temporary file to",
            Step::SyncDirectory => "flush the directory of",
        })
    }
}

/// Why an atomic write failed. Except for [`Step::SyncDirectory`], the old file (if any) is
/// unchanged and no temporary file is left behind.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The target path has no file name or no parent directory (e.g. `/` or `..`).
    #[error("cannot write {}: the path names no file in a directory", path.display())]
    NotAFilePath {
        /// The rejected path.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("cannot {step} {}: {source}", path.display())]
    Io {
        /// Which step failed.
        step: Step,
        /// The target file (not the temporary one).
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl WriteError {
    /// The step that failed (`None` for a path that names no file).
    pub fn step(&self) -> Option<Step> {
        match self {
            WriteError::Io { step, .. } => Some(*step),
            WriteError::NotAFilePath { .. } => None,
        }
    }
}

/// Replaces `path` with `data` atomically (mode `0644`). See the crate documentation.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    write_atomically_with(path, Permissions::Public, |f| f.write_all(data))
}

/// Replaces `path` with the secret `data` atomically; the file is created with mode `0600`.
pub fn write_secret_atomically(path: &Path, data: &[u8]) -> Result<(), WriteError> {
    write_atomically_with(path, Permissions::OwnerOnly, |f| f.write_all(data))
}

/// What [`create_atomically`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Created {
    /// The file did not exist; it now holds the new content.
    New,
    /// The file already existed (another process created it first); it was left as it was.
    AlreadyExisted,
}

/// Creates `path` with `data` unless it already exists — whole or not at all, and the first
/// of several racing creators wins: the content is written and flushed in a temporary file,
/// which is then hard-linked to `path` (the link fails if `path` exists).
pub fn create_atomically(
    path: &Path,
    permissions: Permissions,
    data: &[u8],
) -> Result<Created, WriteError> {
    let (dir, tmp) = temp_path(path)?;
    let mut file = create_new(&tmp, permissions).map_err(io_err(Step::CreateTemp, path))?;
    let linked = file
        .write_all(data)
        .map_err(io_err(Step::Write, path))
        .and_then(|()| file.sync_all().map_err(io_err(Step::SyncFile, path)))
        .and_then(|()| {
            drop(file);
            match std::fs::hard_link(&tmp, path) {
                Ok(()) => Ok(Created::New),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Created::AlreadyExisted),
                Err(e) => Err(io_err(Step::Link, path)(e)),
            }
        });
    let _ = std::fs::remove_file(&tmp);
    let created = linked?;
    sync_dir(dir).map_err(io_err(Step::SyncDirectory, path))?;
    Ok(created)
}

/// The directory of `path` and a fresh temporary path in it.
fn temp_path(path: &Path) -> Result<(&Path, PathBuf), WriteError> {
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir, name),
        _ => {
            return Err(WriteError::NotAFilePath {
                path: path.to_owned(),
            });
        }
    };
    // `Path::parent` of a bare file name is "", which means the current directory.
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    Ok((dir, dir.join(temp_name(name))))
}

/// Maps an I/O error of `step` to a [`WriteError`] naming the target `path`.
fn io_err(step: Step, path: &Path) -> impl FnOnce(io::Error) -> WriteError {
    let path = path.to_owned();
    move |source| WriteError::Io { step, path, source }
}

/// Replaces `path` atomically with what `fill` writes into the temporary file. An error from
/// `fill` aborts the write ([`Step::Write`]): the old file stays as it was.
pub fn write_atomically_with(
    path: &Path,
    permissions: Permissions,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WriteError> {
    let (dir, tmp) = temp_path(path)?;
    let mut file = create_new(&tmp, permissions).map_err(io_err(Step::CreateTemp, path))?;
    let written = fill(&mut file)
        .map_err(io_err(Step::Write, path))
        .and_then(|()| file.sync_all().map_err(io_err(Step::SyncFile, path)))
        .and_then(|()| {
            drop(file);
            std::fs::rename(&tmp, path).map_err(io_err(Step::Rename, path))
        });
    if let Err(e) = written {
        // Best effort: the temp file is ours (created with O_EXCL); the old file is untouched.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(io_err(Step::SyncDirectory, path))
}

/// A temp name unique within this process and between processes: `.<name>.<pid>.<n>.tmp`.
fn temp_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.{n}.tmp", std::process::id()));
    tmp
}

fn create_new(tmp: &Path, permissions: Permissions) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    // The mode is given at creation: a secret is never readable by others, not even for
    // the moment between creating and a chmod.
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(match permissions {
            Permissions::Public => 0o644,
            Permissions::OwnerOnly => 0o600,
        });
    }
    #[cfg(not(unix))]
    let _ = permissions;
    options.open(tmp)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Windows cannot open a directory for flushing; its rename is made durable by NTFS' journal.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn content_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        write_atomically(&path, &[b'x'; 4096]).unwrap();
        write_atomically(&path, b"short").unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"short",
            "no tail of the old content"
        );
        write_atomically(&path, b"").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn secrets_are_created_owner_only_and_others_keep_the_default() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let key = dir.path().join("key.pem");
        write_secret_atomically(&key, b"secret").unwrap();
        assert_eq!(mode(&key), 0o600);
        // Replacing a world-readable file with a secret gives a 0600 file too (the new file's
        // mode, not the old one's).
        let public = dir.path().join("was-public");
        write_atomically(&public, b"public").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret_atomically(&public, b"now secret").unwrap();
        assert_eq!(mode(&public), 0o600);
        // Public files are at most 0644 (a umask can only take bits away), never writable by
        // others, and readable by the owner.
        let cert = dir.path().join("cert.pem");
        write_atomically(&cert, b"cert").unwrap();
        assert_eq!(mode(&cert) & !0o644, 0, "{:o}", mode(&cert));
        assert_eq!(mode(&cert) & 0o600, 0o600, "{:o}", mode(&cert));
    }

    #[test]
    fn missing_directory_is_a_typed_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("file");
        let err = write_atomically(&path, b"x").unwrap_err();
        assert_eq!(err.step(), Some(Step::CreateTemp));
        assert!(
            matches!(&err, WriteError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(err.to_string().contains("no-such-dir"), "{err}");
        // The same call into an existing directory succeeds.
        std::fs::create_dir(dir.path().join("no-such-dir")).unwrap();
        write_atomically(&path, b"x").unwrap();
    }

    #[test]
    fn failed_write_leaves_the_old_file_intact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("witness.json");
        write_atomically(&path, b"old state").unwrap();
        let err = write_atomically_with(&path, Permissions::Public, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert_eq!(err.step(), Some(Step::Write));
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old state");
        assert!(leftovers(dir.path()).is_empty(), "temp file removed");
    }

    #[test]
    fn failed_rename_leaves_the_target_and_no_temp_file() {
        // A non-empty directory where the file should go: rename refuses it (even for root).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("occupied");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"keep").unwrap();
        let err = write_secret_atomically(&path, b"x").unwrap_err();
        assert_eq!(err.step(), Some(Step::Rename));
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"keep");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn create_keeps_an_existing_file_and_creates_a_missing_one() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("signing.key");
        let first = create_atomically(&path, Permissions::OwnerOnly, b"first").unwrap();
        assert_eq!(first, Created::New);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let second = create_atomically(&path, Permissions::OwnerOnly, b"second").unwrap();
        assert_eq!(second, Created::AlreadyExisted);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"first",
            "the first creator wins"
        );
        assert!(leftovers(dir.path()).is_empty());
        let missing = dir.path().join("nope").join("k");
        assert_eq!(
            create_atomically(&missing, Permissions::OwnerOnly, b"x")
                .unwrap_err()
                .step(),
            Some(Step::CreateTemp)
        );
    }

    #[test]
    fn paths_without_a_file_name_are_refused() {
        for bad in ["/", ".."] {
            assert!(matches!(
                write_atomically(Path::new(bad), b"x"),
                Err(WriteError::NotAFilePath { .. })
            ));
        }
    }

    #[test]
    fn temp_names_are_hidden_and_unique() {
        let name = temp_name(std::ffi::OsStr::new("a"));
        let text = name.to_string_lossy();
        assert!(text.starts_with(".a.") && text.ends_with(".tmp"), "{text}");
        assert_ne!(
            name,
            temp_name(std::ffi::OsStr::new("a")),
            "unique per call"
        );
    }
}
