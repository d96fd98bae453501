//! The client workflow of the specification (§5 "Detailed client workflow"): root rotation
//! loop, timestamp, snapshot, targets, delegated targets search, target download. I/O goes
//! through two small traits, [`Transport`] (the untrusted mirror) and [`Store`] (the trusted
//! metadata kept between runs, under unversioned names), so a device and the CLI share it.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::TufError;
use crate::key::Key;
use crate::metadata::{
    Envelope, MetaFile, RoleKeys, Root, Snapshot, TargetFile, Targets, Timestamp,
};
use crate::util::quote_file_name;
use crate::verify::{check_length_and_hashes, verify_threshold};

/// Why a transport could not deliver a file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchError {
    /// The file is longer than the bound given (the transport stopped reading there).
    TooLarge,
    /// Anything else (connection, timeout, server error), described.
    Failed(String),
}

/// The untrusted mirror: fetches a file by its path relative to a base (metadata or targets).
pub trait Transport {
    /// The file's bytes, `Ok(None)` if the mirror has no such file (HTTP 403/404, no file), or
    /// [`FetchError::TooLarge`] as soon as more than `max_len` bytes arrive.
    fn fetch(&mut self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, FetchError>;
}

/// Trusted metadata kept between runs, under unversioned names (`root.json`, ...).
pub trait Store {
    /// The stored bytes of `name`, if any.
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, TufError>;
    /// Stores `bytes` as `name`, atomically (all or nothing).
    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), TufError>;
    /// Removes `name` if present.
    fn remove(&mut self, name: &str) -> Result<(), TufError>;
}

/// Bounds of one update; the defaults are python-tuf's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Root versions followed in one refresh.
    pub max_root_rotations: u32,
    /// Targets roles visited in one target search.
    pub max_delegations: u32,
    /// Largest root metadata fetched.
    pub root_max_length: u64,
    /// Largest timestamp metadata fetched.
    pub timestamp_max_length: u64,
    /// Largest snapshot metadata fetched when timestamp signs no length.
    pub snapshot_max_length: u64,
    /// Largest targets metadata fetched when snapshot signs no length.
    pub targets_max_length: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_root_rotations: 256,
            max_delegations: 32,
            root_max_length: 512_000,
            timestamp_max_length: 16_384,
            snapshot_max_length: 2_000_000,
            targets_max_length: 5_000_000,
        }
    }
}

/// Verifies root metadata against its own root role (a trusted root to start from).
pub fn verify_trusted_root(bytes: &[u8]) -> Result<Root, TufError> {
    let env = Envelope::parse("root", bytes)?;
    let root = Root::from_signed(&env.signed)?;
    verify_threshold("root", &env, &root.keys, role(&root, "root")?)?;
    Ok(root)
}

fn role<'a>(root: &'a Root, name: &str) -> Result<&'a RoleKeys, TufError> {
    root.roles
        .get(name)
        .ok_or_else(|| TufError::UnknownRole(name.to_string()))
}

/// The state of one client: trusted metadata and the fixed time of this update.
#[derive(Debug)]
pub struct Updater<S: Store> {
    store: S,
    config: Config,
    now: u64,
    root: Root,
    timestamp: Option<Timestamp>,
    snapshot: Option<Snapshot>,
    targets: BTreeMap<String, Targets>,
}

impl<S: Store> Updater<S> {
    /// Starts from the trusted `root.json` in `store`; `now` (seconds since the Unix epoch) is
    /// the one time every expiry of this update is checked against.
    pub fn new(mut store: S, now: u64, config: Config) -> Result<Self, TufError> {
        let bytes = store.load("root.json")?.ok_or(TufError::Usage(
            "no trusted root.json in the metadata directory (run init)",
        ))?;
        let root = verify_trusted_root(&bytes)?;
        Ok(Self {
            store,
            config,
            now,
            root,
            timestamp: None,
            snapshot: None,
            targets: BTreeMap::new(),
        })
    }

    /// The trusted root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The trusted timestamp, after [`Self::refresh`].
    pub fn timestamp(&self) -> Option<&Timestamp> {
        self.timestamp.as_ref()
    }

    /// The trusted snapshot, after [`Self::refresh`].
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Trusted targets metadata of `role` (`targets` after a refresh; delegated roles once a
    /// search visited them).
    pub fn targets(&self, role: &str) -> Option<&Targets> {
        self.targets.get(role)
    }

    /// The store (to inspect what was persisted).
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The whole top-level update: root rotations, timestamp, snapshot, targets (§5.3–5.6).
    pub fn refresh<T: Transport>(&mut self, t: &mut T) -> Result<(), TufError> {
        self.update_root(t)?;
        self.update_timestamp(t)?;
        self.update_snapshot(t)?;
        self.load_targets(t, "targets", None)?;
        Ok(())
    }

    fn expired(&self, role: &str, c: &crate::metadata::Common) -> Result<(), TufError> {
        if c.expires <= self.now {
            return Err(TufError::Expired {
                role: role.to_string(),
                version: c.version,
                expires: c.expires_str.clone(),
            });
        }
        Ok(())
    }

    fn fetch<T: Transport>(&self, t: &mut T, path: &str, max: u64) -> Result<Vec<u8>, TufError> {
        match t.fetch(path, max) {
            Ok(Some(b)) if b.len() as u64 <= max => Ok(b),
            Ok(Some(_)) | Err(FetchError::TooLarge) => Err(TufError::TooLarge {
                name: path.to_string(),
                limit: max,
            }),
            Ok(None) => Err(TufError::NotFound(path.to_string())),
            Err(FetchError::Failed(reason)) => Err(TufError::Transport {
                name: path.to_string(),
                reason,
            }),
        }
    }

    /// §5.3: follow N+1.root.json while the mirror has it; each new root is signed by the
    /// threshold of the trusted root and by its own threshold, with version N+1.
    fn update_root<T: Transport>(&mut self, t: &mut T) -> Result<(), TufError> {
        let original = self.root.clone();
        for _ in 0..self.config.max_root_rotations {
            let next = self.root.common.version.saturating_add(1);
            let name = format!("{next}.root.json");
            let bytes = match t.fetch(&name, self.config.root_max_length) {
                Ok(None) => break,
                Ok(Some(b)) => b,
                Err(FetchError::TooLarge) => {
                    return Err(TufError::TooLarge {
                        name,
                        limit: self.config.root_max_length,
                    });
                }
                Err(FetchError::Failed(reason)) => {
                    return Err(TufError::Transport { name, reason });
                }
            };
            let env = Envelope::parse("root", &bytes)?;
            let new = Root::from_signed(&env.signed)?;
            verify_threshold(
                "root (by the trusted root)",
                &env,
                &self.root.keys,
                role(&self.root, "root")?,
            )?;
            if new.common.version != next {
                return Err(TufError::VersionMismatch {
                    role: "root".into(),
                    expected: next,
                    got: new.common.version,
                });
            }
            verify_threshold("root (by itself)", &env, &new.keys, role(&new, "root")?)?;
            self.store.save("root.json", &bytes)?;
            self.root = new;
        }
        self.expired("root", &self.root.common)?;
        // §5.3.11: new timestamp or snapshot keys invalidate what the old keys signed.
        let keys_of = |r: &Root, name: &str| -> Option<Vec<Option<Vec<u8>>>> {
            let rk = r.roles.get(name)?;
            Some(
                rk.keyids
                    .iter()
                    .map(|id| r.keys.get(id).and_then(Key::identity))
                    .collect(),
            )
        };
        for name in ["timestamp", "snapshot"] {
            if keys_of(&original, name) != keys_of(&self.root, name) {
                self.store.remove("timestamp.json")?;
                self.store.remove("snapshot.json")?;
            }
        }
        Ok(())
    }

    /// Parses and signature-checks stored metadata; anything invalid counts as absent.
    fn load_local(
        &mut self,
        file: &str,
        role: &str,
        keys: &BTreeMap<String, Key>,
        rk: &RoleKeys,
    ) -> Option<Envelope> {
        let bytes = self.store.load(file).ok().flatten()?;
        let env = Envelope::parse(role, &bytes).ok()?;
        verify_threshold(role, &env, keys, rk).ok()?;
        Some(env)
    }

    /// §5.4: timestamp.json, checked against the trusted timestamp for rollback.
    fn update_timestamp<T: Transport>(&mut self, t: &mut T) -> Result<(), TufError> {
        let (keys, rk) = (
            self.root.keys.clone(),
            role(&self.root, "timestamp")?.clone(),
        );
        let prev = self
            .load_local("timestamp.json", "timestamp", &keys, &rk)
            .and_then(|e| Timestamp::from_signed(&e.signed).ok());
        let bytes = self.fetch(t, "timestamp.json", self.config.timestamp_max_length)?;
        let env = Envelope::parse("timestamp", &bytes)?;
        let new = Timestamp::from_signed(&env.signed)?;
        verify_threshold("timestamp", &env, &keys, &rk)?;
        let mut keep_prev = false;
        if let Some(prev) = &prev {
            if new.common.version < prev.common.version {
                return Err(TufError::Rollback {
                    role: "timestamp".into(),
                    trusted: prev.common.version,
                    new: new.common.version,
                });
            }
            if new.snapshot.version < prev.snapshot.version {
                return Err(TufError::Rollback {
                    role: "snapshot (named by timestamp)".into(),
                    trusted: prev.snapshot.version,
                    new: new.snapshot.version,
                });
            }
            keep_prev = new.common.version == prev.common.version;
        }
        let ts = if keep_prev { prev.unwrap_or(new) } else { new };
        self.expired("timestamp", &ts.common)?;
        if !keep_prev {
            self.store.save("timestamp.json", &bytes)?;
        }
        self.timestamp = Some(ts);
        Ok(())
    }

    /// §5.5: the snapshot the timestamp names (version, length, hashes), no rollback of any
    /// targets role against the trusted snapshot.
    fn update_snapshot<T: Transport>(&mut self, t: &mut T) -> Result<(), TufError> {
        let meta = self
            .timestamp
            .as_ref()
            .ok_or(TufError::Usage("no timestamp"))?
            .snapshot
            .clone();
        let (keys, rk) = (
            self.root.keys.clone(),
            role(&self.root, "snapshot")?.clone(),
        );
        let prev = self
            .load_local("snapshot.json", "snapshot", &keys, &rk)
            .and_then(|e| Snapshot::from_signed(&e.signed).ok());
        if let Some(p) = &prev
            && p.common.version == meta.version
            && p.common.expires > self.now
        {
            self.snapshot = prev;
            return Ok(());
        }
        let path = if self.root.consistent_snapshot {
            format!("{}.snapshot.json", meta.version)
        } else {
            "snapshot.json".into()
        };
        let max = meta.length.unwrap_or(self.config.snapshot_max_length);
        let bytes = self.fetch(t, &path, max)?;
        check_length_and_hashes(&path, &bytes, meta.length, meta.hashes.as_ref())?;
        let env = Envelope::parse("snapshot", &bytes)?;
        let new = Snapshot::from_signed(&env.signed)?;
        verify_threshold("snapshot", &env, &keys, &rk)?;
        if new.common.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: "snapshot".into(),
                expected: meta.version,
                got: new.common.version,
            });
        }
        if let Some(prev) = &prev {
            for (name, old) in &prev.meta {
                let now = new.meta.get(name).map_or(0, |m| m.version);
                if now < old.version {
                    return Err(TufError::Rollback {
                        role: format!("{name} (named by snapshot)"),
                        trusted: old.version,
                        new: now,
                    });
                }
            }
        }
        self.expired("snapshot", &new.common)?;
        self.store.save("snapshot.json", &bytes)?;
        self.snapshot = Some(new);
        Ok(())
    }

    /// §5.6: targets metadata of `role` (top-level when `parent` is `None`), with the version,
    /// length and hashes the snapshot names and the keys its delegator trusts.
    fn load_targets<T: Transport>(
        &mut self,
        t: &mut T,
        role_name: &str,
        parent: Option<&str>,
    ) -> Result<(), TufError> {
        if self.targets.contains_key(role_name) {
            return Ok(());
        }
        let (keys, rk) = match parent {
            None => (self.root.keys.clone(), role(&self.root, "targets")?.clone()),
            Some(p) => {
                let d = self
                    .targets
                    .get(p)
                    .and_then(|t| t.delegations.as_ref())
                    .ok_or_else(|| TufError::UnknownRole(role_name.to_string()))?;
                let r = d
                    .roles
                    .iter()
                    .find(|r| r.name == role_name)
                    .ok_or_else(|| TufError::UnknownRole(role_name.to_string()))?;
                (d.keys.clone(), r.keys.clone())
            }
        };
        let snapshot = self
            .snapshot
            .as_ref()
            .ok_or(TufError::Usage("no snapshot"))?;
        let meta: MetaFile = snapshot
            .meta
            .get(&format!("{role_name}.json"))
            .cloned()
            .ok_or_else(|| TufError::NotFound(format!("{role_name}.json in snapshot")))?;
        let file = format!("{}.json", quote_file_name(role_name));
        if let Some(env) = self.load_local(&file, role_name, &keys, &rk)
            && let Ok(local) = Targets::from_signed(role_name, &env.signed)
            && local.common.version == meta.version
            && local.common.expires > self.now
        {
            self.targets.insert(role_name.to_string(), local);
            return Ok(());
        }
        let path = if self.root.consistent_snapshot {
            format!("{}.{file}", meta.version)
        } else {
            file.clone()
        };
        let max = meta.length.unwrap_or(self.config.targets_max_length);
        let bytes = self.fetch(t, &path, max)?;
        check_length_and_hashes(&path, &bytes, meta.length, meta.hashes.as_ref())?;
        let env = Envelope::parse(role_name, &bytes)?;
        let new = Targets::from_signed(role_name, &env.signed)?;
        verify_threshold(role_name, &env, &keys, &rk)?;
        if new.common.version != meta.version {
            return Err(TufError::VersionMismatch {
                role: role_name.to_string(),
                expected: meta.version,
                got: new.common.version,
            });
        }
        self.expired(role_name, &new.common)?;
        self.store.save(&file, &bytes)?;
        self.targets.insert(role_name.to_string(), new);
        Ok(())
    }

    /// §5.7: the signed description of `target`, searching delegations depth-first in
    /// priority order (a matching terminating role ends the search), at most
    /// `max_delegations` roles. Call after [`Self::refresh`].
    pub fn target_info<T: Transport>(
        &mut self,
        t: &mut T,
        target: &str,
    ) -> Result<TargetFile, TufError> {
        if !self.targets.contains_key("targets") {
            return Err(TufError::Usage("refresh before looking up targets"));
        }
        let mut stack: Vec<(String, Option<String>)> = alloc::vec![("targets".into(), None)];
        let mut visited = BTreeSet::new();
        let mut budget = self.config.max_delegations;
        while budget > 0 {
            let Some((name, parent)) = stack.pop() else {
                break;
            };
            if !visited.insert(name.clone()) {
                continue;
            }
            budget -= 1;
            self.load_targets(t, &name, parent.as_deref())?;
            let Some(md) = self.targets.get(&name) else {
                break;
            };
            if let Some(info) = md.targets.get(target) {
                return Ok(info.clone());
            }
            if let Some(d) = &md.delegations {
                let mut children = Vec::new();
                for r in d.roles.iter().filter(|r| r.covers(target)) {
                    children.push((r.name.clone(), Some(name.clone())));
                    if r.terminating {
                        stack.clear();
                        break;
                    }
                }
                children.reverse();
                stack.extend(children);
            }
        }
        Err(TufError::UnknownTarget(target.to_string()))
    }

    /// Downloads `target` from the targets mirror: at most its signed length is read, then
    /// length and every hash are checked. With consistent snapshots the file is fetched as
    /// `DIR/HASH.NAME` (SHA-256 when signed, else the first hash).
    pub fn download_target<T: Transport>(
        &self,
        t: &mut T,
        target: &str,
        info: &TargetFile,
    ) -> Result<Vec<u8>, TufError> {
        let path = if self.root.consistent_snapshot {
            let hash = info
                .hashes
                .get("sha256")
                .or_else(|| info.hashes.values().next())
                .ok_or_else(|| TufError::malformed(target, "no hashes"))?;
            match target.rsplit_once('/') {
                Some((dir, base)) => format!("{dir}/{hash}.{base}"),
                None => format!("{hash}.{target}"),
            }
        } else {
            target.to_string()
        };
        let bytes = self.fetch(t, &path, info.length)?;
        check_length_and_hashes(target, &bytes, Some(info.length), Some(&info.hashes))?;
        Ok(bytes)
    }
}
