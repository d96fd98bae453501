//! `ironroot ota client` / `ironroot ota repo` against python-tuf 7 both ways, and every
//! attack the TUF client must refuse (exit 1, one line), each also shown accepted when valid.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Proc, free_port};

pub(crate) fn ota(args: &[&str]) -> Output {
    ironroot_testkit::run(
        Command::new(env!("CARGO_BIN_EXE_ironroot"))
            .arg("ota")
            .args(args),
    )
}

pub(crate) fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exit status 1 with one `error: ` line on stderr that contains `needle`.
fn refused(out: Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected refusal ({needle}), got {err}"
    );
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err:?}"
    );
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{needle:?} not in {err:?}"
    );
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// `python3 -m http.server` (the venv's Python) serving `dir` on a free port.
pub(crate) fn serve(dir: &Path) -> (Proc, String) {
    let port = free_port();
    let child = Command::new(ironroot_testkit::python())
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            p(dir),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python -m http.server");
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, format!("http://127.0.0.1:{port}"))
}

pub(crate) fn keygen(dir: &Path, name: &str, kind: &str) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    ok(
        ironroot_testkit::run(Command::new(env!("CARGO_BIN_EXE_ironroot")).args([
            "firmware",
            "keygen",
            "-t",
            kind,
            "-k",
            p(&path),
        ])),
        "keygen",
    );
    path
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    ironroot_tuf::sha256_hex(data)
}

/// A client of one mirror: metadata dir, URLs.
pub(crate) struct Client {
    meta: PathBuf,
    out: PathBuf,
    url: String,
}

impl Client {
    fn new(tmp: &Path, base: &str, trusted_root: &Path) -> Self {
        let c = Client {
            meta: tmp.join("client-meta"),
            out: tmp.join("client-out"),
            url: base.to_string(),
        };
        ok(
            ota(&[
                "client",
                "--metadata-dir",
                p(&c.meta),
                "init",
                p(trusted_root),
            ]),
            "init",
        );
        c
    }
    fn refresh(&self) -> Output {
        let url = format!("{}/metadata/", self.url);
        ota(&[
            "client",
            "--metadata-url",
            &url,
            "--metadata-dir",
            p(&self.meta),
            "refresh",
        ])
    }
    pub(crate) fn download(&self, name: &str) -> Output {
        let (url, turl) = (
            format!("{}/metadata/", self.url),
            format!("{}/targets/", self.url),
        );
        ota(&[
            "client",
            "--metadata-url",
            &url,
            "--metadata-dir",
            p(&self.meta),
            "--target-name",
            name,
            "--target-dir",
            p(&self.out),
            "--target-base-url",
            &turl,
            "download",
        ])
    }
    pub(crate) fn downloaded(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.out.join(ironroot_tuf::quote_file_name(name))).unwrap()
    }
}

#[test]
fn python_tuf_repository_is_accepted_by_the_ironroot_client() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/ota_tuf_repo.py");
    let out = ok(
        ironroot_testkit::run(
            Command::new(ironroot_testkit::python())
                .arg(&script)
                .arg(&repo),
        ),
        "python-tuf repository",
    );
    let hashes: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let (_server, base) = serve(&repo);
    let client = Client::new(tmp.path(), &base, &repo.join("metadata/1.root.json"));

    let out = ok(client.refresh(), "refresh");
    assert!(
        out.contains("root v2, timestamp v1, snapshot v1, targets v1"),
        "{out}"
    );
    // Trusted metadata under unversioned names; the rotated root is the one kept.
    for name in [
        "root.json",
        "timestamp.json",
        "snapshot.json",
        "targets.json",
    ] {
        assert!(client.meta.join(name).exists(), "{name}");
    }
    assert_eq!(
        std::fs::read(client.meta.join("root.json")).unwrap(),
        std::fs::read(repo.join("metadata/2.root.json")).unwrap()
    );
    for name in ["fw.bin", "board-a/fw.bin"] {
        ok(client.download(name), name);
        assert_eq!(
            sha256_hex(&client.downloaded(name)),
            hashes[name].as_str().unwrap(),
            "{name}"
        );
    }
    // Tampered target bytes on the mirror: refused; restored: accepted.
    let target = repo.join(format!(
        "targets/{}.fw.bin",
        hashes["fw.bin"].as_str().unwrap()
    ));
    let good = std::fs::read(&target).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&target, &bad).unwrap();
    refused(client.download("fw.bin"), "sha256 hash does not match");
    std::fs::write(&target, &good).unwrap();
    ok(client.download("fw.bin"), "download after restore");
    refused(
        client.download("nope.bin"),
        "not in the trusted targets metadata",
    );
}

/// A repository built by `ironroot ota repo` with one target, served.
pub(crate) struct Repo {
    pub(crate) _tmp: tempfile::TempDir,
    pub(crate) dir: PathBuf,
    pub(crate) keys: PathBuf,
    pub(crate) server: Option<(Proc, String)>,
}

impl Repo {
    pub(crate) fn new(consistent: bool, extra_init: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let keys = tmp.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        for (name, kind) in [
            ("root", "ed25519"),
            ("root2", "ecdsa-p256"),
            ("targets", "ecdsa-p256"),
            ("targets2", "ed25519"),
            ("snapshot", "ed25519"),
            ("timestamp", "ecdsa-p256"),
        ] {
            keygen(&keys, name, kind);
        }
        let dir = tmp.path().join("repo");
        let k = |n: &str| keys.join(format!("{n}.pem")).to_str().unwrap().to_string();
        let cs = consistent.to_string();
        let mut args = vec![
            "repo".to_string(),
            "init".into(),
            "--dir".into(),
            p(&dir).into(),
            "--root-key".into(),
            k("root"),
            "--targets-key".into(),
            k("targets"),
            "--snapshot-key".into(),
            k("snapshot"),
            "--timestamp-key".into(),
            k("timestamp"),
            "--consistent-snapshot".into(),
            cs,
        ];
        args.extend(extra_init.iter().map(|s| s.replace("KEYS", p(&keys))));
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(ota(&a), "repo init");
        let mut repo = Repo {
            _tmp: tmp,
            dir,
            keys,
            server: None,
        };
        let fw = repo.dir.parent().unwrap().join("fw.bin");
        std::fs::write(
            &fw,
            (0..40_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        )
        .unwrap();
        repo.add_target(&fw, "fw.bin", &["targets"]);
        repo.server = Some(serve(&repo.dir));
        repo
    }
    fn key(&self, n: &str) -> String {
        p(&self.keys.join(format!("{n}.pem"))).to_string()
    }
    fn base(&self) -> &str {
        &self.server.as_ref().unwrap().1
    }
    fn add_target(&self, file: &Path, name: &str, targets_keys: &[&str]) {
        let mut args = vec![
            "repo".to_string(),
            "add-target".into(),
            "--dir".into(),
            p(&self.dir).into(),
            "--file".into(),
            p(file).into(),
            "--name".into(),
            name.into(),
            "--version".into(),
            "1.2.0".into(),
            "--security-counter".into(),
            "3".into(),
            "--hardware-class".into(),
            "board-a".into(),
            "--snapshot-key".into(),
            self.key("snapshot"),
            "--timestamp-key".into(),
            self.key("timestamp"),
        ];
        for k in targets_keys {
            args.extend(["--targets-key".to_string(), self.key(k)]);
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ok(ota(&a), "add-target");
    }
    fn timestamp(&self, extra: &[&str]) {
        let mut a = vec!["repo", "timestamp", "--dir", p(&self.dir)];
        let k = self.key("timestamp");
        a.extend(["--timestamp-key", &k]);
        a.extend(extra);
        ok(ota(&a), "repo timestamp");
    }
    pub(crate) fn meta(&self, name: &str) -> PathBuf {
        self.dir.join("metadata").join(name)
    }
    pub(crate) fn client(&self) -> Client {
        Client::new(
            self.dir.parent().unwrap(),
            self.base(),
            &self.meta("1.root.json"),
        )
    }
    pub(crate) fn fw(&self) -> PathBuf {
        self.dir.parent().unwrap().join("fw.bin")
    }
}

pub(crate) fn python_client(repo: &Repo, work: &Path, name: &str) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration/ota_tuf_client.py");
    let out = ok(
        ironroot_testkit::run(Command::new(ironroot_testkit::python()).arg(script).args([
            &format!("{}/metadata/", repo.base()),
            &format!("{}/targets/", repo.base()),
            p(&repo.meta("1.root.json")),
            p(work),
            name,
        ])),
        "python-tuf ngclient",
    );
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn ironroot_repository_is_accepted_by_python_tuf_ngclient() {
    for consistent in [true, false] {
        let repo = Repo::new(consistent, &[]);
        let expected = sha256_hex(&std::fs::read(repo.fw()).unwrap());
        // Root rotation 1 -> 2 (Ed25519 -> ECDSA root key), signed by the old and the new key.
        let (old, new) = (repo.key("root"), repo.key("root2"));
        ok(
            ota(&[
                "repo",
                "rotate-root",
                "--dir",
                p(&repo.dir),
                "--old-root-key",
                &old,
                "--new-root-key",
                &new,
            ]),
            "rotate-root",
        );
        let work = repo.dir.parent().unwrap().join(format!("py-{consistent}"));
        let got = python_client(&repo, &work, "fw.bin");
        assert_eq!(got["sha256"], expected.as_str(), "consistent={consistent}");
        assert_eq!(
            got["custom"],
            serde_json::json!({"version": "1.2.0", "security_counter": 3, "hardware_class": "board-a"})
        );
        assert_eq!(got["versions"]["root"], 2);
        // Our own client reads the same repository, rotation included.
        let client = repo.client();
        assert!(
            ok(client.refresh(), "refresh")
                .contains("root v2, timestamp v2, snapshot v2, targets v2")
        );
        ok(client.download("fw.bin"), "download");
        assert_eq!(sha256_hex(&client.downloaded("fw.bin")), expected);
    }
}

#[test]
fn metadata_rollback_is_refused() {
    let repo = Repo::new(true, &[]);
    let client = repo.client();
    ok(client.refresh(), "first refresh");
    let old_ts = std::fs::read(repo.meta("timestamp.json")).unwrap();
    let old_snap = std::fs::read(repo.meta("snapshot.json")).unwrap();
    repo.add_target(&repo.fw(), "fw2.bin", &["targets"]);
    ok(client.refresh(), "refresh to timestamp v3");
    let good_ts = std::fs::read(repo.meta("timestamp.json")).unwrap();
    let good_snap = std::fs::read(repo.meta("snapshot.json")).unwrap();

    // An older timestamp: rollback of the timestamp itself.
    std::fs::write(repo.meta("timestamp.json"), &old_ts).unwrap();
    refused(
        client.refresh(),
        "timestamp: version 2 is older than the trusted version 3 (rollback)",
    );
    // A newer timestamp naming an older snapshot: rollback of the snapshot.
    std::fs::write(repo.meta("snapshot.json"), &old_snap).unwrap();
    repo.timestamp(&[]);
    repo.timestamp(&[]);
    refused(
        client.refresh(),
        "snapshot (named by timestamp): version 2 is older than the trusted version 3",
    );
    // The current files again: accepted.
    std::fs::write(repo.meta("timestamp.json"), &good_ts).unwrap();
    std::fs::write(repo.meta("snapshot.json"), &good_snap).unwrap();
    ok(client.refresh(), "refresh with current metadata");
}

#[test]
fn freeze_with_an_expired_timestamp_is_refused() {
    let repo = Repo::new(true, &[]);
    let client = repo.client();
    ok(client.refresh(), "first refresh");
    repo.timestamp(&["--expires-at", "2020-01-01T00:00:00Z"]);
    refused(
        client.refresh(),
        "timestamp metadata version 3 expired at 2020-01-01T00:00:00Z",
    );
    repo.timestamp(&[]);
    ok(client.refresh(), "fresh timestamp");
}

#[test]
fn mix_and_match_snapshot_is_refused() {
    let repo = Repo::new(true, &[]);
    let client = repo.client();
    ok(client.refresh(), "first refresh");
    let v2 = std::fs::read(repo.meta("2.snapshot.json")).unwrap();
    repo.add_target(&repo.fw(), "fw2.bin", &["targets"]);
    let v3 = std::fs::read(repo.meta("3.snapshot.json")).unwrap();
    // The mirror serves a validly signed, older snapshot where timestamp names version 3.
    std::fs::write(repo.meta("3.snapshot.json"), &v2).unwrap();
    refused(client.refresh(), "3.snapshot.json: ");
    std::fs::write(repo.meta("3.snapshot.json"), &v3).unwrap();
    ok(client.refresh(), "refresh with the matching snapshot");
}

#[test]
fn endless_data_is_cut_at_the_bound() {
    let repo = Repo::new(true, &[]);
    let client = repo.client();
    ok(client.refresh(), "first refresh");
    // Metadata longer than the spec's default bound for timestamp (16,384 bytes).
    let ts = std::fs::read(repo.meta("timestamp.json")).unwrap();
    let mut long = ts.clone();
    long.extend(std::iter::repeat_n(b' ', 20_000));
    std::fs::write(repo.meta("timestamp.json"), &long).unwrap();
    refused(
        client.refresh(),
        "timestamp.json: more than 16384 bytes (endless data)",
    );
    std::fs::write(repo.meta("timestamp.json"), &ts).unwrap();
    ok(client.refresh(), "refresh");
    // A target longer than its signed length.
    let fw = std::fs::read(repo.fw()).unwrap();
    let served = repo.dir.join(format!("targets/{}.fw.bin", sha256_hex(&fw)));
    let mut longer = fw.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&served, &longer).unwrap();
    refused(
        client.download("fw.bin"),
        &format!("more than {} bytes (endless data)", fw.len()),
    );
    std::fs::write(&served, &fw).unwrap();
    ok(client.download("fw.bin"), "download");
    assert_eq!(client.downloaded("fw.bin"), fw);
}

#[test]
fn release_below_the_targets_threshold_is_refused() {
    let repo = Repo::new(
        true,
        &[
            "--targets-key",
            "KEYS/targets2.pem",
            "--targets-threshold",
            "2",
        ],
    );
    let client = repo.client();
    refused(
        client.refresh(),
        "targets: 1 valid signature(s) from distinct keys, threshold is 2",
    );
    repo.add_target(&repo.fw(), "fw.bin", &["targets", "targets2"]);
    ok(client.refresh(), "release signed by both targets keys");
    repo.add_target(&repo.fw(), "fw3.bin", &["targets2"]);
    refused(client.refresh(), "threshold is 2");
}

#[test]
fn bad_root_rotations_are_refused() {
    let repo = Repo::new(true, &[]);
    let client = repo.client();
    ok(client.refresh(), "first refresh");
    let v1 = std::fs::read(repo.meta("root.json")).unwrap();
    let (old, new) = (repo.key("root"), repo.key("root2"));
    let dir = p(&repo.dir).to_string();
    let reset = || {
        std::fs::write(repo.meta("root.json"), &v1).unwrap();
        std::fs::remove_file(repo.meta("2.root.json")).unwrap();
    };
    // Signed by the new key only: the trusted root's threshold is not met.
    ok(
        ota(&["repo", "rotate-root", "--dir", &dir, "--new-root-key", &new]),
        "rotate (new only)",
    );
    refused(
        client.refresh(),
        "root (by the trusted root): 0 valid signature(s)",
    );
    reset();
    // A new root whose own threshold (2) its signatures do not meet.
    ok(
        ota(&[
            "repo",
            "rotate-root",
            "--dir",
            &dir,
            "--old-root-key",
            &old,
            "--new-root-key",
            &new,
            "--threshold",
            "2",
        ]),
        "rotate (threshold 2, one key)",
    );
    refused(
        client.refresh(),
        "root (by itself): 1 valid signature(s) from distinct keys, threshold is 2",
    );
    reset();
    // Signed by old and new: accepted, and the client trusts version 2 from now on.
    ok(
        ota(&[
            "repo",
            "rotate-root",
            "--dir",
            &dir,
            "--old-root-key",
            &old,
            "--new-root-key",
            &new,
        ]),
        "rotate",
    );
    assert!(ok(client.refresh(), "refresh").contains("root v2"));
    assert_eq!(
        std::fs::read(client.meta.join("root.json")).unwrap(),
        std::fs::read(repo.meta("2.root.json")).unwrap()
    );
}
