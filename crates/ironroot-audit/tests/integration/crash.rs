//! kill -9 of a process appending heavily (64 concurrent `record()` callers): after a restart
//! every acknowledged entry is present with its content, the log verifies (witness included)
//! and appends continue. On SQLite (data directory) and PostgreSQL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ironroot_audit::{Audit, AuditDir, Event, LogStorage, SqlStorage, VerifyOptions, verify_log};
use ironroot_store::Store;

use crate::backend::pg_database;

/// One acknowledged append: index → (task, seq).
type Acked = BTreeMap<u64, (u64, u64)>;

/// Runs the crash writer until it acknowledged some appends, lets it run `extra` longer, then
/// SIGKILLs it and returns what it acknowledged.
fn run_and_kill(dir: &Path, url: Option<&str>, extra: Duration) -> Acked {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ironroot-audit-crash-writer"));
    cmd.arg(dir);
    if let Some(url) = url {
        cmd.arg(url);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start crash writer");
    let stdout = child.stdout.take().unwrap();
    let (first_tx, first_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut acked = Acked::new();
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        loop {
            line.clear();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            // Only a complete line is an acknowledgement (the kill may cut the last one).
            let Some(line) = line.strip_suffix('\n') else {
                break;
            };
            let mut f = line.strip_prefix("ok ").unwrap_or_default().split(' ');
            let (Some(i), Some(t), Some(s), None) = (f.next(), f.next(), f.next(), f.next()) else {
                panic!("unexpected output from the crash writer: {line:?}");
            };
            let (i, t, s) = (i.parse().unwrap(), t.parse().unwrap(), s.parse().unwrap());
            if acked.is_empty() {
                let _ = first_tx.send(());
            }
            assert!(
                acked.insert(i, (t, s)).is_none(),
                "index {i} acknowledged twice"
            );
        }
        acked
    });
    first_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the crash writer acknowledged nothing within 120 s");
    std::thread::sleep(extra);
    child.kill().expect("SIGKILL the writer"); // std's kill is SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer must have been killed, not exited: {status}"
    );
    reader.join().unwrap()
}

async fn check_after_crash(store: &Store, dir: &Path, acked: &Acked, round: u32) -> u64 {
    // Reopening checks the latest checkpoint, the stored tree and the witness.
    let audit = Audit::open_store(store, dir)
        .await
        .unwrap_or_else(|e| panic!("round {round}: reopen after kill -9: {e}"));
    let storage = Arc::new(SqlStorage::new(store.clone()));
    let verifier = AuditDir::new(dir).load_verifier().unwrap();
    let witness = AuditDir::new(dir).witness().read().await.unwrap().unwrap();
    let verified = verify_log(
        storage.clone(),
        &verifier,
        &VerifyOptions {
            external_checkpoints: vec![witness],
            ..VerifyOptions::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("round {round}: verification after kill -9: {e}"));
    let size = verified.size;
    // Every acknowledged append is there, with the content that was acknowledged.
    for (&index, &(task, seq)) in acked {
        assert!(
            index < size,
            "round {round}: acknowledged entry {index} lost (log has {size})"
        );
        let leaf = storage.read_leaves(index, index + 1, 1).await.unwrap();
        let event = Event::decode(&leaf[0].data).unwrap();
        assert_eq!(
            (event.subject.id.as_str(), event.details["seq"].as_str()),
            (task.to_string().as_str(), seq.to_string().as_str()),
            "round {round}: entry {index} holds another event than acknowledged"
        );
    }
    // Appends continue where the log ends.
    let r = audit
        .record(
            Event::new(ironroot_audit::EventKind::OperatorNote, "system")
                .detail("after", round.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(r.index, size, "round {round}");
    size + 1
}

async fn crash_rounds(dir: &Path, url: Option<&str>) {
    let mut total_acked = 0;
    let mut size = 0;
    for round in 0..3u32 {
        let acked = run_and_kill(dir, url, Duration::from_millis(300 + 250 * round as u64));
        assert!(
            acked.len() > 200,
            "round {round}: only {} appends acknowledged: not a heavy load",
            acked.len()
        );
        assert!(
            acked.keys().all(|&i| i >= size),
            "round {round}: indexes reused"
        );
        total_acked += acked.len();
        let store = match url {
            Some(url) => Store::open(url).await.unwrap(),
            None => Store::open_data_dir(dir).await.unwrap(),
        };
        size = check_after_crash(&store, dir, &acked, round).await;
        store.close().await;
    }
    assert!(total_acked > 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_appends_loses_no_acknowledged_entry_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    crash_rounds(dir.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_heavy_appends_loses_no_acknowledged_entry_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = pg_database().await;
    crash_rounds(dir.path(), Some(&db.url)).await;
}
