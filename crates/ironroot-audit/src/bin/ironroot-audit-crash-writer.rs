//! Test helper for the kill -9 test (not a user tool): appends audit events as fast as it can
//! from many concurrent `record()` callers to the log of a data directory (SQLite, or the
//! PostgreSQL database given as second argument), printing `ok INDEX TASK SEQ` after each
//! acknowledged append, until it is killed.
//!
//! The test kills it with SIGKILL mid-write and checks that every acknowledged entry is present
//! and that the log verifies.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;

use ironroot_audit::{Audit, Event};
use ironroot_store::Store;

/// Concurrent callers of `record()`.
const TASKS: u64 = 64;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: ironroot-audit-crash-writer DATA_DIR [DATABASE_URL]");
        return std::process::ExitCode::from(2);
    };
    let url = args.next().map(|u| u.into_string().expect("UTF-8 URL"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let store = match url {
            Some(url) => Store::open(&url).await.expect("open store"),
            None => Store::open_data_dir(&dir).await.expect("open store"),
        };
        let audit = Audit::open_store(&store, &dir)
            .await
            .expect("open audit log");
        let mut tasks = Vec::new();
        for task in 0..TASKS {
            let audit = audit.clone();
            tasks.push(tokio::spawn(async move {
                for seq in 0u64.. {
                    let event = Event::new(ironroot_audit::EventKind::OperatorNote, "system")
                        .subject("task", task.to_string())
                        .detail("seq", seq.to_string());
                    let receipt = audit.record(event).await.expect("record");
                    // Acknowledge only after record() returned (the entry is durable).
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ok {} {task} {seq}", receipt.index).expect("stdout");
                    out.flush().expect("flush");
                }
            }));
        }
        for t in tasks {
            t.await.expect("writer task");
        }
    });
    std::process::ExitCode::SUCCESS
}
