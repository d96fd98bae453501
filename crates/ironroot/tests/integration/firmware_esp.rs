//! `ironroot firmware esp` against espsecure (esptool 5): same subcommands and flags, images
//! signed by one verified by the other, tampered images refused by both, same eFuse digest.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ironroot(args: &[&str]) -> Output {
    ironroot_testkit::run(
        Command::new(env!("CARGO_BIN_EXE_ironroot"))
            .args(["firmware", "esp"])
            .args(args),
    )
}

fn espsecure(args: &[&str]) -> Output {
    ironroot_testkit::run(Command::new(ironroot_testkit::espsecure()).args(args))
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn refused(out: Output, what: &str) {
    assert!(!out.status.success(), "{what} unexpectedly succeeded");
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn write(dir: &Path, name: &str, len: usize) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        (0..len).map(|i| (i * 7 % 255) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    path
}

#[test]
fn sign_and_verify_interoperate_with_espsecure_for_every_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for scheme in ["rsa3072", "ecdsa192", "ecdsa256", "ecdsa384"] {
        let key = d.join(format!("{scheme}.pem"));
        ok(
            espsecure(&[
                "generate-signing-key",
                "--version",
                "2",
                "--scheme",
                scheme,
                p(&key),
            ]),
            "keygen",
        );
        let app = write(d, "app.bin", 30_000);

        // ironroot signs (espsecure 5 spelling), espsecure verifies; and the other way round.
        let ours = d.join("ours.bin");
        ok(
            ironroot(&[
                "sign-data",
                "--version",
                "2",
                "--keyfile",
                p(&key),
                "--output",
                p(&ours),
                p(&app),
            ]),
            "ironroot sign-data",
        );
        ok(
            espsecure(&[
                "verify-signature",
                "--version",
                "2",
                "--keyfile",
                p(&key),
                p(&ours),
            ]),
            "espsecure verify",
        );
        let theirs = d.join("theirs.bin");
        ok(
            espsecure(&[
                "sign-data",
                "--version",
                "2",
                "--keyfile",
                p(&key),
                "--output",
                p(&theirs),
                p(&app),
            ]),
            "espsecure sign-data",
        );
        ok(
            ironroot(&[
                "verify-signature",
                "--version",
                "2",
                "--keyfile",
                p(&key),
                p(&theirs),
            ]),
            "ironroot verify",
        );
        // The old underscore spellings work too.
        ok(
            ironroot(&[
                "verify_signature",
                "--version",
                "2",
                "--keyfile",
                p(&key),
                p(&ours),
            ]),
            "verify_signature alias",
        );

        // Tampered: both refuse.
        for image in [&ours, &theirs] {
            let mut bytes = std::fs::read(image).unwrap();
            bytes[77] ^= 0x04;
            let bad = d.join("bad.bin");
            std::fs::write(&bad, &bytes).unwrap();
            refused(
                ironroot(&[
                    "verify-signature",
                    "--version",
                    "2",
                    "--keyfile",
                    p(&key),
                    p(&bad),
                ]),
                "ironroot on a tampered image",
            );
            refused(
                espsecure(&[
                    "verify-signature",
                    "--version",
                    "2",
                    "--keyfile",
                    p(&key),
                    p(&bad),
                ]),
                "espsecure on a tampered image",
            );
        }

        // eFuse digest: byte-identical to espsecure's, with either spelling.
        let (a, b) = (d.join("a.digest"), d.join("b.digest"));
        ok(
            ironroot(&[
                "digest_sbv2_public_key",
                "--keyfile",
                p(&key),
                "--output",
                p(&a),
            ]),
            "ironroot digest",
        );
        ok(
            espsecure(&[
                "digest-sbv2-public-key",
                "--keyfile",
                p(&key),
                "--output",
                p(&b),
            ]),
            "espsecure digest",
        );
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{scheme} digest"
        );
    }
}

#[test]
fn several_keys_append_and_external_signatures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keys: Vec<PathBuf> = (0..3).map(|i| d.join(format!("k{i}.pem"))).collect();
    for k in &keys {
        ok(
            espsecure(&[
                "generate-signing-key",
                "--version",
                "2",
                "--scheme",
                "ecdsa256",
                p(k),
            ]),
            "keygen",
        );
    }
    let app = write(d, "app.bin", 8_192);

    // Two keys in one go (espsecure's `--keyfile K1 K2`), then a third appended with the old
    // spelling; espsecure verifies every block; a fourth does not fit.
    let signed = d.join("signed.bin");
    ok(
        ironroot(&[
            "sign_data",
            "--version",
            "2",
            "--keyfile",
            p(&keys[0]),
            p(&keys[1]),
            "--output",
            p(&signed),
            p(&app),
        ]),
        "two keys",
    );
    ok(
        ironroot(&[
            "sign-data",
            "--version",
            "2",
            "--keyfile",
            p(&keys[2]),
            "--append_signatures",
            p(&signed),
        ]),
        "append in place",
    );
    for k in &keys {
        ok(
            espsecure(&[
                "verify-signature",
                "--version",
                "2",
                "--keyfile",
                p(k),
                p(&signed),
            ]),
            "espsecure on 3 blocks",
        );
    }
    refused(
        ironroot(&[
            "sign-data",
            "--version",
            "2",
            "--keyfile",
            p(&keys[0]),
            "-a",
            p(&signed),
        ]),
        "a fourth block",
    );

    // An externally made signature (openssl standing in for an HSM) with --pub-key/--signature.
    let pubkey = d.join("pub.pem");
    ok(
        espsecure(&[
            "extract-public-key",
            "--version",
            "2",
            "--keyfile",
            p(&keys[0]),
            p(&pubkey),
        ]),
        "extract-public-key",
    );
    let sig = d.join("sig.der");
    ok(
        ironroot_testkit::run(Command::new("openssl").args([
            "dgst",
            "-sha256",
            "-sign",
            p(&keys[0]),
            "-out",
            p(&sig),
            p(&app),
        ])),
        "openssl dgst",
    );
    let ext = d.join("ext.bin");
    ok(
        ironroot(&[
            "sign-data",
            "--version",
            "2",
            "--pub-key",
            p(&pubkey),
            "--signature",
            p(&sig),
            "--output",
            p(&ext),
            p(&app),
        ]),
        "external signature",
    );
    ok(
        espsecure(&[
            "verify-signature",
            "--version",
            "2",
            "--keyfile",
            p(&pubkey),
            p(&ext),
        ]),
        "espsecure on the external block",
    );
    // The same flag pair with a signature over other data is refused.
    let other = write(d, "other.bin", 4_096);
    refused(
        ironroot(&[
            "sign-data",
            "--version",
            "2",
            "--pub-key",
            p(&pubkey),
            "--signature",
            p(&sig),
            "--output",
            p(&ext),
            p(&other),
        ]),
        "a signature over other data",
    );
    // Version 1 is not offered.
    refused(
        ironroot(&[
            "sign-data",
            "--version",
            "1",
            "--keyfile",
            p(&keys[0]),
            p(&app),
        ]),
        "--version 1",
    );
}

/// The signing key lives in a PKCS#11 token (SoftHSM2): ironroot signs through it, espsecure
/// verifies with the matching key file; a wrong PIN signs nothing.
#[test]
fn pkcs11_key_signs_blocks_espsecure_verifies() {
    const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    assert!(
        Path::new(MODULE).exists(),
        "{MODULE} is missing; run `bash .ci/run` once (installs softhsm2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tokens = d.join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = d.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    let softhsm = |args: &[&str]| {
        ok(
            ironroot_testkit::run(
                Command::new(ironroot_testkit::tool("softhsm2-util"))
                    .env("SOFTHSM2_CONF", &conf)
                    .args(args),
            ),
            "softhsm2-util",
        )
    };
    softhsm(&[
        "--init-token",
        "--free",
        "--label",
        "esp",
        "--so-pin",
        "12345678",
        "--pin",
        "24681357",
    ]);
    // An espsecure key, moved into the token as PKCS#8 (the token keeps it from then on).
    let key = d.join("k.pem");
    ok(
        espsecure(&[
            "generate-signing-key",
            "--version",
            "2",
            "--scheme",
            "ecdsa256",
            p(&key),
        ]),
        "keygen",
    );
    let pk8 = d.join("k.p8");
    ok(
        ironroot_testkit::run(Command::new("openssl").args([
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            p(&key),
            "-out",
            p(&pk8),
        ])),
        "openssl pkcs8",
    );
    softhsm(&[
        "--import",
        p(&pk8),
        "--token",
        "esp",
        "--label",
        "fw",
        "--id",
        "01",
        "--pin",
        "24681357",
    ]);
    let pin = d.join("pin");
    std::fs::write(&pin, "24681357\n").unwrap();

    let app = write(d, "app.bin", 12_345);
    let signed = d.join("signed.bin");
    let hsm = |pin_file: &Path| {
        ironroot_testkit::run(
            Command::new(env!("CARGO_BIN_EXE_ironroot"))
                .env("SOFTHSM2_CONF", &conf)
                .env_remove("IRONROOT_PKCS11_PIN")
                .args([
                    "firmware",
                    "esp",
                    "sign-data",
                    "--version",
                    "2",
                    "--pkcs11-module",
                    MODULE,
                ])
                .args([
                    "--pkcs11-token",
                    "esp",
                    "--pkcs11-key",
                    "fw",
                    "--pkcs11-pin-file",
                    p(pin_file),
                ])
                .args(["--output", p(&signed), p(&app)]),
        )
    };
    ok(hsm(&pin), "sign-data with the PKCS#11 key");
    ok(
        espsecure(&[
            "verify-signature",
            "--version",
            "2",
            "--keyfile",
            p(&key),
            p(&signed),
        ]),
        "espsecure on the HSM block",
    );
    ok(
        ironroot(&[
            "verify-signature",
            "--version",
            "2",
            "--keyfile",
            p(&key),
            p(&signed),
        ]),
        "ironroot on the HSM block",
    );

    std::fs::remove_file(&signed).unwrap();
    let wrong = d.join("wrong-pin");
    std::fs::write(&wrong, "11111111\n").unwrap();
    refused(hsm(&wrong), "sign-data with a wrong PIN");
    assert!(!signed.exists(), "nothing written after a failed login");
}
