//! Test helper for the crash-safety test (not a user tool): writes issuance-shaped transactions
//! (a device and its certificate, one transaction each) to a SQLite data directory as fast as
//! it can, printing `ok N` after each commit returned, until it is killed.
//!
//! The test kills it with SIGKILL mid-write and checks that every acknowledged N is present.
#![forbid(unsafe_code)]

use std::io::Write as _;

use ironroot_store::{CertificateKind, NewCertificate, NewDevice, Store};

fn main() -> std::process::ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: ironroot-store-crash-writer DATA_DIR");
        return std::process::ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let store = Store::open_data_dir(std::path::Path::new(&dir))
            .await
            .expect("open store");
        let mut stdout = std::io::stdout().lock();
        for n in 0u64.. {
            let id = format!("crash-{n}");
            let mut tx = store.begin().await.expect("begin");
            tx.add_device(&NewDevice::new(&id))
                .await
                .expect("add device");
            tx.record_issued_certificate(&NewCertificate {
                serial: ironroot_pki::Serial::from_be_bytes(&(n + 1).to_be_bytes())
                    .expect("positive"),
                der: format!("certificate {n}").into_bytes(),
                device_id: Some(id),
                kind: CertificateKind::Operational,
                issuer: "crash-test".to_owned(),
                subject: format!("CN=crash-{n}"),
                not_before: 0,
                not_after: 1,
            })
            .await
            .expect("record certificate");
            tx.commit().await.expect("commit");
            // Acknowledge only after commit returned.
            writeln!(stdout, "ok {n}").expect("stdout");
            stdout.flush().expect("flush");
        }
    });
    std::process::ExitCode::SUCCESS
}
