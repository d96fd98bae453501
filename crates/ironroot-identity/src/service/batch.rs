//! Batch issuance: many CSRs through the same [`IdentityService::issue`] path (same checks,
//! audit entries and registry records as a single issue), several at a time so the group
//! committer records them together, with the CA key unlocked once for the whole batch.

use std::sync::{Arc, Mutex};

use super::{IdentityService, IssueRequest, Issued};
use crate::error::IdentityError;

/// Requests in flight at once in [`IdentityService::issue_batch`] by default: enough to fill
/// a group commit of the registry and the audit log.
pub const BATCH_CONCURRENCY: usize = 256;

impl IdentityService {
    /// Issues every request through [`IdentityService::issue`], `concurrency` at a time, and
    /// returns one result per request, in request order. A refused request (bad CSR, unknown
    /// device) does not stop the others. `on_done` is called on the caller's task after each
    /// completed request with the number completed so far (a progress bar).
    pub async fn issue_batch(
        &self,
        requests: Vec<IssueRequest>,
        concurrency: usize,
        mut on_done: impl FnMut(usize),
    ) -> Vec<Result<Issued, IdentityError>> {
        let total = requests.len();
        let queue = Arc::new(Mutex::new(requests.into_iter().enumerate()));
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..concurrency.clamp(1, total.max(1)) {
            let (service, queue, tx) = (self.clone(), Arc::clone(&queue), tx.clone());
            tokio::spawn(async move {
                loop {
                    // The lock is held only to take the next request, never across an await.
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some((index, request)) = next else {
                        return;
                    };
                    if tx.send((index, service.issue(request).await)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let mut results: Vec<Option<Result<Issued, IdentityError>>> =
            std::iter::repeat_with(|| None).take(total).collect();
        let mut done = 0;
        while let Some((index, result)) = rx.recv().await {
            results[index] = Some(result);
            done += 1;
            on_done(done);
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(IdentityError::SignerStopped)))
            .collect()
    }
}
