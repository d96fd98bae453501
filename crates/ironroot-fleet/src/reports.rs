//! Boot reports: what a device says secure boot decided, checked, audited and kept as the
//! device's latest report.

use ironroot_audit::{EventKind, Outcome};
use ironroot_device::BootReport;
use ironroot_store::{BootRecord, StoreError};

use crate::{Fleet, FleetError, Origin, event};

impl Fleet {
    /// Records `report` from `device` (already authenticated by its operational certificate).
    ///
    /// The measured-boot log must replay to the reported PCR and name the reported image, or
    /// the report is refused ([`FleetError::InvalidReport`], audited `denied`). Then, write-ahead:
    /// one `device.boot_reported` entry, one `firmware.refused` entry (outcome `denied`) per
    /// image the bootloader refused, and only then the registry row that the dashboard and the
    /// rollout engine read.
    pub async fn record_boot_report(
        &self,
        origin: &Origin,
        device: &str,
        report: &BootReport,
        json: &str,
    ) -> Result<BootRecord, FleetError> {
        let base = event(EventKind::DeviceBootReported, origin).subject("device", device);
        if let Err(e) = report.verified_log() {
            let refused = base
                .outcome(Outcome::Denied)
                .detail("reason", "invalid_measurements")
                .detail("error", e.to_string());
            let _ = self.audit.record(refused).await;
            return Err(FleetError::InvalidReport(e.to_string()));
        }
        let reported = base
            .clone()
            .detail(
                "firmware_version",
                report.firmware_version.clone().unwrap_or_default(),
            )
            .detail("security_counter", report.security_counter.to_string())
            .detail("device_counter", report.device_counter.to_string())
            .detail("pcr", report.pcr.clone())
            .detail("trial", report.trial.to_string())
            .detail("action", report.action.clone())
            .detail("refused", report.refused.len().to_string());
        self.audit
            .record(reported)
            .await
            .map_err(FleetError::Audit)?;
        for r in &report.refused {
            let refused = event(EventKind::FirmwareRefused, origin)
                .subject("device", device)
                .outcome(Outcome::Denied)
                .detail("reason", r.reason.clone())
                .detail("image", r.subject.clone())
                .detail("error", r.detail.clone())
                .detail(
                    "running_version",
                    report.firmware_version.clone().unwrap_or_default(),
                );
            self.audit
                .record(refused)
                .await
                .map_err(FleetError::Audit)?;
        }
        let record = BootRecord {
            device_id: device.to_owned(),
            reported_at: time_now(),
            firmware_version: report.firmware_version.clone(),
            security_counter: i64::from(report.security_counter),
            pcr: report.pcr.clone(),
            trial: report.trial,
            refused: i64::try_from(report.refused.len()).unwrap_or(i64::MAX),
            report: json.to_owned(),
        };
        match self.store.record_boot_report(&record).await {
            Ok(()) => Ok(record),
            Err(e) => {
                let failed = base
                    .outcome(Outcome::Failure)
                    .detail("reason", crate::reason(&e))
                    .detail("stage", "registry");
                let _ = self.audit.record(failed).await;
                Err(FleetError::from_store(e))
            }
        }
    }

    /// The device's latest boot report, if any.
    pub async fn boot_report(&self, device: &str) -> Result<Option<BootRecord>, StoreError> {
        self.store.boot_report(device).await
    }
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
