//! Repository tooling (std): create, sign and bump TUF metadata in a directory that a plain
//! HTTP server (or python-tuf's `ngclient`) can serve.
//!
//! ```text
//!  DIR/metadata/1.root.json 2.root.json … root.json   (every root version, and the latest)
//!               N.targets.json targets.json            (versioned for consistent snapshots)
//!               N.snapshot.json snapshot.json
//!               timestamp.json
//!  DIR/targets/NAME and DIR/targets/DIR/SHA256.NAME   (both layouts)
//! ```
//!
//! Signatures by fewer keys than a threshold are still written (several parties may sign in
//! turn, and tests craft such metadata): [`Written::below_threshold`] says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::TufError;
use crate::canonical::encode_canonical;
use crate::key::Key;
use crate::metadata::{Envelope, Root, Snapshot, Targets, Timestamp};
use crate::signer::Signer;
use crate::util::{format_expires, sha256_hex};

/// The `spec_version` this tooling writes.
pub const SPEC_VERSION: &str = "1.0.31";

/// Why a repository operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// Reading a repository file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing a repository file failed.
    #[error(transparent)]
    Write(#[from] ironroot_fs::WriteError),
    /// A key could not be loaded or used.
    #[error("key: {0}")]
    Key(String),
    /// A signer failed.
    #[error("signing: {0}")]
    Sign(String),
    /// Existing metadata is invalid.
    #[error(transparent)]
    Tuf(#[from] TufError),
    /// The operation does not make sense for this repository.
    #[error("{0}")]
    Usage(String),
}

/// Keys and threshold of one role.
pub struct RoleSetup<'a> {
    /// The role's signers (their public keys are listed; all of them sign).
    pub signers: Vec<&'a dyn Signer>,
    /// Extra public keys listed without signing now.
    pub extra_keys: Vec<Key>,
    /// The threshold.
    pub threshold: u64,
}

/// What an operation wrote.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Written {
    /// Files written, relative to the repository directory.
    pub files: Vec<String>,
    /// Roles signed by fewer keys of the role than its threshold (clients refuse them).
    pub below_threshold: Vec<String>,
}

/// A repository directory.
#[derive(Debug, Clone)]
pub struct Repository {
    dir: PathBuf,
}

fn role_json(setup: &RoleSetup<'_>, keys: &mut Map<String, Value>) -> Value {
    let mut ids = Vec::new();
    for key in setup
        .signers
        .iter()
        .map(|s| s.key().clone())
        .chain(setup.extra_keys.iter().cloned())
    {
        let id = key.key_id();
        keys.insert(id.clone(), key.to_json().clone());
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    json!({"keyids": ids, "threshold": setup.threshold})
}

impl Repository {
    /// Opens an existing repository directory.
    pub fn open(dir: &Path) -> Result<Self, RepoError> {
        let repo = Self {
            dir: dir.to_path_buf(),
        };
        repo.read("root.json")?;
        Ok(repo)
    }

    /// The metadata directory (serve it as the metadata base URL).
    pub fn metadata_dir(&self) -> PathBuf {
        self.dir.join("metadata")
    }

    /// The targets directory (serve it as the targets base URL).
    pub fn targets_dir(&self) -> PathBuf {
        self.dir.join("targets")
    }

    /// Creates version 1 of every top-level role: root (listing the four roles' keys), an
    /// empty targets, snapshot and timestamp. `expires` is seconds since the Unix epoch per role
    /// (root, targets, snapshot, timestamp).
    pub fn init(
        dir: &Path,
        roles: [&RoleSetup<'_>; 4],
        consistent_snapshot: bool,
        expires: [u64; 4],
    ) -> Result<(Self, Written), RepoError> {
        let repo = Self {
            dir: dir.to_path_buf(),
        };
        if repo.metadata_dir().join("root.json").exists() {
            return Err(RepoError::Usage(format!(
                "{} already holds a repository",
                dir.display()
            )));
        }
        std::fs::create_dir_all(repo.targets_dir()).map_err(|source| RepoError::Io {
            path: repo.targets_dir(),
            source,
        })?;
        let mut keys = Map::new();
        let mut role_map = Map::new();
        for (name, setup) in ["root", "targets", "snapshot", "timestamp"]
            .iter()
            .zip(roles)
        {
            role_map.insert((*name).into(), role_json(setup, &mut keys));
        }
        let root = json!({
            "_type": "root", "spec_version": SPEC_VERSION, "version": 1,
            "expires": format_expires(expires[0]), "consistent_snapshot": consistent_snapshot,
            "keys": keys, "roles": role_map,
        });
        let mut w = Written::default();
        repo.write_root(&root, &[&roles[0].signers], None, &mut w)?;
        let targets = json!({
            "_type": "targets", "spec_version": SPEC_VERSION, "version": 1,
            "expires": format_expires(expires[1]), "targets": {},
        });
        repo.write_role("targets", targets, &roles[1].signers, &mut w)?;
        repo.snapshot(&roles[2].signers, expires[2], &mut w)?;
        repo.timestamp(&roles[3].signers, expires[3], &mut w)?;
        Ok((repo, w))
    }

    fn read(&self, name: &str) -> Result<Envelope, RepoError> {
        let path = self.metadata_dir().join(name);
        let bytes = std::fs::read(&path).map_err(|source| RepoError::Io { path, source })?;
        Ok(Envelope::parse(name, &bytes)?)
    }

    /// The current root.
    pub fn root(&self) -> Result<Root, RepoError> {
        Ok(Root::from_signed(&self.read("root.json")?.signed)?)
    }

    /// The current top-level targets.
    pub fn targets(&self) -> Result<Targets, RepoError> {
        Ok(Targets::from_signed(
            "targets",
            &self.read("targets.json")?.signed,
        )?)
    }

    fn sign(&self, signed: &Value, signers: &[&[&dyn Signer]]) -> Result<Vec<u8>, RepoError> {
        let canonical = encode_canonical(signed)?;
        let mut sigs: BTreeMap<String, String> = BTreeMap::new();
        for s in signers.iter().flat_map(|l| l.iter()) {
            let sig = s.sign(&canonical)?;
            sigs.insert(s.key().key_id(), crate::util::hex(&sig));
        }
        let signatures: Vec<Value> = sigs
            .into_iter()
            .map(|(keyid, sig)| json!({"keyid": keyid, "sig": sig}))
            .collect();
        let mut out =
            serde_json::to_vec_pretty(&json!({"signed": signed, "signatures": signatures}))
                .map_err(|e| RepoError::Usage(e.to_string()))?;
        out.push(b'\n');
        Ok(out)
    }

    fn below(&self, role: &str, bytes: &[u8], w: &mut Written) -> Result<(), RepoError> {
        let env = Envelope::parse(role, bytes)?;
        let root = self.root()?;
        let rk = root
            .roles
            .get(role)
            .ok_or_else(|| TufError::UnknownRole(role.into()))?;
        if crate::verify::verify_threshold(role, &env, &root.keys, rk).is_err() {
            w.below_threshold.push(role.into());
        }
        Ok(())
    }

    fn put(&self, name: &str, bytes: &[u8], w: &mut Written) -> Result<(), RepoError> {
        ironroot_fs::write_atomically(&self.metadata_dir().join(name), bytes)?;
        w.files.push(format!("metadata/{name}"));
        Ok(())
    }

    fn write_root(
        &self,
        signed: &Value,
        signers: &[&[&dyn Signer]],
        old: Option<&Root>,
        w: &mut Written,
    ) -> Result<(), RepoError> {
        std::fs::create_dir_all(self.metadata_dir()).map_err(|source| RepoError::Io {
            path: self.metadata_dir(),
            source,
        })?;
        let bytes = self.sign(signed, signers)?;
        let version = signed["version"].as_u64().unwrap_or(1);
        self.put(&format!("{version}.root.json"), &bytes, w)?;
        self.put("root.json", &bytes, w)?;
        let env = Envelope::parse("root", &bytes)?;
        let new = Root::from_signed(&env.signed)?;
        for (who, root) in [
            ("root (by itself)", Some(&new)),
            ("root (by the previous root)", old),
        ] {
            let Some(root) = root else { continue };
            let rk = root
                .roles
                .get("root")
                .ok_or_else(|| TufError::UnknownRole("root".into()))?;
            if crate::verify::verify_threshold(who, &env, &root.keys, rk).is_err() {
                w.below_threshold.push(who.into());
            }
        }
        Ok(())
    }

    fn write_role(
        &self,
        role: &str,
        signed: Value,
        signers: &[&dyn Signer],
        w: &mut Written,
    ) -> Result<(), RepoError> {
        let bytes = self.sign(&signed, &[signers])?;
        let version = signed["version"].as_u64().unwrap_or(1);
        if role != "timestamp" {
            self.put(&format!("{version}.{role}.json"), &bytes, w)?;
        }
        self.put(&format!("{role}.json"), &bytes, w)?;
        self.below(role, &bytes, w)
    }

    /// Adds (or replaces) target `name` with `content` and `custom` fields, as a new targets
    /// version; the file is stored under both `NAME` and `DIR/SHA256.NAME`.
    pub fn add_target(
        &self,
        name: &str,
        content: &[u8],
        custom: Option<Value>,
        signers: &[&dyn Signer],
        expires: u64,
        w: &mut Written,
    ) -> Result<(), RepoError> {
        if name.is_empty()
            || name.starts_with('/')
            || name
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(RepoError::Usage(format!("invalid target name {name:?}")));
        }
        let hash = sha256_hex(content);
        let hashed = match name.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/{hash}.{base}"),
            None => format!("{hash}.{name}"),
        };
        for rel in [name.to_string(), hashed] {
            let path = self.targets_dir().join(&rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| RepoError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            ironroot_fs::write_atomically(&path, content)?;
            w.files.push(format!("targets/{rel}"));
        }
        let mut signed = self.read("targets.json")?.signed;
        let mut entry = json!({"length": content.len(), "hashes": {"sha256": hash}});
        if let Some(custom) = custom {
            entry["custom"] = custom;
        }
        signed["targets"][name] = entry;
        bump(&mut signed, expires);
        self.write_role("targets", signed, signers, w)
    }

    /// A new snapshot version naming the current targets metadata (version, length, hashes).
    pub fn snapshot(
        &self,
        signers: &[&dyn Signer],
        expires: u64,
        w: &mut Written,
    ) -> Result<(), RepoError> {
        let targets =
            std::fs::read(self.metadata_dir().join("targets.json")).map_err(|source| {
                RepoError::Io {
                    path: self.metadata_dir().join("targets.json"),
                    source,
                }
            })?;
        let version =
            Targets::from_signed("targets", &Envelope::parse("targets", &targets)?.signed)?
                .common
                .version;
        let prev = self
            .read("snapshot.json")
            .ok()
            .and_then(|e| Snapshot::from_signed(&e.signed).ok())
            .map_or(0, |s| s.common.version);
        let signed = json!({
            "_type": "snapshot", "spec_version": SPEC_VERSION, "version": prev + 1,
            "expires": format_expires(expires),
            "meta": {"targets.json": {"version": version, "length": targets.len(),
                                      "hashes": {"sha256": sha256_hex(&targets)}}},
        });
        self.write_role("snapshot", signed, signers, w)
    }

    /// A new timestamp version naming the current snapshot (version, length, hashes).
    pub fn timestamp(
        &self,
        signers: &[&dyn Signer],
        expires: u64,
        w: &mut Written,
    ) -> Result<(), RepoError> {
        let path = self.metadata_dir().join("snapshot.json");
        let snapshot = std::fs::read(&path).map_err(|source| RepoError::Io { path, source })?;
        let version = Snapshot::from_signed(&Envelope::parse("snapshot", &snapshot)?.signed)?
            .common
            .version;
        let prev = self
            .read("timestamp.json")
            .ok()
            .and_then(|e| Timestamp::from_signed(&e.signed).ok())
            .map_or(0, |t| t.common.version);
        let signed = json!({
            "_type": "timestamp", "spec_version": SPEC_VERSION, "version": prev + 1,
            "expires": format_expires(expires),
            "meta": {"snapshot.json": {"version": version, "length": snapshot.len(),
                                       "hashes": {"sha256": sha256_hex(&snapshot)}}},
        });
        self.write_role("timestamp", signed, signers, w)
    }

    /// Root version N+1 with `new_root` as the root role (other roles unchanged), signed by
    /// `old_signers` (the trusted root's keys) and by the new root role's signers.
    pub fn rotate_root(
        &self,
        new_root: &RoleSetup<'_>,
        old_signers: &[&dyn Signer],
        expires: u64,
        w: &mut Written,
    ) -> Result<(), RepoError> {
        let old = self.root()?;
        let mut signed = self.read("root.json")?.signed;
        let mut keys = Map::new();
        let root_role = role_json(new_root, &mut keys);
        signed["roles"]["root"] = root_role;
        // Keep the keys other roles still use, add the new root keys.
        let used: Vec<String> = signed["roles"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .flat_map(|r| r["keyids"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let old_keys = signed["keys"].as_object().cloned().unwrap_or_default();
        for (id, k) in old_keys {
            if used.contains(&id) {
                keys.entry(id).or_insert(k);
            }
        }
        signed["keys"] = Value::Object(keys);
        bump(&mut signed, expires);
        self.write_root(&signed, &[old_signers, &new_root.signers], Some(&old), w)
    }
}

fn bump(signed: &mut Value, expires: u64) {
    let v = signed["version"].as_u64().unwrap_or(0);
    signed["version"] = json!(v + 1);
    signed["expires"] = json!(format_expires(expires));
}
