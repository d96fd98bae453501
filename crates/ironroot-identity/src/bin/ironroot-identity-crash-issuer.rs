//! Test helper for the crash-consistency test: issues certificates in a loop from many tasks
//! and writes each one out (temp file + rename) only after `issue` returned, until killed.
//!
//! Usage: `ironroot-identity-crash-issuer DATA_DIR CSR_FILE OUT_DIR DEVICES`
//! (online CA passphrase in `IRONROOT_CA_PASSPHRASE`; devices `crash-<i>` must exist).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ironroot_audit::Audit;
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{CaDirectory, DeviceId, OnlineSecrets, Passphrase};
use ironroot_store::Store;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, data, csr, out, devices] = &args[..] else {
        eprintln!("usage: ironroot-identity-crash-issuer DATA_DIR CSR_FILE OUT_DIR DEVICES");
        std::process::exit(2);
    };
    let data = PathBuf::from(data);
    let out = PathBuf::from(out);
    let csr = std::fs::read(csr).expect("read CSR");
    let devices: usize = devices.parse().expect("device count");
    let pass = std::env::var("IRONROOT_CA_PASSPHRASE").expect("IRONROOT_CA_PASSPHRASE");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let ca = CaDirectory::new(&data)
            .open_online(
                &OnlineSecrets {
                    passphrase: Some(Passphrase::new(pass.into_bytes()).expect("passphrase")),
                    pkcs11_pin: None,
                },
                time::OffsetDateTime::now_utc(),
            )
            .expect("open CA");
        let store = Store::open_data_dir(&data).await.expect("open store");
        let audit = Arc::new(Audit::open_store(&store, &data).await.expect("open audit"));
        let service = IdentityService::open(ca, store, audit, IdentityOptions::new(&data))
            .await
            .expect("open service");
        let next = Arc::new(AtomicUsize::new(0));
        for _ in 0..32 {
            let (service, next, csr, out) =
                (service.clone(), Arc::clone(&next), csr.clone(), out.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed) % devices;
                    let issued = service
                        .issue(IssueRequest {
                            device: DeviceId::parse(&format!("crash-{i}")).unwrap(),
                            csr: csr.clone(),
                            actor: "service:crash-test".into(),
                            source: None,
                            purpose: IssuePurpose::Reenroll,
                        })
                        .await
                        .expect("issue");
                    let name = issued.serial().to_string();
                    let tmp = out.join(format!("{name}.tmp"));
                    std::fs::write(&tmp, issued.der()).unwrap();
                    std::fs::rename(&tmp, out.join(format!("{name}.der"))).unwrap();
                }
            });
        }
        // Issue until killed.
        std::future::pending::<()>().await
    });
}
