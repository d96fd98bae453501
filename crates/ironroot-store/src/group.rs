//! Group commit: many callers' transactions share one COMMIT (one fsync), each still atomic and
//! each acknowledged only once it is durable.
//!
//! ```text
//!  caller A ─ job ─┐                        ┌─ SAVEPOINT; job A; RELEASE ─┐
//!  caller B ─ job ─┼─► queue ─► committer ──┼─ SAVEPOINT; job B; ROLLBACK TO (failed) ──► COMMIT ─► ack A
//!  caller C ─ job ─┘                        └─ SAVEPOINT; job C; RELEASE ─┘                 (B got its error at once)
//! ```
//!
//! A job that fails is rolled back to its savepoint alone and its caller gets the error; the
//! others commit. Results are sent only after COMMIT returned, so "acknowledged" keeps meaning
//! "durable". Batches form naturally: while one COMMIT is being flushed, new jobs queue up.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

use crate::error::{Result, StoreError};
use crate::store::Store;
use crate::tx::Transaction;

/// A job's future, borrowing the shared transaction.
pub type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// A type-erased job: run on the shared transaction, or told that there is none.
type Erased = Box<
    dyn for<'a> FnOnce(
            std::result::Result<&'a mut Transaction, Arc<StoreError>>,
        ) -> Pin<Box<dyn Future<Output = Done> + Send + 'a>>
        + Send,
>;

/// Delivers a successful job's result once the commit outcome is known.
type Deliver = Box<dyn FnOnce(std::result::Result<(), Arc<StoreError>>) + Send>;

/// A finished job: succeeded (result waits for COMMIT) or failed (error already delivered).
enum Done {
    Succeeded(Deliver),
    Failed,
}

/// A handle to a background task that batches transactions. Cheap to clone.
#[derive(Clone, Debug)]
pub struct GroupCommitter {
    jobs: mpsc::Sender<Erased>,
}

/// Batches committing at the same time: SQLite has one writer, so one; PostgreSQL flushes
/// concurrent commits together and runs jobs on several connections at once.
fn workers(store: &Store) -> usize {
    match store.backend() {
        crate::Backend::Sqlite => 1,
        crate::Backend::Postgres => (store.options().max_connections() as usize / 2).clamp(1, 4),
    }
}

impl Store {
    /// Starts a group committer on the current tokio runtime: at most `max_batch` jobs share one
    /// transaction (on PostgreSQL up to four such transactions run side by side). It stops when
    /// every handle is dropped.
    pub fn group_committer(&self, max_batch: usize) -> GroupCommitter {
        let max_batch = max_batch.max(1);
        let (jobs, queue) = mpsc::channel(max_batch * 4);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers(self) {
            tokio::spawn(committer(self.clone(), Arc::clone(&queue), max_batch));
        }
        GroupCommitter { jobs }
    }
}

impl GroupCommitter {
    /// Runs `job` inside a shared transaction and returns its result once that transaction has
    /// committed (or the job's own error at once). The job must only use the transaction it is
    /// given; what it does is atomic on its own (a savepoint).
    ///
    /// ```ignore
    /// let cert = committer
    ///     .run(move |tx| Box::pin(async move { tx.record_issued_certificate(&new).await }))
    ///     .await?;
    /// ```
    pub async fn run<T, F>(&self, job: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut Transaction) -> JobFuture<'a, T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let erased: Erased = Box::new(move |tx| {
            Box::pin(async move {
                let tx = match tx {
                    Ok(tx) => tx,
                    Err(err) => {
                        let _ = reply.send(Err(StoreError::GroupCommit(err)));
                        return Done::Failed;
                    }
                };
                match job(tx).await {
                    Ok(value) => Done::Succeeded(Box::new(move |committed| {
                        let outcome = committed.map(|()| value).map_err(StoreError::GroupCommit);
                        let _ = reply.send(outcome);
                    })),
                    Err(err) => {
                        let _ = reply.send(Err(err));
                        Done::Failed
                    }
                }
            })
        });
        self.jobs
            .send(erased)
            .await
            .map_err(|_| StoreError::GroupCommitterStopped)?;
        answer
            .await
            .map_err(|_| StoreError::GroupCommitterStopped)?
    }
}

async fn committer(store: Store, queue: Arc<Mutex<mpsc::Receiver<Erased>>>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    loop {
        // Hold the queue only while taking a batch, so another worker can take the next one
        // while this batch runs and commits.
        let taken = queue.lock().await.recv_many(&mut batch, max_batch).await;
        if taken == 0 {
            return;
        }
        let (waiting, committed) = run_batch(&store, &mut batch).await;
        for deliver in waiting {
            deliver(committed.clone());
        }
    }
}

/// Runs one batch; returns the deliveries waiting for the commit and the commit's outcome.
async fn run_batch(
    store: &Store,
    batch: &mut Vec<Erased>,
) -> (Vec<Deliver>, std::result::Result<(), Arc<StoreError>>) {
    let mut tx = match store.begin().await {
        Ok(tx) => tx,
        Err(err) => {
            let err = Arc::new(err);
            for job in batch.drain(..) {
                job(Err(err.clone())).await;
            }
            return (Vec::new(), Ok(()));
        }
    };
    let mut waiting = Vec::new();
    let mut failure = None;
    for job in batch.drain(..) {
        if let Some(err) = &failure {
            // The shared transaction is unusable: fail the rest without running them.
            job(Err(Arc::clone(err))).await;
            continue;
        }
        let mark = tx.pending_change_count();
        if let Err(err) = tx.savepoint_command("SAVEPOINT ironroot_job").await {
            failure = Some(Arc::new(err));
            job(Err(Arc::clone(failure.as_ref().unwrap()))).await;
            continue;
        }
        let done = job(Ok(&mut tx)).await;
        let closed = match done {
            Done::Succeeded(deliver) => {
                waiting.push(deliver);
                tx.savepoint_command("RELEASE SAVEPOINT ironroot_job").await
            }
            Done::Failed => {
                tx.truncate_pending_changes(mark);
                match tx
                    .savepoint_command("ROLLBACK TO SAVEPOINT ironroot_job")
                    .await
                {
                    Ok(()) => tx.savepoint_command("RELEASE SAVEPOINT ironroot_job").await,
                    Err(err) => Err(err),
                }
            }
        };
        if let Err(err) = closed {
            failure = Some(Arc::new(err));
        }
    }
    if let Some(err) = failure {
        drop(tx); // roll everything back
        return (waiting, Err(err));
    }
    let committed = tx.commit().await.map_err(Arc::new);
    (waiting, committed)
}
