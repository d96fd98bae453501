//! `ironroot ota repo` with the targets key on a PKCS#11 token (SoftHSM2): python-tuf 7 and
//! our client accept what the token signed.

use std::path::PathBuf;
use std::process::Command;

use crate::ota_tuf::{Repo, keygen, ok, p, python_client, serve, sha256_hex};

#[test]
fn targets_signed_by_a_pkcs11_key_are_accepted_by_python_tuf_and_ironroot() {
    let hsm = ironroot_testkit::softhsm::SoftHsm::new("tuf", "12345678", "24681357");
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let token_key = keygen(d, "token-targets", "ecdsa-p256");
    let mut import = Command::new(ironroot_testkit::tool("softhsm2-util"));
    import.envs(hsm.env()).args([
        "--import",
        p(&token_key),
        "--token",
        "tuf",
        "--label",
        "targets",
        "--id",
        "01",
        "--pin",
        "24681357",
    ]);
    ok(ironroot_testkit::run(&mut import), "softhsm2-util --import");
    std::fs::remove_file(&token_key).unwrap();
    let pin = d.join("pin");
    std::fs::write(&pin, "24681357\n").unwrap();
    let keys: Vec<PathBuf> = ["root", "snapshot", "timestamp"]
        .iter()
        .map(|n| keygen(d, n, "ed25519"))
        .collect();
    let repo_dir = d.join("repo");
    let module = ironroot_testkit::softhsm::SoftHsm::module();
    let token = [
        "--pkcs11-module",
        p(&module),
        "--pkcs11-token",
        "tuf",
        "--targets-pkcs11-key",
        "targets",
        "--pkcs11-pin-file",
        p(&pin),
    ];
    let run = |args: &[&str]| {
        ironroot_testkit::run(
            Command::new(env!("CARGO_BIN_EXE_ironroot"))
                .envs(hsm.env())
                .arg("ota")
                .args(args)
                .args(token),
        )
    };
    let (root, snap, ts) = (p(&keys[0]), p(&keys[1]), p(&keys[2]));
    let dir = p(&repo_dir);
    ok(
        run(&[
            "repo",
            "init",
            "--dir",
            dir,
            "--root-key",
            root,
            "--snapshot-key",
            snap,
            "--timestamp-key",
            ts,
        ]),
        "init",
    );
    let fw = d.join("fw.bin");
    std::fs::write(&fw, b"signed in the HSM".repeat(500)).unwrap();
    ok(
        run(&[
            "repo",
            "add-target",
            "--dir",
            dir,
            "--file",
            p(&fw),
            "--snapshot-key",
            snap,
            "--timestamp-key",
            ts,
        ]),
        "add-target",
    );
    let served = serve(&repo_dir);
    let repo = Repo {
        _tmp: tempfile::tempdir().unwrap(),
        dir: repo_dir.clone(),
        keys: d.to_path_buf(),
        server: Some(served),
    };
    let got = python_client(&repo, &d.join("py"), "fw.bin");
    assert_eq!(
        got["sha256"],
        sha256_hex(&std::fs::read(&fw).unwrap()).as_str()
    );
    let client = repo.client();
    ok(client.download("fw.bin"), "download");
    assert_eq!(client.downloaded("fw.bin"), std::fs::read(&fw).unwrap());
}
