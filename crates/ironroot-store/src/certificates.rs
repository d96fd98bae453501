//! Certificates: recording issuance, supersession, revocation, and the lookups the CA,
//! provisioning and the broker need.

use ironroot_pki::Serial;
use sha2::{Digest, Sha256};

use crate::changes::ChangeKind;
use crate::conn::{Connection, RowExt};
use crate::devices::lock_state;
use crate::error::{Result, StoreError, is_foreign_key_violation, is_unique_violation};
use crate::model::{
    Certificate, CertificateKind, CertificateStatus, NewCertificate, RevocationReason,
    RevokedCertificate, hex, parse_fingerprint,
};
use crate::on_backend;
use crate::store::{Store, now};
use crate::tx::Transaction;
use crate::validate;

macro_rules! cert_columns {
    () => {
        "serial, fingerprint, device_id, kind, issuer, subject, not_before, not_after, status, \
         issued_at, revoked_at, revocation_reason, der"
    };
}

const BY_SERIAL: &str = concat!(
    "SELECT ",
    cert_columns!(),
    " FROM certificates WHERE serial = $1"
);
const BY_FINGERPRINT: &str = concat!(
    "SELECT ",
    cert_columns!(),
    " FROM certificates WHERE fingerprint = $1"
);
const BY_DEVICE: &str = concat!(
    "SELECT ",
    cert_columns!(),
    " FROM certificates WHERE device_id = $1 ORDER BY issued_at, serial"
);
const EXPIRING: &str = concat!(
    "SELECT ",
    cert_columns!(),
    " FROM certificates WHERE status <> 'revoked' AND not_after < $1 \
      ORDER BY not_after, serial LIMIT $2"
);
const REVOKE_ONE: &str = concat!(
    "UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 \
     WHERE serial = $3 AND status <> 'revoked' RETURNING ",
    cert_columns!()
);
const REVOKE_DEVICE: &str = concat!(
    "UPDATE certificates SET status = 'revoked', revoked_at = $1, revocation_reason = $2 \
     WHERE device_id = $3 AND status <> 'revoked' RETURNING ",
    cert_columns!()
);
const SUPERSEDE: &str = concat!(
    "UPDATE certificates SET status = 'superseded' WHERE serial = $1 AND status = 'active' \
     RETURNING ",
    cert_columns!()
);

/// Inserts a certificate unless its device is missing, in repair, revoked or decommissioned
/// (then nothing is inserted; the set is `DeviceState::may_receive_certificates`). PostgreSQL
/// locks the device row `FOR SHARE`, so a concurrent device revocation (which takes
/// `FOR UPDATE`) either waits for this transaction or is seen by it.
macro_rules! insert_certificate {
    ($lock:literal) => {
        concat!(
            "WITH d AS (SELECT id FROM devices WHERE id = $3 \
               AND state NOT IN ('in_repair', 'revoked', 'decommissioned')",
            $lock,
            ") INSERT INTO certificates (serial, fingerprint, device_id, kind, issuer, subject, \
               not_before, not_after, status, issued_at, der) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $10 \
             WHERE $3 IS NULL OR EXISTS (SELECT 1 FROM d)"
        )
    };
}
const INSERT_SQLITE: &str = insert_certificate!("");
const INSERT_POSTGRES: &str = insert_certificate!(" FOR SHARE");

fn bind_insert<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    new: &'q NewCertificate,
    serial: String,
    fingerprint: &[u8; 32],
    issued_at: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q [u8]: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(serial)
        .bind(hex(fingerprint))
        .bind(new.device_id.as_deref())
        .bind(new.kind.as_str())
        .bind(new.issuer.as_str())
        .bind(new.subject.as_str())
        .bind(new.not_before)
        .bind(new.not_after)
        .bind(issued_at)
        .bind(new.der.as_slice())
}

fn from_row(row: &impl RowExt) -> Result<Certificate> {
    let op = StoreError::db("read certificate");
    let get = || -> std::result::Result<_, sqlx::Error> {
        Ok((
            row.text("serial")?,
            row.text("fingerprint")?,
            row.opt_text("device_id")?,
            row.text("kind")?,
            row.text("issuer")?,
            row.text("subject")?,
            row.int("not_before")?,
            row.int("not_after")?,
            row.text("status")?,
            row.int("issued_at")?,
            row.opt_int("revoked_at")?,
            row.opt_text("revocation_reason")?,
            row.bytes("der")?,
        ))
    };
    let (
        serial,
        fingerprint,
        device_id,
        kind,
        issuer,
        subject,
        not_before,
        not_after,
        status,
        issued_at,
        revoked_at,
        reason,
        der,
    ) = get().map_err(op)?;
    let fingerprint = parse_fingerprint(&fingerprint).ok_or(StoreError::CorruptRow {
        table: "certificates",
        column: "fingerprint",
        value: fingerprint,
    })?;
    let serial = parse_serial(serial)?;
    let revocation = match (revoked_at, reason) {
        (Some(at), Some(reason)) => Some((at, RevocationReason::from_row(reason)?)),
        _ => None,
    };
    Ok(Certificate {
        serial,
        fingerprint,
        device_id,
        kind: CertificateKind::from_row(kind)?,
        issuer,
        subject,
        not_before,
        not_after,
        status: CertificateStatus::from_row(status)?,
        issued_at,
        revocation,
        der,
    })
}

/// Reads a serial column: the registry holds only the canonical text form, so anything else
/// is a corrupt row.
pub(crate) fn parse_serial(text: String) -> Result<Serial> {
    match Serial::from_hex(&text) {
        Ok(serial) if serial.to_string() == text => Ok(serial),
        _ => Err(StoreError::CorruptRow {
            table: "certificates",
            column: "serial",
            value: text,
        }),
    }
}

async fn fetch_one(
    conn: &mut Connection<'_>,
    sql: &'static str,
    key: &str,
) -> Result<Option<Certificate>> {
    on_backend!(conn, c => {
        match sqlx::query(sql).bind(key).fetch_optional(&mut **c).await {
            Ok(Some(row)) => from_row(&row).map(Some),
            Ok(None) => Ok(None),
            Err(err) => Err(StoreError::db("read certificate")(err)),
        }
    })
}

async fn fetch_many(
    conn: &mut Connection<'_>,
    sql: &'static str,
    op: &'static str,
    key: &str,
) -> Result<Vec<Certificate>> {
    on_backend!(conn, c => {
        match sqlx::query(sql).bind(key).fetch_all(&mut **c).await {
            Ok(rows) => rows.iter().map(from_row).collect(),
            Err(err) => Err(StoreError::db(op)(err)),
        }
    })
}

pub(crate) async fn by_serial(conn: &mut Connection<'_>, serial: &Serial) -> Result<Certificate> {
    // The canonical text form is the stored and indexed one, so any spelling the caller
    // parsed finds the same row.
    let key = serial.to_string();
    fetch_one(conn, BY_SERIAL, &key)
        .await?
        .ok_or(StoreError::UnknownCertificate(key))
}

pub(crate) async fn by_fingerprint(
    conn: &mut Connection<'_>,
    fp: &[u8; 32],
) -> Result<Certificate> {
    let fp = hex(fp);
    fetch_one(conn, BY_FINGERPRINT, &fp)
        .await?
        .ok_or(StoreError::UnknownCertificate(format!(
            "with fingerprint {fp}"
        )))
}

pub(crate) async fn for_device(
    conn: &mut Connection<'_>,
    device: &str,
) -> Result<Vec<Certificate>> {
    fetch_many(conn, BY_DEVICE, "list device certificates", device).await
}

pub(crate) async fn expiring(
    conn: &mut Connection<'_>,
    before: i64,
    limit: u32,
) -> Result<Vec<Certificate>> {
    on_backend!(conn, c => {
        match sqlx::query(EXPIRING).bind(before).bind(i64::from(limit)).fetch_all(&mut **c).await {
            Ok(rows) => rows.iter().map(from_row).collect(),
            Err(err) => Err(StoreError::db("list expiring certificates")(err)),
        }
    })
}

pub(crate) async fn revoked(conn: &mut Connection<'_>) -> Result<Vec<RevokedCertificate>> {
    let rows: Vec<(String, String, i64, String)> = on_backend!(conn, c => {
        sqlx::query_as(
            "SELECT serial, issuer, revoked_at, revocation_reason FROM certificates \
             WHERE status = 'revoked' ORDER BY serial",
        )
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db("list revoked certificates"))?;
    rows.into_iter()
        .map(|(serial, issuer, revoked_at, reason)| {
            Ok(RevokedCertificate {
                serial: parse_serial(serial)?,
                issuer,
                revoked_at,
                reason: RevocationReason::from_row(reason)?,
            })
        })
        .collect()
}

/// Explains why a conditional UPDATE on `serial` matched nothing.
async fn status_error(conn: &mut Connection<'_>, serial: &Serial, op: &'static str) -> StoreError {
    match by_serial(conn, serial).await {
        Ok(cert) => StoreError::CertificateStatus {
            serial: cert.serial,
            status: cert.status,
            op,
        },
        Err(err) => err,
    }
}

impl Transaction {
    /// Records a certificate the CA has just built (and not yet handed out) as active.
    ///
    /// Checks that the device exists and may still receive certificates (not in repair, revoked
    /// or decommissioned) — on PostgreSQL under a row lock, so a concurrent revocation of the
    /// device either waits for this transaction (and then revokes the new certificate too) or
    /// wins and makes this call fail. The fingerprint is computed here from the DER.
    pub async fn record_issued_certificate(&mut self, new: &NewCertificate) -> Result<Certificate> {
        let serial = new.serial.clone();
        validate::certificate_text("subject", &new.subject)?;
        validate::certificate_text("issuer", &new.issuer)?;
        if new.not_after < new.not_before {
            return Err(StoreError::InvalidValidity { serial });
        }
        if new.kind.needs_device() && new.device_id.is_none() {
            return Err(StoreError::MissingDevice { kind: new.kind });
        }
        if let Some(device) = &new.device_id {
            validate::device_id(device)?;
        }
        let fingerprint: [u8; 32] = Sha256::digest(&new.der).into();
        let issued_at = now();
        let mut conn = self.connection();
        // One round trip: the device check (locking the row on PostgreSQL) and the insert.
        let inserted = match &mut conn {
            Connection::Sqlite(c) => bind_insert(
                sqlx::query(INSERT_SQLITE),
                new,
                serial.to_string(),
                &fingerprint,
                issued_at,
            )
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()),
            Connection::Postgres(c) => bind_insert(
                sqlx::query(INSERT_POSTGRES),
                new,
                serial.to_string(),
                &fingerprint,
                issued_at,
            )
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected()),
        }
        .map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::DuplicateCertificate {
                    serial: serial.clone(),
                }
            } else if is_foreign_key_violation(&err) {
                StoreError::UnknownDevice(new.device_id.clone().unwrap_or_default())
            } else {
                StoreError::db("insert certificate")(err)
            }
        })?;
        if inserted == 0 {
            // Only a missing or retired device stops the insert; say which.
            let device = new.device_id.clone().unwrap_or_default();
            return Err(match lock_state(&mut conn, &device, false).await? {
                None => StoreError::UnknownDevice(device),
                Some(state) => StoreError::DeviceNotIssuable { device, state },
            });
        }
        Ok(Certificate {
            serial,
            fingerprint,
            device_id: new.device_id.clone(),
            kind: new.kind,
            issuer: new.issuer.clone(),
            subject: new.subject.clone(),
            not_before: new.not_before,
            not_after: new.not_after,
            status: CertificateStatus::Active,
            issued_at,
            revocation: None,
            der: new.der.clone(),
        })
    }

    /// The certificate with this serial, or [`StoreError::UnknownCertificate`].
    pub async fn certificate(&mut self, serial: &Serial) -> Result<Certificate> {
        by_serial(&mut self.connection(), serial).await
    }

    /// Marks an active certificate superseded (rotation: still valid until revoked or expired).
    pub async fn supersede_certificate(&mut self, serial: &Serial) -> Result<Certificate> {
        let mut conn = self.connection();
        let updated = fetch_one(&mut conn, SUPERSEDE, &serial.to_string()).await?;
        match updated {
            Some(cert) => Ok(cert),
            None => Err(status_error(&mut conn, serial, "supersede").await),
        }
    }

    /// Revokes one certificate (refusing one already revoked) and announces it on the change
    /// feed, so every broker adds it to its revoked set.
    pub async fn revoke_certificate(
        &mut self,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Certificate> {
        let at = now();
        let mut conn = self.connection();
        let updated = on_backend!(&mut conn, c => {
            match sqlx::query(REVOKE_ONE)
                .bind(at)
                .bind(reason.as_str())
                .bind(serial.to_string())
                .fetch_optional(&mut **c)
                .await
            {
                Ok(Some(row)) => from_row(&row).map(Some),
                Ok(None) => Ok(None),
                Err(err) => Err(StoreError::db("revoke certificate")(err)),
            }
        })?;
        let Some(cert) = updated else {
            return Err(status_error(&mut conn, serial, "revoke").await);
        };
        self.push_change(ChangeKind::CertificateRevoked, &cert.serial.to_string(), at);
        Ok(cert)
    }

    /// Revokes every not-yet-revoked certificate of a device; returns them (maybe none).
    ///
    /// Locks the device row first (PostgreSQL), so an issuance racing with this call either
    /// completes before and is revoked here, or runs after and sees the new device state.
    pub async fn revoke_device_certificates(
        &mut self,
        device: &str,
        reason: RevocationReason,
    ) -> Result<Vec<Certificate>> {
        let at = now();
        lock_state(&mut self.connection(), device, true)
            .await?
            .ok_or_else(|| StoreError::UnknownDevice(device.to_owned()))?;
        let revoked = self
            .revoke_locked_device_certificates(device, reason, at)
            .await?;
        Ok(revoked)
    }

    /// Revokes every certificate of a device whose row this transaction already locked, and
    /// queues their change-feed entries.
    pub(crate) async fn revoke_locked_device_certificates(
        &mut self,
        device: &str,
        reason: RevocationReason,
        at: i64,
    ) -> Result<Vec<Certificate>> {
        let revoked: Vec<Certificate> = on_backend!(&mut self.connection(), c => {
            match sqlx::query(REVOKE_DEVICE)
                .bind(at)
                .bind(reason.as_str())
                .bind(device)
                .fetch_all(&mut **c)
                .await
            {
                Ok(rows) => rows.iter().map(from_row).collect::<Result<Vec<_>>>(),
                Err(err) => Err(StoreError::db("revoke device certificates")(err)),
            }
        })?;
        for cert in &revoked {
            self.push_change(ChangeKind::CertificateRevoked, &cert.serial.to_string(), at);
        }
        Ok(revoked)
    }
}

impl Store {
    /// Records an issued certificate in its own transaction; see
    /// [`Transaction::record_issued_certificate`]. Prefer the transaction form when the same
    /// issuance also changes the device.
    pub async fn record_issued_certificate(&self, new: &NewCertificate) -> Result<Certificate> {
        let mut tx = self.begin().await?;
        let cert = tx.record_issued_certificate(new).await?;
        tx.commit().await?;
        Ok(cert)
    }

    /// The certificate with this serial, or [`StoreError::UnknownCertificate`]. Parse what an
    /// operator typed with [`Serial::from_hex`]: every spelling finds the same row.
    pub async fn certificate(&self, serial: &Serial) -> Result<Certificate> {
        by_serial(&mut self.acquire().await?.connection(), serial).await
    }

    /// The certificate with this SHA-256 fingerprint (of its DER).
    pub async fn certificate_by_fingerprint(&self, fingerprint: &[u8; 32]) -> Result<Certificate> {
        by_fingerprint(&mut self.acquire().await?.connection(), fingerprint).await
    }

    /// Every certificate of a device, oldest first.
    pub async fn certificates_for_device(&self, device: &str) -> Result<Vec<Certificate>> {
        for_device(&mut self.acquire().await?.connection(), device).await
    }

    /// Certificates not revoked whose validity ends before `before` (for renewal reminders and
    /// the defender's audits), soonest first, at most `limit`.
    pub async fn certificates_expiring_before(
        &self,
        before: i64,
        limit: u32,
    ) -> Result<Vec<Certificate>> {
        expiring(&mut self.acquire().await?.connection(), before, limit).await
    }

    /// The whole revoked set, ordered by serial: what the in-memory set loads at startup and
    /// the CRL lists.
    pub async fn revoked_certificates(&self) -> Result<Vec<RevokedCertificate>> {
        revoked(&mut self.acquire().await?.connection()).await
    }

    /// Marks a certificate superseded; see [`Transaction::supersede_certificate`].
    pub async fn supersede_certificate(&self, serial: &Serial) -> Result<Certificate> {
        let mut tx = self.begin().await?;
        let cert = tx.supersede_certificate(serial).await?;
        tx.commit().await?;
        Ok(cert)
    }

    /// Revokes one certificate; see [`Transaction::revoke_certificate`].
    pub async fn revoke_certificate(
        &self,
        serial: &Serial,
        reason: RevocationReason,
    ) -> Result<Certificate> {
        let mut tx = self.begin().await?;
        let cert = tx.revoke_certificate(serial, reason).await?;
        tx.commit().await?;
        Ok(cert)
    }

    /// Revokes all certificates of a device; see [`Transaction::revoke_device_certificates`].
    pub async fn revoke_device_certificates(
        &self,
        device: &str,
        reason: RevocationReason,
    ) -> Result<Vec<Certificate>> {
        let mut tx = self.begin().await?;
        let certs = tx.revoke_device_certificates(device, reason).await?;
        tx.commit().await?;
        Ok(certs)
    }
}
