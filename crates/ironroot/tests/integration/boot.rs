//! `ironroot boot`: the simulated device driven through the binary, with images signed by
//! `ironroot firmware` and by imgtool.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ironroot(args: &[&str]) -> Output {
    ironroot_testkit::run(Command::new(env!("CARGO_BIN_EXE_ironroot")).args(args))
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

struct Dev {
    dir: tempfile::TempDir,
    key: PathBuf,
    flash: PathBuf,
}

impl Dev {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn boot(&self, args: &[&str]) -> Output {
        let mut a = vec!["boot"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--flash", p(&self.flash)]);
        ironroot(&a)
    }

    /// Signs `len` bytes of firmware with `ironroot firmware sign` and extra flags.
    fn sign(&self, name: &str, version: &str, counter: u32, len: usize, extra: &[&str]) -> PathBuf {
        let input = self.path(&format!("{name}.bin"));
        let bytes: Vec<u8> = (0..len)
            .map(|i| ((i * 31 + counter as usize) % 251) as u8)
            .collect();
        std::fs::write(&input, bytes).unwrap();
        let out = self.path(&format!("{name}.signed"));
        let c = counter.to_string();
        let mut args = vec![
            "firmware",
            "sign",
            "-k",
            p(&self.key),
            "-v",
            version,
            "-s",
            &c,
            "-H",
            "0x200",
            "--pad-header",
            "--align",
            "8",
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[p(&input), p(&out)]);
        ok(ironroot(&args), "sign");
        out
    }

    fn json(&self, args: &[&str]) -> (serde_json::Value, Option<i32>) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.boot(&a);
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
        (v, out.status.code())
    }
}

/// A device with a small layout, a bootloader and application 1.0.0 (counter 1).
fn device() -> Dev {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.pem");
    ok(
        ironroot(&["firmware", "keygen", "-t", "ecdsa-p256", "-k", p(&key)]),
        "keygen",
    );
    let flash = dir.path().join("dev");
    let d = Dev { dir, key, flash };
    let out = ok(
        d.boot(&[
            "init",
            "--root-key",
            p(&d.key),
            "--slot-size",
            "0x20000",
            "--bootloader-size",
            "0x4000",
        ]),
        "init",
    );
    assert!(out.contains("-S 0x20000 --align 8"), "{out}");
    let bl = d.sign("bl", "0.1.0", 0, 2000, &["-S", "0x4000"]);
    ok(
        d.boot(&["write", "--bootloader", p(&bl)]),
        "write bootloader",
    );
    let app = d.sign("app1", "1.0.0", 1, 30_000, &["-S", "0x20000"]);
    ok(d.boot(&["write", "--primary", p(&app)]), "write primary");
    d
}

#[test]
fn test_swap_confirm_and_status_through_the_cli() {
    let d = device();
    let (v, code) = d.json(&["run"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["booted"]["version"], "1.0.0+0");
    assert_eq!(v["security_counter"]["after"], 1);
    assert_eq!(v["measurements"].as_array().unwrap().len(), 2);

    let app2 = d.sign("app2", "2.0.0", 2, 40_000, &["-S", "0x20000", "--pad"]);
    ok(
        d.boot(&["write", "--secondary", p(&app2)]),
        "write secondary",
    );
    let (st, _) = d.json(&["status"]);
    assert_eq!(st["next_boot"], "test swap of the secondary image");
    let (v, code) = d.json(&["run"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["action"]["what"], "swapped");
    assert_eq!(v["action"]["swap"], "test");
    assert_eq!(v["booted"]["version"], "2.0.0+0");
    assert_eq!(v["booted"]["trial"], true);
    assert!(v["flash"]["erases"].as_u64().unwrap() > 0);

    let out = ok(d.boot(&["confirm"]), "confirm");
    assert!(out.starts_with("confirmed"), "{out}");
    let (v, _) = d.json(&["run"]);
    assert_eq!(v["booted"]["version"], "2.0.0+0");
    assert_eq!(v["booted"]["trial"], false);
    assert_eq!(v["security_counter"]["after"], 2);
    let (st, _) = d.json(&["status"]);
    assert_eq!(st["otp"]["security_counter"], 2);
    assert_eq!(st["primary"]["trailer"]["image_ok"], "set");
    assert_eq!(st["secondary"]["image"]["version"], "1.0.0+0");
}

#[test]
fn unconfirmed_update_reverts_and_a_downgrade_is_refused() {
    let d = device();
    ok(d.boot(&["run"]), "first boot");
    let app2 = d.sign("app2", "2.0.0", 2, 20_000, &["-S", "0x20000"]);
    ok(
        d.boot(&["write", "--secondary", p(&app2), "--request", "test"]),
        "write + request",
    );
    let (v, _) = d.json(&["run"]);
    assert_eq!(v["booted"]["trial"], true);
    let (v, _) = d.json(&["run"]);
    assert_eq!(v["action"]["swap"], "revert");
    assert_eq!(v["booted"]["version"], "1.0.0+0");

    let old = d.sign(
        "old",
        "0.9.0",
        0,
        20_000,
        &["-S", "0x20000", "--pad", "--confirm"],
    );
    ok(d.boot(&["write", "--secondary", p(&old)]), "write old");
    let (v, code) = d.json(&["run"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["action"]["what"], "refused");
    assert_eq!(v["refusals"][0]["reason"], "rollback");
    assert_eq!(v["booted"]["version"], "1.0.0+0");
}

#[test]
fn power_cut_exits_3_and_the_next_run_recovers() {
    let d = device();
    ok(d.boot(&["run"]), "first boot");
    let app2 = d.sign(
        "app2",
        "2.0.0",
        2,
        40_000,
        &["-S", "0x20000", "--pad", "--confirm"],
    );
    ok(
        d.boot(&["write", "--secondary", p(&app2)]),
        "write secondary",
    );
    for cut in ["5", "17", "40"] {
        let out = d.boot(&["run", "--cut-at", cut, "--torn"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("power cut during operation"));
    }
    let (v, code) = d.json(&["run"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["booted"]["version"], "2.0.0+0");
    assert_eq!(v["booted"]["trial"], false);
}

#[test]
fn nothing_bootable_exits_2() {
    let d = device();
    let app = d.path("app1.signed");
    let mut bytes = std::fs::read(&app).unwrap();
    bytes[0x300] ^= 1;
    std::fs::write(&app, &bytes).unwrap();
    ok(d.boot(&["write", "--primary", p(&app)]), "write tampered");
    let out = d.boot(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("nothing bootable"), "{text}");
    assert!(text.contains("image hash mismatch"), "{text}");
}

#[test]
fn imgtool_signed_update_through_the_cli() {
    let d = device();
    ok(d.boot(&["run"]), "first boot");
    let input = d.path("app3.bin");
    std::fs::write(&input, vec![0x5au8; 25_000]).unwrap();
    let out = d.path("app3.signed");
    let st = ironroot_testkit::run(
        Command::new(ironroot_testkit::tool("imgtool"))
            .args([
                "sign",
                "-k",
                p(&d.key),
                "-v",
                "3.0.0",
                "-s",
                "3",
                "-H",
                "0x200",
            ])
            .args([
                "--pad-header",
                "-S",
                "0x20000",
                "--align",
                "8",
                "--pad",
                "--confirm",
            ])
            .args([p(&input), p(&out)]),
    );
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    ok(
        d.boot(&["write", "--secondary", p(&out)]),
        "write imgtool image",
    );
    let (v, _) = d.json(&["run"]);
    assert_eq!(v["action"]["swap"], "permanent");
    assert_eq!(v["booted"]["version"], "3.0.0+0");
    assert_eq!(v["security_counter"]["after"], 3);
}

#[test]
fn bad_input_gives_one_line_errors() {
    let d = device();
    for (args, needle) in [
        (vec!["status"], ""),
        (
            vec!["write", "--secondary", "/nonexistent.bin"],
            "reading /nonexistent.bin",
        ),
    ] {
        let out = d.boot(&args);
        if needle.is_empty() {
            assert!(out.status.success());
            continue;
        }
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    }
    let big = d.path("big.bin");
    std::fs::write(&big, vec![0u8; 0x30000]).unwrap();
    let out = d.boot(&["write", "--secondary", p(&big)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("holds"), "{err}");
    let out = ironroot(&["boot", "status", "--flash", "/nonexistent-device"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ironroot boot init"),
        "{err}"
    );
    // init refuses to overwrite a device.
    let out = d.boot(&["init", "--root-key", p(&d.key)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
}
