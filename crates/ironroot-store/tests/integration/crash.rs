//! Crash safety on SQLite: kill -9 a writer process in the middle of its writes, reopen, and
//! find every acknowledged write — and no half-written one.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironroot_store::{DeviceFilter, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_write_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ironroot-store-crash-writer"))
            .arg(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start crash writer");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut acked = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ok ") {
                    acked.push(n.parse::<u64>().unwrap());
                }
            }
            acked
        });
        // Let it write for a while (varying, so the kill lands at different points).
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(400 + 150 * round));
        child.kill().expect("SIGKILL the writer"); // std's kill is SIGKILL on Unix
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the writer must have been killed, not exited: {status}"
        );
        let acked = reader.join().unwrap();
        assert!(
            acked.len() > 10,
            "the writer acknowledged only {} writes in {:?}",
            acked.len(),
            started.elapsed()
        );

        let store = Store::open_data_dir(dir.path())
            .await
            .expect("reopen after crash");
        let mut present = std::collections::BTreeSet::new();
        let mut after = None;
        loop {
            let page = store
                .list_devices(&DeviceFilter {
                    after: after.clone(),
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(last.id.clone());
            present.extend(page.into_iter().map(|d| d.id));
        }
        for n in &acked {
            let id = format!("crash-{n}");
            assert!(
                present.contains(&id),
                "round {round}: acknowledged write {id} was lost"
            );
        }
        // Atomicity across the crash: every device present has its certificate.
        for id in &present {
            let certs = store.certificates_for_device(id).await.unwrap();
            assert_eq!(
                certs.len(),
                1,
                "round {round}: {id} has no certificate: half a transaction"
            );
        }
        eprintln!(
            "round {round}: {} acknowledged, {} present after SIGKILL",
            acked.len(),
            present.len()
        );
        store.close().await;
        // The next round restarts numbering: clear the directory.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
}
