//! Boot reporting: the agent tells the cloud what secure boot decided and confirms a trial
//! image once its health check passed.

use super::Agent;
use crate::DeviceError;

/// How many times one connection tries to deliver a boot report before waiting for the next.
const BOOT_REPORT_ATTEMPTS: u32 = 8;

impl Agent {
    /// Sends this boot's report if the cloud does not have it yet; a trial image whose report
    /// was accepted has passed its health check and is confirmed, then reported again. A
    /// failure is reported to the observer and retried after the next connection.
    pub(super) async fn report_boot(&mut self) {
        let (Some(firmware), Some(tls)) = (self.firmware.as_mut(), self.tls.as_ref()) else {
            return;
        };
        if self.boot_reported {
            return;
        }
        let id = &self.cfg.device_id;
        let mut report = firmware.boot_report();
        // A busy server (429, a timeout) is retried with full-jitter backoff; a refusal of the
        // report itself (400, 403) is not.
        let mut backoff = self.cfg.backoff.clone();
        backoff.reset();
        loop {
            if let Err(e) = self.cfg.est.report_boot(tls, id, &report).await {
                self.observer.failed(id, "boot-report", &e);
                let retry = !matches!(e, DeviceError::Refused { status, .. } if status != 429);
                if !retry || backoff.attempts() >= BOOT_REPORT_ATTEMPTS {
                    return;
                }
                tokio::time::sleep(backoff.next_delay(Self::jitter())).await;
                continue;
            }
            self.observer.boot_reported(id, &report);
            if !report.trial {
                break;
            }
            match firmware.confirm() {
                Ok(confirmed) if !confirmed.trial => report = confirmed,
                Ok(_) => {
                    let e = DeviceError::BadInput {
                        what: "firmware",
                        reason: "the image is still on trial after confirming".into(),
                    };
                    self.observer.failed(id, "confirm", &e);
                    return;
                }
                Err(e) => {
                    self.observer.failed(id, "confirm", &e);
                    return;
                }
            }
        }
        self.boot_reported = true;
    }
}
