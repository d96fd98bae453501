//! `ironroot firmware` against `imgtool`: same arguments, same files, same output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ironroot(args: &[&str]) -> Output {
    ironroot_testkit::run(
        Command::new(env!("CARGO_BIN_EXE_ironroot"))
            .arg("firmware")
            .args(args),
    )
}

fn imgtool(args: &[&str]) -> Output {
    ironroot_testkit::run(Command::new(ironroot_testkit::tool("imgtool")).args(args))
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

/// Asserts a failure that reports one line on stderr, and returns it.
fn fails_with_one_line(out: Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} unexpectedly succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "{what}: expected one line, got {err:?}"
    );
    assert!(err.starts_with("error: "), "{what}: {err:?}");
    err
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn firmware(dir: &Path, len: usize) -> PathBuf {
    let bytes: Vec<u8> = (0..len).map(|i| ((i * 197 + 11) % 253) as u8 + 1).collect();
    let path = dir.join("app.bin");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn key_commands_match_imgtool_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for kind in ["ecdsa-p256", "ed25519", "x25519"] {
        let key = dir.path().join(format!("{kind}.pem"));
        ok(ironroot(&["keygen", "-t", kind, "-k", p(&key)]), "keygen");
        for args in [
            vec!["getpub"],
            vec!["getpub", "-e", "lang-rust"],
            vec!["getpub", "-e", "pem"],
            vec!["getpub", "-e", "raw"],
            vec!["getpub", "-l", "rust"],
            vec!["getpub", "--name-suffix", "_2"],
            vec!["getpubhash"],
            vec!["getpubhash", "-e", "raw"],
            vec!["keyinfo"],
        ] {
            let mut a = args.clone();
            a.extend(["-k", p(&key)]);
            let ours = ok(ironroot(&a), "ironroot key command");
            let theirs = ok(imgtool(&a), "imgtool key command");
            assert_eq!(ours.stdout, theirs.stdout, "{kind} {args:?}");
        }
    }
    let getpriv_variants: [(&str, &[&[&str]]); 2] = [
        (
            "ecdsa-p256",
            &[
                &[],
                &["--minimal"],
                &["-f", "openssl"],
                &["-f", "openssl", "--minimal"],
                &["-f", "pkcs8"],
            ],
        ),
        ("x25519", &[&[], &["--minimal"]]),
    ];
    for (kind, variants) in getpriv_variants {
        let key = dir.path().join(format!("{kind}.pem"));
        for extra in variants {
            let mut a = vec!["getpriv", "-k", p(&key)];
            a.extend(extra.iter().copied());
            let ours = ok(ironroot(&a), "ironroot getpriv");
            let theirs = ok(imgtool(&a), "imgtool getpriv");
            assert_eq!(ours.stdout, theirs.stdout, "{kind} getpriv {extra:?}");
        }
    }
    let key = dir.path().join("ed25519.pem");
    fails_with_one_line(ironroot(&["getpriv", "-k", p(&key)]), "getpriv ed25519");
    let err = fails_with_one_line(
        ironroot(&["keyinfo", "--require", "public", "-k", p(&key)]),
        "keyinfo",
    );
    assert!(err.contains("private"), "{err}");
}

#[test]
fn ed25519_sign_is_byte_identical_to_imgtool() {
    let dir = tempfile::tempdir().unwrap();
    let fw = firmware(dir.path(), 12_345);
    let key = dir.path().join("ed.pem");
    ok(
        imgtool(&["keygen", "-t", "ed25519", "-k", p(&key)]),
        "keygen",
    );
    let base = [
        "-v",
        "1.2.3+4",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x10000",
    ];
    let variants: [&[&str]; 9] = [
        &[],
        &["-s", "auto", "-d", "(1,2.0.0), (3,1.1.1+9)"],
        &["-s", "0x10", "--pad", "--confirm", "--align", "4"],
        &["--pure", "--test", "--max-align", "16"],
        &["--sha", "512", "--public-key-format", "full"],
        &[
            "--custom-tlv",
            "0xa1",
            "0xdeadbeef",
            "--custom-tlv-file",
            "0xb0",
            "KEYFILE",
        ],
        &["--vid", "ironroot.example", "--cid", "gateway-v2"],
        &[
            "--vid",
            "12345678-1234-5678-1234-567812345678",
            "--cid",
            "00112233445566778899aabbccddeeff",
        ],
        &[
            "-R",
            "0",
            "--pad",
            "--overwrite-only",
            "-F",
            "0x8000000",
            "--non-bootable",
        ],
    ];
    for (i, extra) in variants.iter().enumerate() {
        let extra: Vec<&str> = extra
            .iter()
            .map(|a| if *a == "KEYFILE" { p(&key) } else { a })
            .collect();
        let ours = dir.path().join(format!("ours-{i}.bin"));
        let theirs = dir.path().join(format!("theirs-{i}.bin"));
        for (tool, out) in [("ironroot", &ours), ("imgtool", &theirs)] {
            let mut a = vec!["sign", "-k", p(&key)];
            a.extend(base);
            a.extend(extra.iter().copied());
            a.extend([p(&fw), p(out)]);
            let res = if tool == "ironroot" {
                ironroot(&a)
            } else {
                imgtool(&a)
            };
            ok(res, &format!("{tool} sign {extra:?}"));
        }
        assert!(
            std::fs::read(&ours).unwrap() == std::fs::read(&theirs).unwrap(),
            "variant {i} {extra:?}: images differ"
        );
        ok(
            imgtool(&["verify", "-k", p(&key), p(&ours)]),
            "imgtool verify",
        );
    }
}

#[test]
fn verify_exits_zero_only_for_valid_images() {
    let dir = tempfile::tempdir().unwrap();
    let fw = firmware(dir.path(), 5000);
    let key = dir.path().join("p256.pem");
    let other = dir.path().join("other.pem");
    ok(
        ironroot(&["keygen", "-t", "ecdsa-p256", "-k", p(&key)]),
        "keygen",
    );
    ok(
        ironroot(&["keygen", "-t", "ecdsa-p256", "-k", p(&other)]),
        "keygen",
    );
    let img = dir.path().join("signed.bin");
    let sign = [
        "sign",
        "-k",
        p(&key),
        "-v",
        "2.0.0",
        "-H",
        "0x200",
        "--pad-header",
        "-S",
        "0x8000",
        "-s",
        "auto",
    ];
    let mut a = sign.to_vec();
    a.extend([p(&fw), p(&img)]);
    ok(ironroot(&a), "sign");
    let good = ok(ironroot(&["verify", "-k", p(&key), p(&img)]), "verify");
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(
        text.contains("Image was correctly validated") && text.contains("2.0.0+0"),
        "{text}"
    );
    // A public-only key file verifies too.
    let pubkey = dir.path().join("pub.pem");
    ok(
        ironroot(&["getpub", "-k", p(&key), "-e", "pem", "-o", p(&pubkey)]),
        "getpub",
    );
    ok(
        ironroot(&["verify", "-k", p(&pubkey), p(&img)]),
        "verify with public key",
    );

    let bytes = std::fs::read(&img).unwrap();
    let mut tampered = bytes.clone();
    tampered[0x200 + 17] ^= 1;
    let bad = dir.path().join("tampered.bin");
    std::fs::write(&bad, &tampered).unwrap();
    let err = fails_with_one_line(ironroot(&["verify", "-k", p(&key), p(&bad)]), "tampered");
    assert!(err.contains("hash mismatch"), "{err}");
    let err = fails_with_one_line(ironroot(&["verify", "-k", p(&other), p(&img)]), "wrong key");
    assert!(err.contains("trusted key"), "{err}");
    std::fs::write(&bad, &bytes[..100]).unwrap();
    let err = fails_with_one_line(ironroot(&["verify", "-k", p(&key), p(&bad)]), "truncated");
    assert!(err.contains("malformed"), "{err}");
    let missing = dir.path().join("missing.bin");
    fails_with_one_line(
        ironroot(&["verify", "-k", p(&key), p(&missing)]),
        "missing file",
    );
    // Signing errors are one line too, and leave no output file behind.
    let no_pad = dir.path().join("nopad.bin");
    let err = fails_with_one_line(
        ironroot(&[
            "sign",
            "-k",
            p(&key),
            "-v",
            "1",
            "-H",
            "0x200",
            "-S",
            "0x8000",
            p(&fw),
            p(&no_pad),
        ]),
        "sign without --pad-header",
    );
    assert!(err.contains("--pad-header"), "{err}");
    assert!(!no_pad.exists());
    let err = fails_with_one_line(
        ironroot(&[
            "sign",
            "-k",
            p(&key),
            "-v",
            "1",
            "-H",
            "0x200",
            "--pad-header",
            "-S",
            "0x1000",
            "--pad",
            p(&fw),
            p(&no_pad),
        ]),
        "slot too small",
    );
    assert!(err.contains("exceeds requested size"), "{err}");
}

#[test]
fn dumpinfo_matches_imgtool_and_decrypt_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let fw = firmware(dir.path(), 3333);
    let signer = dir.path().join("signer.pem");
    let device = dir.path().join("device.pem");
    ok(
        imgtool(&["keygen", "-t", "ecdsa-p256", "-k", p(&signer)]),
        "keygen",
    );
    ok(
        imgtool(&["keygen", "-t", "ecdsa-p256", "-k", p(&device)]),
        "keygen",
    );
    let cases: [&[&str]; 4] = [
        &["-s", "auto"],
        &["--pad", "--confirm", "--align", "32", "-d", "(1,1.0.0)"],
        &["-E", "DEVICE", "--pad", "--align", "8"],
        &[
            "-E",
            "DEVICE",
            "--encrypt-keylen",
            "256",
            "-L",
            "0x20000000",
        ],
    ];
    for (i, extra) in cases.iter().enumerate() {
        let img = dir.path().join(format!("img{i}.bin"));
        let mut a = vec![
            "sign",
            "-k",
            p(&signer),
            "-v",
            "0.1.2+3",
            "-H",
            "0x100",
            "--pad-header",
            "-S",
            "0x4000",
        ];
        a.extend(
            extra
                .iter()
                .map(|x| if *x == "DEVICE" { p(&device) } else { x }),
        );
        a.extend([p(&fw), p(&img)]);
        ok(imgtool(&a), "imgtool sign");
        for fmt in [
            &["dumpinfo"][..],
            &["dumpinfo", "-f", "json"],
            &["dumpinfo", "-f", "human"],
        ] {
            let mut a = fmt.to_vec();
            a.push(p(&img));
            let ours = ok(ironroot(&a), "ironroot dumpinfo");
            let theirs = ok(imgtool(&a), "imgtool dumpinfo");
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "case {i} {fmt:?}"
            );
        }
        let json = ok(ironroot(&["dumpinfo", "--json", p(&img)]), "--json");
        let theirs = ok(
            imgtool(&["dumpinfo", "-f", "json", p(&img)]),
            "imgtool json",
        );
        assert_eq!(json.stdout, theirs.stdout);
        if extra.contains(&"-E") {
            let dec = dir.path().join(format!("img{i}.dec.bin"));
            ok(
                ironroot(&["decrypt", "-k", p(&device), p(&img), p(&dec)]),
                "decrypt",
            );
            ok(
                imgtool(&["verify", "-k", p(&signer), p(&dec)]),
                "imgtool verify decrypted",
            );
            ok(
                ironroot(&[
                    "verify",
                    "-k",
                    p(&signer),
                    "--decrypt-key",
                    p(&device),
                    p(&img),
                ]),
                "verify encrypted",
            );
            let payload = dir.path().join(format!("img{i}.payload"));
            ok(
                ironroot(&[
                    "decrypt",
                    "--payload-only",
                    "-k",
                    p(&device),
                    p(&img),
                    p(&payload),
                ]),
                "payload",
            );
            let plain = std::fs::read(&payload).unwrap();
            assert_eq!(plain[..3333], std::fs::read(&fw).unwrap()[..], "case {i}");
            let err = fails_with_one_line(
                ironroot(&["decrypt", "-k", p(&signer), p(&img), p(&payload)]),
                "wrong key",
            );
            assert!(err.contains("HMAC"), "{err}");
        }
    }
}

/// Runs a command with `input` on its standard input (imgtool reads passphrases from stdin
/// when there is no terminal).
fn with_stdin(cmd: &mut Command, input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn password_protected_keys_cross_load() {
    let dir = tempfile::tempdir().unwrap();
    let fw = firmware(dir.path(), 2000);
    let imgtool_bin = ironroot_testkit::tool("imgtool");
    let ironroot_bin = env!("CARGO_BIN_EXE_ironroot");
    // imgtool keygen -p → ironroot signs with it (passphrase from the environment).
    let theirs = dir.path().join("theirs.pem");
    ok(
        with_stdin(
            Command::new(&imgtool_bin).args(["keygen", "-t", "ecdsa-p256", "-p", "-k", p(&theirs)]),
            "pass one\npass one\n",
        ),
        "imgtool keygen -p",
    );
    let img = dir.path().join("signed.bin");
    ok(
        ironroot_testkit::run(
            Command::new(ironroot_bin)
                .env("IRONROOT_KEY_PASSWORD", "pass one")
                .args([
                    "firmware",
                    "sign",
                    "-k",
                    p(&theirs),
                    "-v",
                    "1.0.0",
                    "-H",
                    "0x200",
                ])
                .args(["--pad-header", "-S", "0x8000", p(&fw), p(&img)]),
        ),
        "ironroot sign with an encrypted imgtool key",
    );
    ok(
        with_stdin(
            Command::new(&imgtool_bin).args(["verify", "-k", p(&theirs), p(&img)]),
            "pass one\n",
        ),
        "imgtool verify",
    );
    // A wrong passphrase is one clear line, not a crash.
    let out = with_stdin(
        Command::new(ironroot_bin).args(["firmware", "getpub", "-k", p(&theirs)]),
        "nope\n",
    );
    let err = fails_with_one_line_after_prompt(out);
    assert!(err.contains("wrong passphrase"), "{err}");
    // ironroot keygen -p (passphrase on stdin, twice) → imgtool reads it.
    let ours = dir.path().join("ours.pem");
    ok(
        with_stdin(
            Command::new(ironroot_bin).args([
                "firmware",
                "keygen",
                "-t",
                "ed25519",
                "-p",
                "-k",
                p(&ours),
            ]),
            "pass two\npass two\n",
        ),
        "ironroot keygen -p",
    );
    assert!(
        std::fs::read_to_string(&ours)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    let theirs_pub = with_stdin(
        Command::new(&imgtool_bin).args(["getpub", "-k", p(&ours), "-e", "pem"]),
        "pass two\n",
    );
    let ours_pub = with_stdin(
        Command::new(ironroot_bin).args(["firmware", "getpub", "-k", p(&ours), "-e", "pem"]),
        "pass two\n",
    );
    let theirs_pub = ok(theirs_pub, "imgtool getpub");
    let ours_pub = ok(ours_pub, "ironroot getpub");
    assert!(String::from_utf8_lossy(&theirs_pub.stdout).contains("BEGIN PUBLIC KEY"));
    assert_eq!(ours_pub.stdout, theirs_pub.stdout);
}

/// Like [`fails_with_one_line`], for commands that first print a passphrase prompt.
fn fails_with_one_line_after_prompt(out: Output) -> String {
    assert!(!out.status.success(), "unexpectedly succeeded");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let err = err.trim_start_matches("Enter key passphrase: ").to_owned();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "expected one line, got {err:?}"
    );
    err
}
