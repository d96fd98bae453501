//! The fleet as the checks see it, read once from the registry, the CA files and the audit log
//! of one installation. The checks themselves are pure functions of a [`Snapshot`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ironroot_audit::{AuditDir, LogStorage as _, SignedCheckpoint, SqlStorage};
use ironroot_pki::{CaDirectory, Serial};
use ironroot_store::{
    Certificate, Device, DeviceFilter, MAX_PAGE, Policy, RevokedCertificate, Store,
};

use crate::error::DefenderError;

/// Which CA a [`CaInfo`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaRoleInfo {
    /// The offline root.
    Root,
    /// Intermediate generation `n`.
    Intermediate(u32),
    /// The factory CA (bootstrap credentials).
    Factory,
}

/// One CA certificate of the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaInfo {
    /// Root, intermediate or factory.
    pub role: CaRoleInfo,
    /// Common name (the registry's `issuer` column for what it issued).
    pub name: String,
    /// Serial.
    pub serial: Serial,
    /// End of validity (Unix seconds).
    pub not_after: i64,
    /// Revoked by the root (in `ca-state.json`).
    pub revoked: bool,
    /// For a retired intermediate, the end of its overlap window (Unix seconds).
    pub trusted_until: Option<i64>,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

/// What the audit log looks like from outside the writer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogState {
    /// `audit/checkpoint.key` exists in the data directory.
    pub key_present: bool,
    /// Size of the latest checkpoint stored in the database (0 when none).
    pub stored_size: u64,
    /// Why the latest stored checkpoint does not verify with `audit/checkpoint.pub`, if so.
    pub stored_problem: Option<String>,
    /// Size of the checkpoint in the witness file, `None` when there is no witness file.
    pub witness_size: Option<u64>,
    /// Why the witness checkpoint does not verify, if so.
    pub witness_problem: Option<String>,
}

/// Everything the checks read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every registered device.
    pub devices: Vec<Device>,
    /// Every certificate not revoked.
    pub certificates: Vec<Certificate>,
    /// The revoked set.
    pub revoked: Vec<RevokedCertificate>,
    /// Every stored policy (latest version and attachments).
    pub policies: Vec<Policy>,
    /// Time of each device's latest boot report (Unix seconds).
    pub boot_reports: BTreeMap<String, i64>,
    /// The CA hierarchy, `None` when the data directory holds no CA.
    pub cas: Option<Vec<CaInfo>>,
    /// The audit log's state.
    pub log: LogState,
    /// Serials in live MQTT sessions, when the caller knows them (a running broker).
    pub connected: Option<BTreeSet<Serial>>,
}

impl Snapshot {
    /// Reads the installation whose registry is `store` and whose CA and audit key live in
    /// `data_dir` (also with a PostgreSQL registry). `connected` is the set of serials in live
    /// sessions, when known.
    pub async fn collect(
        store: &Store,
        data_dir: &Path,
        connected: Option<BTreeSet<Serial>>,
    ) -> Result<Snapshot, DefenderError> {
        let mut devices = Vec::new();
        loop {
            let page = store
                .list_devices(&DeviceFilter {
                    after: devices.last().map(|d: &Device| d.id.clone()),
                    limit: Some(MAX_PAGE),
                    ..DeviceFilter::default()
                })
                .await?;
            let full = page.len() == MAX_PAGE as usize;
            devices.extend(page);
            if !full {
                break;
            }
        }
        // Every certificate not revoked: "expiring before the end of time".
        let certificates = store
            .certificates_expiring_before(i64::MAX, u32::MAX)
            .await?;
        let revoked = store.revoked_certificates().await?;
        let policies = store.list_policies().await?;
        let mut boot_reports = BTreeMap::new();
        for d in &devices {
            if let Some(r) = store.boot_report(&d.id).await? {
                boot_reports.insert(d.id.clone(), r.reported_at);
            }
        }
        Ok(Snapshot {
            devices,
            certificates,
            revoked,
            policies,
            boot_reports,
            cas: read_cas(data_dir)?,
            log: read_log(store, data_dir).await?,
            connected,
        })
    }
}

fn unix(t: time::OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

fn read_cas(data_dir: &Path) -> Result<Option<Vec<CaInfo>>, DefenderError> {
    let dir = CaDirectory::new(data_dir);
    if !dir.is_initialized() {
        return Ok(None);
    }
    let revoked: BTreeSet<Serial> = dir
        .revoked_ca_entries()?
        .into_iter()
        .map(|e| e.serial)
        .collect();
    let info = |role, cert: &ironroot_pki::CaCertificate, trusted_until| CaInfo {
        role,
        name: cert.common_name().to_owned(),
        serial: cert.serial().clone(),
        not_after: unix(cert.not_after()),
        revoked: revoked.contains(cert.serial()),
        trusted_until,
        der: cert.der().to_vec(),
    };
    let mut out = vec![info(CaRoleInfo::Root, &dir.root_certificate()?, None)];
    for (generation, cert, until) in dir.all_intermediates()? {
        out.push(info(
            CaRoleInfo::Intermediate(generation),
            &cert,
            until.map(unix),
        ));
    }
    out.push(info(CaRoleInfo::Factory, &dir.factory_certificate()?, None));
    Ok(Some(out))
}

async fn read_log(store: &Store, data_dir: &Path) -> Result<LogState, DefenderError> {
    let dir = AuditDir::new(data_dir);
    let verifier = dir.load_verifier();
    let stored = SqlStorage::new(store.clone())
        .latest_checkpoint()
        .await
        .map_err(DefenderError::AuditStorage)?;
    let check = |note: &str| -> Result<u64, String> {
        let verifier = verifier.as_ref().map_err(|e| e.to_string())?;
        SignedCheckpoint::verify_note(note, verifier)
            .map(|v| v.checkpoint.size)
            .map_err(|e| e.to_string())
    };
    let (stored_size, stored_problem) = match &stored {
        None => (0, None),
        Some(row) => (row.size, check(&row.note).err()),
    };
    let witness = dir.witness().read().await?;
    let (witness_size, witness_problem) = match witness {
        None => (None, None),
        Some(note) => match check(&note) {
            Ok(size) => (Some(size), None),
            Err(e) => (Some(0), Some(e)),
        },
    };
    Ok(LogState {
        key_present: dir.has_key(),
        stored_size,
        stored_problem,
        witness_size,
        witness_problem,
    })
}
