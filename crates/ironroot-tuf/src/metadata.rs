//! The metadata model: the signed envelope and the four top-level roles (root, timestamp,
//! snapshot, targets) with delegations. Fields the specification defines are checked for
//! type and range; unknown fields are ignored here and kept in the signed bytes (so signatures
//! and re-serving stay exact).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use serde_json::{Map, Value};

use crate::TufError;
use crate::canonical::encode_canonical;
use crate::key::{Key, parse_keys};
use crate::util::{parse_expires, unhex};

/// A parsed envelope `{"signed": ..., "signatures": [...]}` with the canonical bytes of
/// `signed`, which the signatures are over.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The `signed` object.
    pub signed: Value,
    /// The canonical JSON of `signed`.
    pub canonical: Vec<u8>,
    /// `(keyid, signature bytes)`; signatures that are not hex are dropped (they never count).
    pub signatures: Vec<(String, Vec<u8>)>,
}

impl Envelope {
    /// Parses metadata bytes of `role` (the name is only for messages).
    pub fn parse(role: &str, bytes: &[u8]) -> Result<Self, TufError> {
        let mut v: Value = serde_json::from_slice(bytes)
            .map_err(|e| TufError::malformed(role, alloc::format!("not JSON: {e}")))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| TufError::malformed(role, "not a JSON object"))?;
        let signed = obj
            .remove("signed")
            .filter(Value::is_object)
            .ok_or_else(|| TufError::malformed(role, "no signed object"))?;
        let sigs = obj
            .get("signatures")
            .and_then(Value::as_array)
            .ok_or_else(|| TufError::malformed(role, "no signatures array"))?;
        let mut signatures = Vec::with_capacity(sigs.len());
        for s in sigs {
            let keyid = s.get("keyid").and_then(Value::as_str);
            let sig = s.get("sig").and_then(Value::as_str);
            let (Some(keyid), Some(sig)) = (keyid, sig) else {
                return Err(TufError::malformed(role, "a signature lacks keyid or sig"));
            };
            if let Some(sig) = unhex(sig) {
                signatures.push((keyid.to_string(), sig));
            }
        }
        let canonical = encode_canonical(&signed)?;
        Ok(Self {
            signed,
            canonical,
            signatures,
        })
    }
}

/// Fields every role has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// `spec_version` (1.x.y).
    pub spec_version: String,
    /// `version` (≥ 1).
    pub version: u64,
    /// `expires` in seconds since the Unix epoch.
    pub expires: u64,
    /// `expires` as written.
    pub expires_str: String,
}

/// The keys and threshold of a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleKeys {
    /// Key ids allowed to sign (unique).
    pub keyids: Vec<String>,
    /// Distinct valid signatures needed (≥ 1).
    pub threshold: u64,
}

/// Root metadata: the keys of the top-level roles.
#[derive(Debug, Clone)]
pub struct Root {
    /// Common fields.
    pub common: Common,
    /// Whether files are published under versioned / hash-prefixed names.
    pub consistent_snapshot: bool,
    /// `keys`: key id → key.
    pub keys: BTreeMap<String, Key>,
    /// `roles`: root, targets, snapshot, timestamp.
    pub roles: BTreeMap<String, RoleKeys>,
}

/// A `meta` entry (of timestamp or snapshot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFile {
    /// Version of the metadata file.
    pub version: u64,
    /// Length in bytes, if signed.
    pub length: Option<u64>,
    /// Hashes (algorithm → lowercase hex), if signed.
    pub hashes: Option<BTreeMap<String, String>>,
}

/// Timestamp metadata: the current snapshot.
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// Common fields.
    pub common: Common,
    /// `meta["snapshot.json"]`.
    pub snapshot: MetaFile,
}

/// Snapshot metadata: the versions of all targets metadata.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Common fields.
    pub common: Common,
    /// `meta`: `ROLE.json` → entry.
    pub meta: BTreeMap<String, MetaFile>,
}

/// A target file's signed description.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// Length in bytes.
    pub length: u64,
    /// Hashes (algorithm → lowercase hex), at least one.
    pub hashes: BTreeMap<String, String>,
    /// `custom` (version, security counter, hardware class ...), if any.
    pub custom: Option<Value>,
}

/// A delegated targets role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegatedRole {
    /// Role name.
    pub name: String,
    /// Keys and threshold.
    pub keys: RoleKeys,
    /// Whether the search stops at this role when it matches.
    pub terminating: bool,
    /// Path patterns (`*` and `?` within one path segment), if given.
    pub paths: Option<Vec<String>>,
    /// Prefixes of the SHA-256 hex of the target path, if given.
    pub path_hash_prefixes: Option<Vec<String>>,
}

/// Delegations of a targets role.
#[derive(Debug, Clone)]
pub struct Delegations {
    /// Key id → key.
    pub keys: BTreeMap<String, Key>,
    /// Roles in priority order.
    pub roles: Vec<DelegatedRole>,
}

/// Targets metadata (top-level or delegated).
#[derive(Debug, Clone)]
pub struct Targets {
    /// Common fields.
    pub common: Common,
    /// Target path → description.
    pub targets: BTreeMap<String, TargetFile>,
    /// Delegations, if any.
    pub delegations: Option<Delegations>,
}

/// Field access with typed errors naming the role.
struct Obj<'a> {
    role: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(role: &'a str, v: &'a Value, what: &str) -> Result<Self, TufError> {
        let map = v
            .as_object()
            .ok_or_else(|| TufError::malformed(role, alloc::format!("{what} is not an object")))?;
        Ok(Self { role, map })
    }
    fn err(&self, field: &str, what: &str) -> TufError {
        TufError::malformed(self.role, alloc::format!("{field}: {what}"))
    }
    fn get(&self, field: &str) -> Result<&'a Value, TufError> {
        self.map
            .get(field)
            .ok_or_else(|| self.err(field, "missing"))
    }
    fn str(&self, field: &str) -> Result<&'a str, TufError> {
        self.get(field)?
            .as_str()
            .ok_or_else(|| self.err(field, "not a string"))
    }
    fn u64(&self, field: &str) -> Result<u64, TufError> {
        self.get(field)?
            .as_u64()
            .ok_or_else(|| self.err(field, "not a non-negative integer"))
    }
    fn opt_u64(&self, field: &str) -> Result<Option<u64>, TufError> {
        self.map.get(field).map(|_| self.u64(field)).transpose()
    }
    fn bool_or(&self, field: &str, default: bool) -> Result<bool, TufError> {
        match self.map.get(field) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| self.err(field, "not a boolean")),
        }
    }
    fn obj(&self, field: &str) -> Result<Obj<'a>, TufError> {
        Obj::new(self.role, self.get(field)?, field)
    }
    fn strings(&self, field: &str) -> Result<Vec<String>, TufError> {
        self.get(field)?
            .as_array()
            .ok_or_else(|| self.err(field, "not an array"))?
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.err(field, "not strings"))
            })
            .collect()
    }
}

fn common(o: &Obj<'_>, expected: &'static str) -> Result<Common, TufError> {
    let ty = o.str("_type")?;
    if ty != expected {
        return Err(TufError::WrongType {
            expected,
            got: ty.to_string(),
        });
    }
    let spec_version = o.str("spec_version")?.to_string();
    let mut parts = spec_version.split('.');
    let major_ok = parts.next() == Some("1");
    if !major_ok || parts.count() > 2 {
        return Err(TufError::SpecVersion {
            role: o.role.to_string(),
            version: spec_version,
        });
    }
    let version = o.u64("version")?;
    if version == 0 {
        return Err(o.err("version", "must be at least 1"));
    }
    let expires_str = o.str("expires")?.to_string();
    let expires =
        parse_expires(&expires_str).ok_or_else(|| o.err("expires", "not YYYY-MM-DDTHH:MM:SSZ"))?;
    Ok(Common {
        spec_version,
        version,
        expires,
        expires_str,
    })
}

fn role_keys(o: &Obj<'_>) -> Result<RoleKeys, TufError> {
    let keyids = o.strings("keyids")?;
    let unique: BTreeSet<&String> = keyids.iter().collect();
    if unique.len() != keyids.len() {
        return Err(o.err("keyids", "not unique"));
    }
    let threshold = o.u64("threshold")?;
    if threshold == 0 {
        return Err(o.err("threshold", "must be at least 1"));
    }
    Ok(RoleKeys { keyids, threshold })
}

fn hashes(o: &Obj<'_>, field: &str) -> Result<BTreeMap<String, String>, TufError> {
    let h = o.obj(field)?;
    let mut out = BTreeMap::new();
    for (alg, v) in h.map {
        let hex = v.as_str().ok_or_else(|| o.err(field, "not strings"))?;
        out.insert(alg.clone(), hex.to_string());
    }
    if out.is_empty() {
        return Err(o.err(field, "empty"));
    }
    Ok(out)
}

fn meta_file(o: &Obj<'_>) -> Result<MetaFile, TufError> {
    let version = o.u64("version")?;
    if version == 0 {
        return Err(o.err("version", "must be at least 1"));
    }
    Ok(MetaFile {
        version,
        length: o.opt_u64("length")?,
        hashes: o
            .map
            .contains_key("hashes")
            .then(|| hashes(o, "hashes"))
            .transpose()?,
    })
}

fn meta_map(o: &Obj<'_>) -> Result<BTreeMap<String, MetaFile>, TufError> {
    let meta = o.obj("meta")?;
    meta.map
        .iter()
        .map(|(name, v)| Ok((name.clone(), meta_file(&Obj::new(o.role, v, name)?)?)))
        .collect()
}

impl Root {
    /// From the `signed` object of root metadata.
    pub fn from_signed(signed: &Value) -> Result<Self, TufError> {
        let o = Obj::new("root", signed, "signed")?;
        let common = common(&o, "root")?;
        let keys = parse_keys("root", o.get("keys")?)?.into_iter().collect();
        let roles_obj = o.obj("roles")?;
        let mut roles = BTreeMap::new();
        for (name, v) in roles_obj.map {
            roles.insert(name.clone(), role_keys(&Obj::new("root", v, name)?)?);
        }
        for top in ["root", "targets", "snapshot", "timestamp"] {
            if !roles.contains_key(top) {
                return Err(o.err("roles", "a top-level role is missing"));
            }
        }
        Ok(Self {
            common,
            consistent_snapshot: o.bool_or("consistent_snapshot", false)?,
            keys,
            roles,
        })
    }
}

impl Timestamp {
    /// From the `signed` object of timestamp metadata.
    pub fn from_signed(signed: &Value) -> Result<Self, TufError> {
        let o = Obj::new("timestamp", signed, "signed")?;
        let common = common(&o, "timestamp")?;
        let mut meta = meta_map(&o)?;
        let snapshot = meta
            .remove("snapshot.json")
            .ok_or_else(|| o.err("meta", "no snapshot.json"))?;
        if !meta.is_empty() {
            return Err(o.err("meta", "only snapshot.json is allowed"));
        }
        Ok(Self { common, snapshot })
    }
}

impl Snapshot {
    /// From the `signed` object of snapshot metadata.
    pub fn from_signed(signed: &Value) -> Result<Self, TufError> {
        let o = Obj::new("snapshot", signed, "signed")?;
        Ok(Self {
            common: common(&o, "snapshot")?,
            meta: meta_map(&o)?,
        })
    }
}

impl Targets {
    /// From the `signed` object of (top-level or delegated) targets metadata.
    pub fn from_signed(role: &str, signed: &Value) -> Result<Self, TufError> {
        let o = Obj::new(role, signed, "signed")?;
        let common = common(&o, "targets")?;
        let mut targets = BTreeMap::new();
        for (path, v) in o.obj("targets")?.map {
            let t = Obj::new(role, v, path)?;
            targets.insert(
                path.clone(),
                TargetFile {
                    length: t.u64("length")?,
                    hashes: hashes(&t, "hashes")?,
                    custom: t.map.get("custom").cloned(),
                },
            );
        }
        let delegations = match o.map.get("delegations") {
            None => None,
            Some(d) => Some(delegations(&Obj::new(role, d, "delegations")?)?),
        };
        Ok(Self {
            common,
            targets,
            delegations,
        })
    }
}

fn delegations(o: &Obj<'_>) -> Result<Delegations, TufError> {
    if o.map.contains_key("succinct_roles") {
        return Err(o.err("succinct_roles", "not supported by this client"));
    }
    let keys = parse_keys(o.role, o.get("keys")?)?.into_iter().collect();
    let list = o
        .get("roles")?
        .as_array()
        .ok_or_else(|| o.err("roles", "not an array"))?;
    let mut roles = Vec::with_capacity(list.len());
    let mut names = BTreeSet::new();
    for r in list {
        let r = Obj::new(o.role, r, "delegated role")?;
        let name = r.str("name")?.to_string();
        if ["root", "targets", "snapshot", "timestamp"].contains(&name.as_str())
            || !names.insert(name.clone())
        {
            return Err(r.err("name", "a top-level or duplicate role name"));
        }
        let paths = r
            .map
            .contains_key("paths")
            .then(|| r.strings("paths"))
            .transpose()?;
        let prefixes = r
            .map
            .contains_key("path_hash_prefixes")
            .then(|| r.strings("path_hash_prefixes"))
            .transpose()?;
        if paths.is_some() == prefixes.is_some() {
            return Err(r.err(
                "paths",
                "exactly one of paths and path_hash_prefixes is required",
            ));
        }
        roles.push(DelegatedRole {
            name,
            keys: role_keys(&r)?,
            terminating: r.bool_or("terminating", false)?,
            paths,
            path_hash_prefixes: prefixes,
        });
    }
    Ok(Delegations { keys, roles })
}

impl DelegatedRole {
    /// Whether this role is trusted for `target` (path patterns or hash prefixes).
    pub fn covers(&self, target: &str) -> bool {
        if let Some(paths) = &self.paths {
            return paths.iter().any(|p| path_matches(p, target));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let h = crate::util::sha256_hex(target.as_bytes());
            return prefixes.iter().any(|p| h.starts_with(p.as_str()));
        }
        false
    }
}

/// python-tuf's path pattern rule: the same number of `/`-separated segments, each matched
/// with `*` (any run) and `?` (one character) that never cross a `/`.
pub fn path_matches(pattern: &str, target: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let t: Vec<&str> = target.split('/').collect();
    p.len() == t.len()
        && p.iter()
            .zip(&t)
            .all(|(p, t)| glob(p.as_bytes(), t.as_bytes()))
}

fn glob(p: &[u8], t: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point: linear in practice, no recursion.
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns_stay_within_segments() {
        assert!(path_matches("fw/*.bin", "fw/app.bin"));
        assert!(path_matches("fw/app-?.bin", "fw/app-2.bin"));
        assert!(!path_matches("fw/*", "fw/a/b.bin"));
        assert!(!path_matches("*.bin", "fw/app.bin"));
        assert!(path_matches("*", "x"));
    }
}
