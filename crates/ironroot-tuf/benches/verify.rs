//! Metadata verification cost of a 1,000-target targets.json (the device's per-update work
//! for the largest role), against python-tuf 7 doing the same in the same run:
//!
//! - `parse+verify/{ed25519,ecdsa-p256}`: ironroot-tuf parses the envelope, canonicalizes
//!   `signed`, builds the typed `Targets` and checks the threshold against root's keys.
//! - python-tuf: `Metadata.from_bytes` + `Root.verify_delegate("targets", signed_bytes, signatures)` in one Python
//!   process (no interpreter start-up in the figure), median and p10-p90 of 200 runs, printed.
//!
//! Run: `cargo bench --profile dev -p ironroot-tuf --bench verify` (IRONROOT_VENV or .venv for
//! python-tuf; IRONROOT_BENCH_NO_PYTHON=1 skips the anchor).

use std::hint::black_box;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use ironroot_image::tools::{KeyType, PrivateKey};
use ironroot_tuf::repo::{Repository, RoleSetup, Written};
use ironroot_tuf::{Envelope, KeyFileSigner, Root, Targets, verify_threshold};

const NOW: u64 = 1_900_000_000;

struct Case {
    _tmp: tempfile::TempDir,
    targets: Vec<u8>,
    root: Vec<u8>,
    root_path: std::path::PathBuf,
    targets_path: std::path::PathBuf,
}

fn one(x: &KeyFileSigner) -> RoleSetup<'_> {
    RoleSetup {
        signers: vec![x],
        extra_keys: vec![],
        threshold: 1,
    }
}

fn case(kind: KeyType) -> Case {
    let tmp = tempfile::tempdir().unwrap();
    let s = |k| KeyFileSigner::new(PrivateKey::generate(k)).unwrap();
    let (root, targets, snap, ts) = (
        s(KeyType::Ed25519),
        s(kind),
        s(KeyType::Ed25519),
        s(KeyType::Ed25519),
    );
    let (repo, _) = Repository::init(
        &tmp.path().join("r"),
        [&one(&root), &one(&targets), &one(&snap), &one(&ts)],
        true,
        [NOW + 86_400 * 30; 4],
    )
    .unwrap();
    // 1,000 targets in one targets version: write 999 entries unsigned, then sign with the last.
    let mut w = Written::default();
    let path = repo.metadata_dir().join("targets.json");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for i in 0..999u32 {
        doc["signed"]["targets"][format!("fw/board-{}/app-{i}.bin", i % 10)] = serde_json::json!({
            "length": 100_000 + i, "hashes": {"sha256": ironroot_tuf::sha256_hex(&i.to_le_bytes())},
            "custom": {"version": format!("1.{i}.0"), "security_counter": i, "hardware_class": format!("board-{}", i % 10)}});
    }
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    repo.add_target(
        "fw/last.bin",
        b"last",
        None,
        &[&targets],
        NOW + 86_400,
        &mut w,
    )
    .unwrap();
    let targets_path = repo.metadata_dir().join("targets.json");
    let root_path = repo.metadata_dir().join("root.json");
    Case {
        targets: std::fs::read(&targets_path).unwrap(),
        root: std::fs::read(&root_path).unwrap(),
        root_path,
        targets_path,
        _tmp: tmp,
    }
}

fn python(c: &Case, label: &str) {
    let script = r#"
import sys, time, statistics
from tuf.api.metadata import Metadata
root = Metadata.from_bytes(open(sys.argv[1], "rb").read()).signed
data = open(sys.argv[2], "rb").read()
times = []
for _ in range(200):
    t = time.perf_counter()
    md = Metadata.from_bytes(data)
    root.verify_delegate("targets", md.signed_bytes, md.signatures)
    times.append(time.perf_counter() - t)
times.sort()
print(f"{statistics.median(times)*1e3:.3f} ms (p10 {times[20]*1e3:.3f}, p90 {times[180]*1e3:.3f})")
"#;
    let out = Command::new(ironroot_testkit::python())
        .args(["-c", script])
        .arg(&c.root_path)
        .arg(&c.targets_path)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "python-tuf/{label}: {}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse+verify 1000-target targets.json");
    for (label, kind) in [
        ("ed25519", KeyType::Ed25519),
        ("ecdsa-p256", KeyType::EcdsaP256),
    ] {
        let case = case(kind);
        let env = Envelope::parse("root", &case.root).unwrap();
        let root = Root::from_signed(&env.signed).unwrap();
        let rk = root.roles["targets"].clone();
        println!("{label}: targets.json is {} bytes", case.targets.len());
        g.bench_function(label, |b| {
            b.iter(|| {
                let env = Envelope::parse("targets", black_box(&case.targets)).unwrap();
                let t = Targets::from_signed("targets", &env.signed).unwrap();
                verify_threshold("targets", &env, &root.keys, &rk).unwrap();
                black_box(t.targets.len())
            })
        });
        if std::env::var_os("IRONROOT_BENCH_NO_PYTHON").is_none() {
            python(&case, label);
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
