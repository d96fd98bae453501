//! The PKCS#11 backend against SoftHSM2, in a token created in a temporary directory.
//!
//! SoftHSM reads `SOFTHSM2_CONF` when the module is initialised, and the process environment
//! cannot be changed safely from a test (`set_var` is unsafe, and unsafe code is forbidden),
//! so the test re-runs itself in a child process with the variable set.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironroot_pki::{
    CaDirectory, DeviceId, HierarchyPolicy, InitOptions, IssuancePolicy, KdfParams,
    OnlineKeyBackend, OnlineSecrets, Pin, Pkcs11KeyRef, Pkcs11Signer, SignerError,
};
use ironroot_testkit::{run_ok, tool};
use time::{Duration, OffsetDateTime};

use crate::common::*;

const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "ironroot-test";
const PIN: &str = "5678";
const CHILD_ENV: &str = "IRONROOT_PKCS11_TEST_DIR";

fn module() -> PathBuf {
    let path = PathBuf::from(MODULE);
    assert!(
        path.exists(),
        "{MODULE} is missing; run `bash .ci/run` once (installs softhsm2)"
    );
    path
}

/// Runs `test` (named `name` in this binary) in a child process with a fresh SoftHSM token.
fn in_softhsm_child(name: &str, test: impl FnOnce(&Path)) {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        test(Path::new(&dir));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tokens = tmp.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let conf = tmp.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            tokens.display()
        ),
    )
    .unwrap();
    run_ok(
        Command::new(tool("softhsm2-util"))
            .env("SOFTHSM2_CONF", &conf)
            .args([
                "--init-token",
                "--free",
                "--label",
                TOKEN,
                "--so-pin",
                "1234",
                "--pin",
                PIN,
            ]),
    );
    let out = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env("SOFTHSM2_CONF", &conf)
        .env(CHILD_ENV, tmp.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child test failed:\n{text}");
    assert!(text.contains("1 passed"), "child ran no test:\n{text}");
}

#[test]
fn intermediate_key_in_softhsm_issues_certificates_openssl_verifies() {
    in_softhsm_child(
        "pkcs11_softhsm::intermediate_key_in_softhsm_issues_certificates_openssl_verifies",
        |tmp| {
            // A wrong PIN is refused. (Checked first: PKCS#11 login state is per process and token,
            // so once this process has logged in, a later C_Login reports "already logged in".)
            let first = Pkcs11KeyRef {
                module: module(),
                token_label: TOKEN.into(),
                key_label: "ironroot-intermediate-1".into(),
            };
            assert!(matches!(
                Pkcs11Signer::generate(&first, &Pin::new("0000".into())),
                Err(SignerError::Pkcs11 {
                    operation: "C_Login",
                    ..
                })
            ));
            let data = tmp.join("data");
            let dir = CaDirectory::new(&data);
            let now = OffsetDateTime::now_utc();
            dir.init(
                InitOptions {
                    root_passphrase: pass(ROOT_PASS),
                    online: Some(OnlineKeyBackend::Pkcs11 {
                        module: module(),
                        token_label: TOKEN.into(),
                        pin: Pin::new(PIN.into()),
                    }),
                    kdf: KdfParams::MINIMUM,
                    hierarchy: HierarchyPolicy::default(),
                    operator: DeviceId::parse("admin").unwrap(),
                },
                now,
            )
            .unwrap();
            // No online key files: the keys are in the token.
            assert!(!dir.path().join("intermediate-1.key.enc").exists());
            assert!(!dir.path().join("factory.key.enc").exists());
            let state = std::fs::read_to_string(dir.path().join("ca-state.json")).unwrap();
            assert!(
                state.contains("ironroot-intermediate-1") && !state.contains(PIN),
                "{state}"
            );

            let online = dir
                .open_online(
                    &OnlineSecrets {
                        passphrase: None,
                        pkcs11_pin: Some(Pin::new(PIN.into())),
                    },
                    now,
                )
                .unwrap();
            assert!(online.issuing().signer().describe().contains("PKCS#11"));

            let key = tmp.join("dev.key");
            let csr = openssl_csr(&key, "/CN=hsm-dev-1", &[], "P-256");
            let cert = online
                .issuing()
                .issue_device_from_csr(
                    &csr,
                    &DeviceId::parse("hsm-dev-1").unwrap(),
                    &IssuancePolicy::default(),
                    now,
                )
                .unwrap();
            let crls = online.sign_crls(&[], now, Duration::hours(1)).unwrap();
            let leaf = tmp.join("leaf.pem");
            std::fs::write(&leaf, cert.pem()).unwrap();
            let chain = tmp.join("chain.pem");
            std::fs::write(&chain, dir.chain_pem(now).unwrap()).unwrap();
            let crl = tmp.join("crl.pem");
            std::fs::write(
                &crl,
                format!("{}{}", crls[0].pem(), dir.root_crl_pem().unwrap()),
            )
            .unwrap();
            let (ok, out) = openssl_verify(
                &[
                    "-CAfile",
                    chain.to_str().unwrap(),
                    "-crl_check_all",
                    "-CRLfile",
                    crl.to_str().unwrap(),
                ],
                &leaf,
            );
            assert!(ok, "{out}");

            // Rotation puts generation 2 in the token as well.
            dir.rotate_intermediate(
                None,
                &pass(ROOT_PASS),
                &OnlineKeyBackend::Pkcs11 {
                    module: module(),
                    token_label: TOKEN.into(),
                    pin: Pin::new(PIN.into()),
                },
                KdfParams::MINIMUM,
                Duration::days(7),
                now,
            )
            .unwrap();
            let reference = Pkcs11KeyRef {
                module: module(),
                token_label: TOKEN.into(),
                key_label: "ironroot-intermediate-2".into(),
            };
            Pkcs11Signer::open(&reference, &Pin::new(PIN.into())).unwrap();

            // Duplicate label, missing key, missing token: typed errors.
            assert!(matches!(
                Pkcs11Signer::generate(&reference, &Pin::new(PIN.into())),
                Err(SignerError::Pkcs11Key(_))
            ));
            let missing = Pkcs11KeyRef {
                key_label: "nope".into(),
                ..reference.clone()
            };
            assert!(matches!(
                Pkcs11Signer::open(&missing, &Pin::new(PIN.into())),
                Err(SignerError::Pkcs11Key(_))
            ));
            let no_token = Pkcs11KeyRef {
                token_label: "no-such-token".into(),
                ..reference
            };
            assert!(matches!(
                Pkcs11Signer::open(&no_token, &Pin::new(PIN.into())),
                Err(SignerError::Pkcs11Key(_))
            ));
            println!("pkcs11 child test done");
        },
    );
}
