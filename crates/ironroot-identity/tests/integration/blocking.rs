//! Issue 12, defect 7: signing (an HSM round trip) and CRL writing run on blocking threads,
//! so a slow signer does not stall the async runtime. The signer here is the CA's real key
//! with a token-like delay added before each signature.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ironroot_identity::{IdentityOptions, IdentityService};
use ironroot_pki::{CaSigner, SignerError};
use ironroot_store::{NewDevice, Store};

use crate::harness::{init_ca, online, openssl_csr, request};

/// How long the "token" takes per signature.
const SIGN_DELAY: Duration = Duration::from_millis(300);

/// The real intermediate key, answering after [`SIGN_DELAY`] (blocking, as a PKCS#11 call
/// does).
struct SlowSigner {
    inner: Arc<dyn CaSigner>,
    signed: Arc<AtomicUsize>,
}

impl fmt::Debug for SlowSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SlowSigner")
    }
}

impl CaSigner for SlowSigner {
    fn public_key(&self) -> &[u8] {
        self.inner.public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        std::thread::sleep(SIGN_DELAY);
        self.signed.fetch_add(1, Ordering::Relaxed);
        self.inner.sign(message)
    }

    fn describe(&self) -> String {
        "slow test signer".into()
    }
}

/// Longest lateness of a 5 ms timer on the runtime while `work` runs.
async fn worst_timer_lag<F: std::future::Future>(work: F) -> (F::Output, Duration) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = Arc::clone(&stop);
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                tokio::time::sleep(Duration::from_millis(5)).await;
                worst = worst.max(t.elapsed().saturating_sub(Duration::from_millis(5)));
            }
            worst
        })
    };
    let out = work.await;
    stop.store(true, Ordering::Relaxed);
    (out, ticker.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_keeps_answering_while_a_slow_signer_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    init_ca(dir);
    let signed = Arc::new(AtomicUsize::new(0));
    let ca = online(dir)
        .map_intermediate_signers(|inner| {
            Arc::new(SlowSigner {
                inner,
                signed: Arc::clone(&signed),
            })
        })
        .unwrap();
    let store = Store::open_data_dir(dir).await.unwrap();
    let audit = Arc::new(
        ironroot_audit::Audit::open_store(&store, dir)
            .await
            .unwrap(),
    );
    let service = IdentityService::open(ca, store.clone(), audit, IdentityOptions::new(dir))
        .await
        .unwrap();
    const N: usize = 8;
    let mut requests = Vec::new();
    for i in 0..N {
        let id = format!("slow-{i}");
        store.add_device(&NewDevice::new(&id)).await.unwrap();
        let key = dir.join(format!("{id}.key.pem"));
        requests.push(request(
            &id,
            openssl_csr(&key, &format!("/CN={id}"), &[], "P-256"),
        ));
    }

    // N issuances at once on a 2-worker runtime; each signature blocks for 300 ms.
    let start = Instant::now();
    let (results, lag) = worst_timer_lag(async {
        let mut tasks = Vec::new();
        for req in requests {
            let service = service.clone();
            tasks.push(tokio::spawn(async move { service.issue(req).await }));
        }
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.unwrap());
        }
        results
    })
    .await;
    let elapsed = start.elapsed();
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(signed.load(Ordering::Relaxed), N);
    // Signing on the runtime would hold both workers for 300 ms at a time: the timer would be
    // late by at least that much. Off the runtime it stays punctual.
    assert!(
        lag < Duration::from_millis(120),
        "the runtime stalled for {lag:?} while the signer worked"
    );
    // And signatures overlap instead of queueing behind two workers (8 × 300 ms / 2 = 1.2 s).
    assert!(
        elapsed < Duration::from_millis(1000),
        "signatures did not run in parallel: {elapsed:?}"
    );

    // CRL publication signs too (one CRL per trusted intermediate): also off the runtime.
    let ((), lag) = worst_timer_lag(async {
        service.write_crl().await.unwrap();
    })
    .await;
    assert!(
        lag < Duration::from_millis(120),
        "CRL writing stalled the runtime for {lag:?}"
    );
    assert_eq!(signed.load(Ordering::Relaxed), N + 1);
    store.close().await;
}
