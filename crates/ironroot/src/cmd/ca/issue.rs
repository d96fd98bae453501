//! `ironroot ca issue` (one CSR), `ironroot ca revoke`, and the identity service they share.

use std::fs;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use ironroot_audit::Audit;
use ironroot_identity::{IdentityOptions, IdentityService, IssuePurpose, IssueRequest};
use ironroot_pki::{CaDirectory, DeviceId, Serial};
use time::OffsetDateTime;

use super::secrets::online_secrets;
use super::{CLI_ACTOR, IssueArgs, OnlineKeyArgs, RevokeArgs};
use crate::cmd::device::StoreArgs;

/// The identity service on the data directory's CA, the registry and the audit log.
pub(super) async fn open_identity(
    store: &StoreArgs,
    online: &OnlineKeyArgs,
    options: IdentityOptions,
    create: bool,
) -> Result<IdentityService> {
    let dir = CaDirectory::new(&store.data_dir);
    let ca = dir.open_online(&online_secrets(online, &dir)?, OffsetDateTime::now_utc())?;
    let registry = store.open(create).await?;
    let audit = Audit::open_store(&registry, &store.data_dir)
        .await
        .context("cannot open the audit log")?;
    Ok(IdentityService::open(ca, registry, Arc::new(audit), options).await?)
}

impl IssueArgs {
    /// What the issued certificates are: factory credentials with --factory, else manual.
    pub(super) fn purpose(&self) -> IssuePurpose {
        if self.factory {
            IssuePurpose::Factory
        } else {
            IssuePurpose::Manual
        }
    }
}

pub(super) async fn issue(a: IssueArgs) -> Result<()> {
    if let (Some(csr_dir), Some(out_dir)) = (&a.csr_dir, &a.out_dir) {
        return super::batch::issue_dir(&a, csr_dir, out_dir).await;
    }
    let (Some(device_name), Some(csr_path), Some(out)) = (&a.device, &a.csr, &a.out) else {
        bail!(
            "give --device, --csr and --out (one certificate) or --csr-dir and --out-dir (a batch)"
        );
    };
    let device = DeviceId::parse(device_name).context("--device")?;
    let csr = fs::read(csr_path).with_context(|| format!("reading {}", csr_path.display()))?;
    let service = open_identity(
        &a.store,
        &a.online,
        IdentityOptions::new(&a.store.data_dir),
        false,
    )
    .await?;
    let issued = service
        .issue(IssueRequest {
            device,
            csr,
            actor: CLI_ACTOR.to_owned(),
            source: None,
            purpose: a.purpose(),
        })
        .await;
    service.store().close().await;
    let issued = issued?;
    // Recorded and audited: only now does the certificate leave the process.
    fs::write(out, issued.pem()).with_context(|| format!("writing {}", out.display()))?;
    let what = if a.factory {
        "a factory certificate"
    } else {
        "a certificate"
    };
    println!(
        "Issued {what} for device {device_name} (now {}):",
        issued.device_state
    );
    println!("  serial       {}", issued.serial());
    println!("  fingerprint  {}", issued.fingerprint());
    println!("  valid until  {}", issued.not_after().date());
    println!("  written to   {}", out.display());
    if let Some(chain) = &a.chain_out {
        fs::write(chain, &issued.chain_pem)
            .with_context(|| format!("writing {}", chain.display()))?;
        println!("  CA chain     {}", chain.display());
    }
    Ok(())
}

pub(super) async fn revoke(a: RevokeArgs) -> Result<()> {
    let service = open_identity(
        &a.store,
        &a.online,
        IdentityOptions::new(&a.store.data_dir),
        false,
    )
    .await?;
    let result = async {
        if let Some(serial) = &a.serial {
            let serial = Serial::from_hex(serial)
                .with_context(|| format!("--serial {serial:?} is not a hex serial number"))?;
            let cert = service.revoke_serial(&serial, a.reason, CLI_ACTOR).await?;
            println!(
                "Revoked certificate {} of device {} ({}).",
                cert.serial,
                cert.device_id.as_deref().unwrap_or("-"),
                a.reason
            );
        } else if let Some(device) = &a.device {
            let id = DeviceId::parse(device).context("--device")?;
            let certs = service.revoke_device_for(&id, a.reason, CLI_ACTOR).await?;
            println!(
                "Revoked device {device} and {} certificate(s):",
                certs.len()
            );
            for c in &certs {
                println!("  {}", c.serial);
            }
        }
        let crl = service.write_crl().await?;
        println!(
            "Running servers drop these sessions within a second. CRL re-signed: {} (next update {}).",
            service.crl_path().display(),
            crl.next_update()
        );
        Ok(())
    }
    .await;
    service.store().close().await;
    result
}
