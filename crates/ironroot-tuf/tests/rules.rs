//! The verification rules of the client workflow, one test each, against repositories built
//! with the crate's own tooling and served from memory (a file-backed transport and store).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ironroot_image::tools::{KeyType, PrivateKey};
use ironroot_tuf::repo::{Repository, RoleSetup, Written};
use ironroot_tuf::{
    Config, Envelope, FetchError, Key, KeyFileSigner, RoleKeys, Signer, Store, Transport, TufError,
    Updater, verify_threshold,
};

const DAY: u64 = 86_400;
const NOW: u64 = 1_900_000_000;

/// Files under a directory; counts fetches.
struct Dir(PathBuf);

impl Transport for Dir {
    fn fetch(&mut self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, FetchError> {
        match std::fs::read(self.0.join(path)) {
            Ok(b) if b.len() as u64 > max_len => Err(FetchError::TooLarge),
            Ok(b) => Ok(Some(b)),
            Err(_) => Ok(None),
        }
    }
}

#[derive(Default, Clone)]
struct Mem(BTreeMap<String, Vec<u8>>);

impl Store for Mem {
    fn load(&mut self, name: &str) -> Result<Option<Vec<u8>>, TufError> {
        Ok(self.0.get(name).cloned())
    }
    fn save(&mut self, name: &str, bytes: &[u8]) -> Result<(), TufError> {
        self.0.insert(name.into(), bytes.to_vec());
        Ok(())
    }
    fn remove(&mut self, name: &str) -> Result<(), TufError> {
        self.0.remove(name);
        Ok(())
    }
}

struct Fixture {
    _tmp: tempfile::TempDir,
    repo: Repository,
    root: KeyFileSigner,
    targets: KeyFileSigner,
    snapshot: KeyFileSigner,
    timestamp: KeyFileSigner,
}

fn signer(kind: KeyType) -> KeyFileSigner {
    KeyFileSigner::new(PrivateKey::generate(kind)).unwrap()
}

fn one<'a>(s: &'a KeyFileSigner) -> RoleSetup<'a> {
    RoleSetup {
        signers: vec![s],
        extra_keys: vec![],
        threshold: 1,
    }
}

impl Fixture {
    fn new(consistent: bool) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let f = |k| signer(k);
        let (root, targets) = (f(KeyType::Ed25519), f(KeyType::EcdsaP256));
        let (snapshot, timestamp) = (f(KeyType::Ed25519), f(KeyType::EcdsaP256));
        let exp = NOW + 30 * DAY;
        let (repo, _) = Repository::init(
            &tmp.path().join("r"),
            [
                &one(&root),
                &one(&targets),
                &one(&snapshot),
                &one(&timestamp),
            ],
            consistent,
            [exp; 4],
        )
        .unwrap();
        let fx = Fixture {
            _tmp: tmp,
            repo,
            root,
            targets,
            snapshot,
            timestamp,
        };
        fx.release("fw.bin", b"firmware v1");
        fx
    }
    fn release(&self, name: &str, content: &[u8]) {
        let mut w = Written::default();
        let exp = NOW + 30 * DAY;
        self.repo
            .add_target(name, content, None, &[&self.targets], exp, &mut w)
            .unwrap();
        self.repo.snapshot(&[&self.snapshot], exp, &mut w).unwrap();
        self.repo
            .timestamp(&[&self.timestamp], exp, &mut w)
            .unwrap();
        assert!(w.below_threshold.is_empty());
    }
    fn meta(&self) -> Dir {
        Dir(self.repo.metadata_dir())
    }
    fn path(&self, name: &str) -> PathBuf {
        self.repo.metadata_dir().join(name)
    }
    fn store(&self) -> Mem {
        let mut m = Mem::default();
        m.save(
            "root.json",
            &std::fs::read(self.path("1.root.json")).unwrap(),
        )
        .unwrap();
        m
    }
    fn refresh(&self, store: &mut Mem, now: u64) -> Result<(), TufError> {
        let mut u = Updater::new(store.clone(), now, Config::default())?;
        let r = u.refresh(&mut self.meta());
        *store = u.store().clone();
        r
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn valid_repository_refreshes_and_downloads_in_both_layouts() {
    for consistent in [true, false] {
        let fx = Fixture::new(consistent);
        let mut u = Updater::new(fx.store(), NOW, Config::default()).unwrap();
        u.refresh(&mut fx.meta()).unwrap();
        let info = u.target_info(&mut fx.meta(), "fw.bin").unwrap();
        let data = u
            .download_target(&mut Dir(fx.repo.targets_dir()), "fw.bin", &info)
            .unwrap();
        assert_eq!(data, b"firmware v1");
        for name in [
            "root.json",
            "timestamp.json",
            "snapshot.json",
            "targets.json",
        ] {
            assert!(u.store().0.contains_key(name), "{name}");
        }
    }
}

#[test]
fn duplicate_and_foreign_signatures_do_not_count_twice() {
    let fx = Fixture::new(true);
    let bytes = read(&fx.path("timestamp.json"));
    let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let sig = v["signatures"][0].clone();
    // The same signature three times, and a signature by a key outside the role.
    let stranger = signer(KeyType::Ed25519);
    let env = Envelope::parse("timestamp", &bytes).unwrap();
    let foreign = serde_json::json!({"keyid": stranger.key().key_id(),
        "sig": ironroot_tuf::sha256_hex(b"x")});
    v["signatures"] = serde_json::json!([sig, sig, sig, foreign]);
    let env2 = Envelope::parse("timestamp", &serde_json::to_vec(&v).unwrap()).unwrap();
    // Same key listed under two ids in the role: still one signer.
    let key = fx.timestamp.key().clone();
    let keys: BTreeMap<String, Key> =
        [("a".to_string(), key.clone()), (key.key_id(), key.clone())].into();
    let mut env3 = env2.clone();
    env3.signatures
        .push(("a".into(), env.signatures[0].1.clone()));
    let two = RoleKeys {
        keyids: vec!["a".into(), key.key_id()],
        threshold: 2,
    };
    assert!(matches!(
        verify_threshold("timestamp", &env3, &keys, &two),
        Err(TufError::Threshold {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    let one = RoleKeys {
        keyids: vec![key.key_id()],
        threshold: 1,
    };
    verify_threshold("timestamp", &env2, &keys, &one).unwrap();
    // A signature over different bytes never counts.
    let mut tampered = env.clone();
    tampered.canonical.push(b' ');
    assert!(verify_threshold("timestamp", &tampered, &keys, &one).is_err());
}

#[test]
fn expired_metadata_is_refused_at_each_step() {
    let fx = Fixture::new(true);
    let mut store = fx.store();
    let err = fx.refresh(&mut store, NOW + 31 * DAY).unwrap_err();
    assert!(
        matches!(err, TufError::Expired { ref role, .. } if role == "root"),
        "{err}"
    );
    // Timestamp expired while root is fine.
    let mut w = Written::default();
    fx.repo
        .timestamp(&[&fx.timestamp], NOW - 1, &mut w)
        .unwrap();
    let err = fx.refresh(&mut fx.store(), NOW).unwrap_err();
    assert!(
        matches!(err, TufError::Expired { ref role, .. } if role == "timestamp"),
        "{err}"
    );
    fx.repo
        .timestamp(&[&fx.timestamp], NOW + DAY, &mut w)
        .unwrap();
    fx.refresh(&mut fx.store(), NOW).unwrap();
}

#[test]
fn rollback_of_timestamp_snapshot_and_targets_is_refused() {
    let fx = Fixture::new(false);
    let mut store = fx.store();
    fx.refresh(&mut store, NOW).unwrap();
    let old = ["timestamp.json", "snapshot.json"].map(|n| read(&fx.path(n)));
    fx.release("fw2.bin", b"v2");
    fx.refresh(&mut store, NOW).unwrap();
    std::fs::write(fx.path("timestamp.json"), &old[0]).unwrap();
    assert!(matches!(
        fx.refresh(&mut store, NOW),
        Err(TufError::Rollback {
            trusted: 3,
            new: 2,
            ..
        })
    ));
    // Targets rollback: a new snapshot naming an older targets version.
    let mut w = Written::default();
    let mut snap: serde_json::Value = serde_json::from_slice(&old[1]).unwrap();
    snap["signed"]["version"] = serde_json::json!(4);
    let signed = snap["signed"].clone();
    let canon = ironroot_tuf::encode_canonical(&signed).unwrap();
    let s = fx.snapshot.sign(&canon).unwrap();
    let hex: String = s.iter().map(|b| format!("{b:02x}")).collect();
    snap["signatures"] = serde_json::json!([{"keyid": fx.snapshot.key().key_id(), "sig": hex}]);
    std::fs::write(fx.path("snapshot.json"), serde_json::to_vec(&snap).unwrap()).unwrap();
    // Timestamp v4 (above the trusted v3) naming that snapshot.
    fx.repo
        .timestamp(&[&fx.timestamp], NOW + DAY, &mut w)
        .unwrap();
    fx.repo
        .timestamp(&[&fx.timestamp], NOW + DAY, &mut w)
        .unwrap();
    let err = fx.refresh(&mut store, NOW).unwrap_err();
    assert!(
        matches!(err, TufError::Rollback { ref role, trusted: 3, new: 2 } if role.starts_with("targets.json")),
        "{err}"
    );
}

#[test]
fn snapshot_must_match_the_timestamp_and_targets_the_snapshot() {
    let fx = Fixture::new(true);
    let v2 = read(&fx.path("2.snapshot.json"));
    fx.release("fw2.bin", b"v2");
    let v3 = read(&fx.path("3.snapshot.json"));
    std::fs::write(fx.path("3.snapshot.json"), &v2).unwrap();
    let err = fx.refresh(&mut fx.store(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::LengthMismatch { .. } | TufError::HashMismatch { .. }
        ),
        "{err}"
    );
    std::fs::write(fx.path("3.snapshot.json"), &v3).unwrap();
    // Targets v3 served where snapshot names it, but with v2's content: hash mismatch.
    let t3 = read(&fx.path("3.targets.json"));
    std::fs::write(fx.path("3.targets.json"), read(&fx.path("2.targets.json"))).unwrap();
    let err = fx.refresh(&mut fx.store(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            TufError::LengthMismatch { .. } | TufError::HashMismatch { .. }
        ),
        "{err}"
    );
    std::fs::write(fx.path("3.targets.json"), &t3).unwrap();
    fx.refresh(&mut fx.store(), NOW).unwrap();
}

#[test]
fn oversized_metadata_and_targets_are_cut() {
    let fx = Fixture::new(true);
    let ts = read(&fx.path("timestamp.json"));
    let mut long = ts.clone();
    long.resize(20_000, b' ');
    std::fs::write(fx.path("timestamp.json"), &long).unwrap();
    assert!(matches!(
        fx.refresh(&mut fx.store(), NOW),
        Err(TufError::TooLarge { limit: 16_384, .. })
    ));
    std::fs::write(fx.path("timestamp.json"), &ts).unwrap();
    let mut u = Updater::new(fx.store(), NOW, Config::default()).unwrap();
    u.refresh(&mut fx.meta()).unwrap();
    let mut info = u.target_info(&mut fx.meta(), "fw.bin").unwrap();
    info.length -= 1;
    assert!(matches!(
        u.download_target(&mut Dir(fx.repo.targets_dir()), "fw.bin", &info),
        Err(TufError::TooLarge { .. })
    ));
}

#[test]
fn root_rotation_needs_both_thresholds_and_new_keys_reset_timestamp() {
    let fx = Fixture::new(true);
    let mut store = fx.store();
    fx.refresh(&mut store, NOW).unwrap();
    let new_root = signer(KeyType::EcdsaP256);
    let v1 = read(&fx.path("root.json"));
    let mut w = Written::default();
    fx.repo
        .rotate_root(&one(&new_root), &[], NOW + DAY * 30, &mut w)
        .unwrap();
    assert!(!w.below_threshold.is_empty());
    assert!(matches!(
        fx.refresh(&mut store, NOW),
        Err(TufError::Threshold { .. })
    ));
    std::fs::write(fx.path("root.json"), &v1).unwrap();
    fx.repo
        .rotate_root(&one(&new_root), &[&fx.root], NOW + DAY * 30, &mut w)
        .unwrap();
    fx.refresh(&mut store, NOW).unwrap();
    assert_eq!(store.0["root.json"], read(&fx.path("2.root.json")));
    // A root version that skips a number is refused.
    let mut v3: serde_json::Value = serde_json::from_slice(&read(&fx.path("2.root.json"))).unwrap();
    v3["signed"]["version"] = serde_json::json!(4);
    std::fs::write(fx.path("3.root.json"), serde_json::to_vec(&v3).unwrap()).unwrap();
    assert!(fx.refresh(&mut store, NOW).is_err());
}

#[test]
fn at_most_max_root_rotations_are_followed() {
    let fx = Fixture::new(true);
    let mut w = Written::default();
    for _ in 0..3 {
        fx.repo
            .rotate_root(&one(&fx.root), &[&fx.root], NOW + DAY, &mut w)
            .unwrap();
    }
    let cfg = Config {
        max_root_rotations: 2,
        ..Config::default()
    };
    let mut u = Updater::new(fx.store(), NOW, cfg).unwrap();
    u.refresh(&mut fx.meta()).unwrap();
    assert_eq!(u.root().common.version, 3);
}

#[test]
fn rotated_timestamp_keys_discard_the_trusted_timestamp() {
    // A new timestamp key in root v2 (spec 5.3.11): the old timestamp must not pin versions.
    let fx = Fixture::new(true);
    let mut store = fx.store();
    fx.refresh(&mut store, NOW).unwrap();
    let mut root: serde_json::Value = serde_json::from_slice(&read(&fx.path("root.json"))).unwrap();
    let new_ts = signer(KeyType::Ed25519);
    let id = new_ts.key().key_id();
    root["signed"]["keys"][&id] = new_ts.key().to_json().clone();
    root["signed"]["roles"]["timestamp"]["keyids"] = serde_json::json!([id]);
    root["signed"]["version"] = serde_json::json!(2);
    let canon = ironroot_tuf::encode_canonical(&root["signed"]).unwrap();
    let hex: String = fx
        .root
        .sign(&canon)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    root["signatures"] = serde_json::json!([{"keyid": fx.root.key().key_id(), "sig": hex}]);
    let bytes = serde_json::to_vec(&root).unwrap();
    std::fs::write(fx.path("2.root.json"), &bytes).unwrap();
    std::fs::write(fx.path("root.json"), &bytes).unwrap();
    // Timestamp v1 under the new key: lower than the trusted v2, accepted after the reset.
    let mut w = Written::default();
    std::fs::remove_file(fx.path("timestamp.json")).unwrap();
    fx.repo.timestamp(&[&new_ts], NOW + DAY, &mut w).unwrap();
    fx.refresh(&mut store, NOW).unwrap();
}

#[test]
fn delegated_role_paths_and_hash_prefixes_cover_targets() {
    use ironroot_tuf::{DelegatedRole, path_matches};
    let r = |name: &str, paths: &[&str], terminating| DelegatedRole {
        name: name.into(),
        keys: RoleKeys {
            keyids: vec![],
            threshold: 1,
        },
        terminating,
        paths: Some(paths.iter().map(|s| s.to_string()).collect()),
        path_hash_prefixes: None,
    };
    assert!(r("a", &["board-a/*"], true).covers("board-a/fw.bin"));
    assert!(!r("a", &["board-a/*"], true).covers("board-b/fw.bin"));
    assert!(path_matches("*/fw-?.bin", "x/fw-1.bin"));
    let h = DelegatedRole {
        path_hash_prefixes: Some(vec![ironroot_tuf::sha256_hex(b"t")[..2].to_string()]),
        paths: None,
        ..r("h", &[], false)
    };
    assert!(h.covers("t"));
}

/// Signs a `signed` object with `signers` into metadata bytes.
fn sign_doc(signed: serde_json::Value, signers: &[&KeyFileSigner]) -> Vec<u8> {
    let canon = ironroot_tuf::encode_canonical(&signed).unwrap();
    let sigs: Vec<serde_json::Value> = signers
        .iter()
        .map(|s| {
            let hex: String = s
                .sign(&canon)
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            serde_json::json!({"keyid": s.key().key_id(), "sig": hex})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"signed": signed, "signatures": sigs})).unwrap()
}

fn targets_doc(version: u64, targets: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"_type": "targets", "spec_version": "1.0.31", "version": version,
        "expires": ironroot_tuf::format_expires(NOW + DAY), "targets": targets})
}

#[test]
fn delegated_targets_are_searched_in_order_and_a_terminating_role_ends_the_search() {
    let fx = Fixture::new(false);
    let (ka, kb, kc) = (
        signer(KeyType::Ed25519),
        signer(KeyType::EcdsaP256),
        signer(KeyType::Ed25519),
    );
    let entry = |data: &[u8]| serde_json::json!({"length": data.len(), "hashes": {"sha256": ironroot_tuf::sha256_hex(data)}});
    // Top-level targets v3 delegating fw/* to a (non-terminating), b (terminating), c.
    let mut top = targets_doc(3, serde_json::json!({}));
    let mut keys = serde_json::Map::new();
    for k in [&ka, &kb, &kc] {
        keys.insert(k.key().key_id(), k.key().to_json().clone());
    }
    let role = |name: &str, k: &KeyFileSigner, terminating: bool| {
        serde_json::json!({"name": name,
        "keyids": [k.key().key_id()], "threshold": 1, "terminating": terminating, "paths": ["fw/*"]})
    };
    top["delegations"] = serde_json::json!({"keys": keys, "roles": [
        role("a", &ka, false), role("b", &kb, true), role("c", &kc, false)]});
    let dir = fx.repo.metadata_dir();
    std::fs::write(dir.join("targets.json"), sign_doc(top, &[&fx.targets])).unwrap();
    std::fs::write(
        dir.join("a.json"),
        sign_doc(
            targets_doc(1, serde_json::json!({"fw/a.bin": entry(b"A")})),
            &[&ka],
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("b.json"),
        sign_doc(
            targets_doc(1, serde_json::json!({"fw/b.bin": entry(b"B")})),
            &[&kb],
        ),
    )
    .unwrap();
    // c is signed by a's key, not its own: refused if it is ever consulted.
    std::fs::write(
        dir.join("c.json"),
        sign_doc(
            targets_doc(1, serde_json::json!({"fw/c.bin": entry(b"C")})),
            &[&ka],
        ),
    )
    .unwrap();
    let snap = serde_json::json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 3,
        "expires": ironroot_tuf::format_expires(NOW + DAY), "meta": {
            "targets.json": {"version": 3}, "a.json": {"version": 1}, "b.json": {"version": 1}, "c.json": {"version": 1}}});
    std::fs::write(dir.join("snapshot.json"), sign_doc(snap, &[&fx.snapshot])).unwrap();
    let mut w = Written::default();
    fx.repo
        .timestamp(&[&fx.timestamp], NOW + DAY, &mut w)
        .unwrap();

    let mut u = Updater::new(fx.store(), NOW, Config::default()).unwrap();
    u.refresh(&mut fx.meta()).unwrap();
    // Found in a (first in order), in b (after a did not have it).
    assert_eq!(u.target_info(&mut fx.meta(), "fw/a.bin").unwrap().length, 1);
    assert_eq!(u.target_info(&mut fx.meta(), "fw/b.bin").unwrap().length, 1);
    // b is terminating: c is never consulted, so its bad signature does not matter either.
    assert!(matches!(
        u.target_info(&mut fx.meta(), "fw/c.bin"),
        Err(TufError::UnknownTarget(_))
    ));
    assert!(u.targets("c").is_none());
    // Outside every delegated path: not found, no delegated role loaded for it.
    assert!(matches!(
        u.target_info(&mut fx.meta(), "other/x.bin"),
        Err(TufError::UnknownTarget(_))
    ));
    // Make b non-terminating: now c is consulted, and its wrong key refuses it.
    let mut top = targets_doc(4, serde_json::json!({}));
    top["delegations"] = serde_json::json!({"keys": keys, "roles": [
        role("a", &ka, false), role("b", &kb, false), role("c", &kc, false)]});
    std::fs::write(dir.join("targets.json"), sign_doc(top, &[&fx.targets])).unwrap();
    let snap = serde_json::json!({"_type": "snapshot", "spec_version": "1.0.31", "version": 4,
        "expires": ironroot_tuf::format_expires(NOW + DAY), "meta": {
            "targets.json": {"version": 4}, "a.json": {"version": 1}, "b.json": {"version": 1}, "c.json": {"version": 1}}});
    std::fs::write(dir.join("snapshot.json"), sign_doc(snap, &[&fx.snapshot])).unwrap();
    fx.repo
        .timestamp(&[&fx.timestamp], NOW + DAY, &mut w)
        .unwrap();
    let mut u = Updater::new(fx.store(), NOW, Config::default()).unwrap();
    u.refresh(&mut fx.meta()).unwrap();
    let err = u.target_info(&mut fx.meta(), "fw/c.bin").unwrap_err();
    assert!(
        matches!(err, TufError::Threshold { ref role, .. } if role == "c"),
        "{err}"
    );
}
