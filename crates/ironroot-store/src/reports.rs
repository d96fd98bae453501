//! What devices report about themselves: the latest boot report per device (running firmware,
//! security counter, measured-boot PCR). The history lives in the audit log.

use crate::error::{Result, StoreError};
use crate::on_backend;
use crate::store::Store;

/// The latest boot report of one device, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRecord {
    /// The device.
    pub device_id: String,
    /// When the server received it (Unix seconds).
    pub reported_at: i64,
    /// The running firmware version, when something booted.
    pub firmware_version: Option<String>,
    /// The running image's security counter.
    pub security_counter: i64,
    /// The measured-boot PCR, hex.
    pub pcr: String,
    /// Whether the image ran on trial (not yet confirmed).
    pub trial: bool,
    /// How many images the boot refused.
    pub refused: i64,
    /// The whole report, JSON.
    pub report: String,
}

type Row = (String, i64, Option<String>, i64, String, i64, i64, String);

fn from_row(r: Row) -> BootRecord {
    BootRecord {
        device_id: r.0,
        reported_at: r.1,
        firmware_version: r.2,
        security_counter: r.3,
        pcr: r.4,
        trial: r.5 != 0,
        refused: r.6,
        report: r.7,
    }
}

impl Store {
    /// Stores `record` as the device's latest boot report (replacing the previous one).
    /// Fails with [`StoreError::UnknownDevice`] for an unregistered device.
    pub async fn record_boot_report(&self, record: &BootRecord) -> Result<()> {
        let op = "record boot report";
        let mut pooled = self.acquire().await?;
        let mut conn = pooled.connection();
        let written = on_backend!(&mut conn, c => {
            sqlx::query(
                "INSERT INTO report_boot (device_id, reported_at, firmware_version, \
                 security_counter, pcr, trial, refused, report) \
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8 WHERE EXISTS \
                 (SELECT 1 FROM devices WHERE id = $1) \
                 ON CONFLICT (device_id) DO UPDATE SET reported_at = excluded.reported_at, \
                 firmware_version = excluded.firmware_version, \
                 security_counter = excluded.security_counter, pcr = excluded.pcr, \
                 trial = excluded.trial, refused = excluded.refused, report = excluded.report",
            )
            .bind(&record.device_id)
            .bind(record.reported_at)
            .bind(&record.firmware_version)
            .bind(record.security_counter)
            .bind(&record.pcr)
            .bind(i64::from(record.trial))
            .bind(record.refused)
            .bind(&record.report)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db(op))?;
        if written == 0 {
            return Err(StoreError::UnknownDevice(record.device_id.clone()));
        }
        Ok(())
    }

    /// The device's latest boot report, if it ever sent one.
    pub async fn boot_report(&self, device_id: &str) -> Result<Option<BootRecord>> {
        let mut pooled = self.acquire().await?;
        let mut conn = pooled.connection();
        let row: Option<Row> = on_backend!(&mut conn, c => {
            sqlx::query_as(
                "SELECT device_id, reported_at, firmware_version, security_counter, pcr, \
                 trial, refused, report FROM report_boot WHERE device_id = $1",
            )
            .bind(device_id)
            .fetch_optional(&mut **c)
            .await
        })
        .map_err(StoreError::db("read boot report"))?;
        Ok(row.map(from_row))
    }
}
