//! kill -9 in the middle of an issuance loop: every certificate that was written out has its
//! registry record and its audit entry, every registry record has its audit entry, and the
//! audit log verifies. SQLite (the embedded default; the store's own crash test covers the
//! commit itself).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use ironroot_audit::Outcome;
use ironroot_store::{NewDevice, Store};

use crate::harness::{audit_events, init_ca, openssl_csr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_issuance_leaves_no_certificate_without_record_or_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir);
    const DEVICES: usize = 50;
    {
        let store = Store::open_data_dir(dir).await.unwrap();
        for i in 0..DEVICES {
            store
                .add_device(&NewDevice::new(format!("crash-{i}")))
                .await
                .unwrap();
        }
        store.close().await;
    }
    let csr = dir.join("crash.csr");
    std::fs::write(
        &csr,
        openssl_csr(&dir.join("crash.key"), "/O=crash", &[], "P-256"),
    )
    .unwrap();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ironroot-identity-crash-issuer"))
            .arg(dir)
            .arg(&csr)
            .arg(&out)
            .arg(DEVICES.to_string())
            .env("IRONROOT_CA_PASSPHRASE", "online passphrase for tests")
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(1500 + 300 * round)).await;
        assert!(child.try_wait().unwrap().is_none(), "issuer died by itself");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    let store = Store::open_data_dir(dir).await.unwrap();
    let written: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".der").map(str::to_owned))
        .collect();
    assert!(
        written.len() > 20,
        "only {} certificates issued",
        written.len()
    );
    let events = audit_events(&store).await;
    let audited: HashSet<String> = events
        .iter()
        .filter(|e| e.event_type == "cert.issued" && e.outcome == Outcome::Success)
        .filter_map(|e| e.details.get("serial").cloned())
        .collect();
    let mut recorded = HashSet::new();
    for i in 0..DEVICES {
        for c in store
            .certificates_for_device(&format!("crash-{i}"))
            .await
            .unwrap()
        {
            recorded.insert(c.serial);
        }
    }
    for serial in &written {
        let key = ironroot_pki::Serial::from_hex(serial).unwrap();
        let cert = store.certificate(&key).await.unwrap_or_else(|e| {
            panic!("certificate {serial} was handed out but is not recorded: {e}")
        });
        assert_eq!(
            cert.der,
            std::fs::read(out.join(format!("{serial}.der"))).unwrap()
        );
        assert!(
            audited.contains(&key.to_string()),
            "{serial} handed out without audit entry"
        );
    }
    for serial in &recorded {
        assert!(
            audited.contains(&serial.to_string()),
            "record {serial} without audit entry"
        );
    }
    eprintln!(
        "written {}, recorded {}, audited {} (audited but unrecorded = killed between audit and commit)",
        written.len(),
        recorded.len(),
        audited.len()
    );
    let verifier = ironroot_audit::AuditDir::new(dir).load_verifier().unwrap();
    ironroot_audit::verify_log(
        std::sync::Arc::new(ironroot_audit::SqlStorage::new(store.clone())),
        &verifier,
        &ironroot_audit::VerifyOptions::default(),
    )
    .await
    .expect("audit log verifies after the kills");
    // The audit log reopens for writing (witness and database agree).
    ironroot_audit::Audit::open_store(&store, dir)
        .await
        .unwrap();
}
