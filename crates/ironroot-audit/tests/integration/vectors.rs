//! The transparency-dev/merkle conformance vectors (tests/data/merkle, Apache-2.0): every
//! `wantErr: false` vector must verify and every `wantErr: true` vector must be rejected.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ironroot_audit::proof::{verify_consistency_bytes, verify_inclusion_bytes};
use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/merkle")
}

fn json_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            json_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
}

fn b64(v: &Value) -> Vec<u8> {
    BASE64.decode(v.as_str().unwrap()).unwrap()
}

fn list(v: &Value) -> Vec<Vec<u8>> {
    match v {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().map(b64).collect(),
        other => panic!("unexpected proof value {other}"),
    }
}

/// Runs every vector in `sub`, returning (accepted, rejected) counts after asserting each one.
fn run(sub: &str, check: impl Fn(&Value) -> Result<(), String>) -> (usize, usize) {
    let mut files = Vec::new();
    json_files(&data_dir().join(sub), &mut files);
    assert!(!files.is_empty(), "no vectors under {sub}");
    let (mut ok, mut err) = (0, 0);
    for file in files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let want_err = v["wantErr"].as_bool().unwrap();
        let got = check(&v);
        match (want_err, got) {
            (false, Ok(())) => ok += 1,
            (true, Err(_)) => err += 1,
            (false, Err(e)) => panic!("{} should verify but failed: {e}", file.display()),
            (true, Ok(())) => panic!("{} should be rejected but verified", file.display()),
        }
    }
    (ok, err)
}

#[test]
fn every_inclusion_vector_gives_the_expected_verdict() {
    let (ok, err) = run("inclusion", |v| {
        verify_inclusion_bytes(
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
            &b64(&v["leafHash"]),
            &list(&v["proof"]),
            &b64(&v["root"]),
        )
        .map_err(|e| e.to_string())
    });
    // Both kinds are present, so the test exercises acceptance and rejection.
    assert!(ok >= 5 && err >= 50, "accepted {ok}, rejected {err}");
}

#[test]
fn every_consistency_vector_gives_the_expected_verdict() {
    let (ok, err) = run("consistency", |v| {
        verify_consistency_bytes(
            v["size1"].as_u64().unwrap(),
            v["size2"].as_u64().unwrap(),
            &list(&v["proof"]),
            &b64(&v["root1"]),
            &b64(&v["root2"]),
        )
        .map_err(|e| e.to_string())
    });
    assert!(ok >= 5 && err >= 50, "accepted {ok}, rejected {err}");
}

#[test]
fn vector_count_matches_the_copied_corpus() {
    let mut files = Vec::new();
    json_files(&data_dir(), &mut files);
    assert_eq!(
        files.len(),
        196,
        "tests/data/merkle should hold all 196 vectors"
    );
    let readme = std::fs::read_to_string(data_dir().join("README.md")).unwrap();
    assert!(readme.contains("transparency-dev/merkle") && readme.contains("Apache-2.0"));
}

/// The eight leaves of the Certificate Transparency reference test tree that the vectors use.
fn ct_test_leaves() -> Vec<ironroot_audit::hash::Hash> {
    let data: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    data.iter()
        .map(|d| ironroot_audit::hash::leaf_hash(d))
        .collect()
}

fn resolve_plan(
    plan: &ironroot_audit::tree::Plan,
    leaves: &[ironroot_audit::hash::Hash],
) -> Vec<Vec<u8>> {
    plan.resolve::<()>(|n| {
        let s = (n.index << n.level) as usize;
        Ok(ironroot_audit::tree::reference_root(
            &leaves[s..s + (1usize << n.level)],
        ))
    })
    .unwrap()
    .iter()
    .map(|h| h.0.to_vec())
    .collect()
}

/// Our proof generator reproduces the happy-path proofs of the reference implementation.
#[test]
fn generated_proofs_equal_the_happy_path_vectors() {
    use ironroot_audit::tree::{consistency_plan, inclusion_plan, root_plan};
    let leaves = ct_test_leaves();
    let mut checked = 0;
    for n in 0..5 {
        let dir = data_dir()
            .join("inclusion")
            .join(n.to_string())
            .join("happy-path.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(dir).unwrap()).unwrap();
        let (index, size) = (
            v["leafIdx"].as_u64().unwrap(),
            v["treeSize"].as_u64().unwrap(),
        );
        let l = &leaves[..size as usize];
        assert_eq!(resolve_plan(&root_plan(size), l), vec![b64(&v["root"])]);
        assert_eq!(
            resolve_plan(&inclusion_plan(index, size), l),
            list(&v["proof"])
        );

        let dir = data_dir()
            .join("consistency")
            .join(n.to_string())
            .join("happy-path.json");
        let v: Value = serde_json::from_str(&std::fs::read_to_string(dir).unwrap()).unwrap();
        let (s1, s2) = (v["size1"].as_u64().unwrap(), v["size2"].as_u64().unwrap());
        let l = &leaves[..s2 as usize];
        assert_eq!(resolve_plan(&root_plan(s1), l), vec![b64(&v["root1"])]);
        assert_eq!(
            resolve_plan(&consistency_plan(s1, s2), l),
            list(&v["proof"])
        );
        checked += 1;
    }
    assert_eq!(checked, 5);
}
