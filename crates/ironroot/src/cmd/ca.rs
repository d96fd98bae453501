//! `ironroot ca …`: the certificate authority on the data directory.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use ironroot_identity::IdentityOptions;
use ironroot_pki::CaSigner as _;
use ironroot_pki::{
    CaDirectory, DeviceId, Handling, HierarchyPolicy, InitOptions, IssuancePolicy, KdfParams,
    RevocationReason, ServerName, SoftwareKey, SubjectKey, WrittenFile,
};
use ironroot_store::RevocationReason as StoreReason;
use time::{Duration, OffsetDateTime};

use crate::cmd::device::StoreArgs;

mod batch;
mod issue;
mod secrets;

use issue::open_identity;
pub(crate) use secrets::online_secrets;
use secrets::{new_key_backend, root_passphrase};

/// Manage the certificate authority: create it, rotate the intermediate, export the chain and CRLs.
#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA: an offline root, an online intermediate, a factory CA for manufacturing
    /// credentials, and a first operator client certificate.
    ///
    /// Non-interactive: the root passphrase comes from --root-passphrase-file or the
    /// IRONROOT_ROOT_PASSPHRASE environment variable. The online keys (intermediate, factory)
    /// are encrypted with --ca-passphrase-file / IRONROOT_CA_PASSPHRASE, or with a generated
    /// passphrase written to <data-dir>/pki/online-passphrase, or generated inside a PKCS#11
    /// token (--pkcs11-module).
    Init(InitArgs),
    /// Create a new intermediate CA generation, signed by the root. The previous intermediate
    /// stays trusted for --overlap-days so existing device certificates keep working.
    RotateIntermediate(RotateArgs),
    /// Revoke an intermediate generation (or the factory CA) with the root key and re-sign the
    /// root CRL.
    RevokeIntermediate(RevokeCaArgs),
    /// Write the CA chain (trusted intermediates, then the root) for `openssl verify -CAfile`.
    Chain(ChainArgs),
    /// Sign fresh CRLs (one per trusted intermediate, listing every revoked device certificate
    /// in the registry, plus the root CRL) into one PEM file for
    /// `openssl verify -crl_check_all -CRLfile`. Also refreshes <data-dir>/pki/crl.pem.
    Crl(CrlArgs),
    /// Issue a device certificate from a certificate signing request (CSR), or one for every
    /// CSR in a directory (--csr-dir, --out-dir: a factory batch, one CA unlock).
    ///
    /// The device must be registered (`ironroot device add`) and not revoked. Only the CSR's
    /// public key (ECDSA P-256) is used; a CN in the CSR must equal --device. The certificate
    /// is recorded in the registry and the audit log before it is written out; the device
    /// moves from manufactured to provisioned on its first certificate.
    ///
    /// Example: openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
    /// -keyout dev.key -subj /CN=sensor-0001 -out dev.csr && ironroot ca issue --device
    /// sensor-0001 --csr dev.csr --out dev.crt
    ///
    /// Batch: ironroot ca issue --csr-dir csrs/ --out-dir certs/ issues csrs/<id>.csr for device
    /// <id> into certs/<id>.crt.pem and prints {"issued":N,"failed":M,"failures":[...],
    /// "seconds":S,"per_second":R}; a bad CSR is listed in "failures" without stopping the rest.
    ///
    /// Factory credentials (--factory): on the manufacturing line, before the device ever talks
    /// to the server, issue its factory certificate from the factory CA instead. It names the
    /// device as `urn:ironroot:bootstrap:<id>`, lives 10 years (never past the factory CA), and
    /// is good for one thing only: authenticating the device's first EST enrollment, and a
    /// re-enrollment after its operational certificate expired while it was offline, without a
    /// claim token. The MQTT broker never accepts it. Only for a device still `manufactured`
    /// (its state does not change); it is recorded and audited like any certificate, so
    /// `ca revoke --serial` (or revoking the device) stops it from enrolling. The key stays in
    /// the device: `ironroot agent --factory-csr` makes it and writes the CSR.
    ///
    /// Example: ironroot ca issue --factory --device gw-1 --csr gw-1.factory.csr --out
    /// gw-1.factory.pem --chain-out factory-chain.pem
    Issue(IssueArgs),
    /// Revoke one certificate (--serial) or a device and all its certificates (--device).
    ///
    /// Takes effect at once: running ironroot servers drop the certificate's sessions within
    /// a second, and the CRL in <data-dir>/pki/crl.pem is re-signed.
    Revoke(RevokeArgs),
    /// Issue a TLS server certificate (HTTPS, MQTT on 8883) for host names and IP addresses.
    ServerCert(ServerCertArgs),
}

/// Where the data directory is.
#[derive(Debug, Args)]
pub struct DataDirArg {
    /// Data directory (holds pki/ and the registry database).
    #[arg(long, env = "IRONROOT_DATA_DIR", default_value = "./ironroot-data")]
    pub data_dir: PathBuf,
}

/// How to reach the root key.
#[derive(Debug, Args)]
pub struct RootKeyArgs {
    /// File holding the root passphrase (else IRONROOT_ROOT_PASSPHRASE).
    #[arg(long)]
    pub root_passphrase_file: Option<PathBuf>,
    /// The encrypted root key, if you moved it offline (default: <data-dir>/pki/root.key.enc).
    #[arg(long)]
    pub root_key: Option<PathBuf>,
}

/// Where online CA keys live and how to unlock them.
#[derive(Debug, Args)]
pub struct OnlineKeyArgs {
    /// File holding the passphrase of the online CA key files (else IRONROOT_CA_PASSPHRASE,
    /// else <data-dir>/pki/online-passphrase).
    #[arg(long)]
    pub ca_passphrase_file: Option<PathBuf>,
    /// Put new online keys in this PKCS#11 module (e.g. /usr/lib/softhsm/libsofthsm2.so).
    #[arg(long, requires = "pkcs11_token")]
    pub pkcs11_module: Option<PathBuf>,
    /// Label of the PKCS#11 token.
    #[arg(long)]
    pub pkcs11_token: Option<String>,
    /// File holding the token user PIN (else IRONROOT_PKCS11_PIN).
    #[arg(long)]
    pub pkcs11_pin_file: Option<PathBuf>,
}

/// Arguments of `ca init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    dir: DataDirArg,
    /// File holding the root passphrase (else IRONROOT_ROOT_PASSPHRASE). At least 12 characters.
    #[arg(long)]
    root_passphrase_file: Option<PathBuf>,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Organization name in the CA certificates.
    #[arg(long, default_value = "ironroot")]
    organization: String,
    /// Name of the first operator certificate.
    #[arg(long, default_value = "admin")]
    operator: String,
}

/// Arguments of `ca rotate-intermediate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    dir: DataDirArg,
    #[command(flatten)]
    root: RootKeyArgs,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// How long the previous intermediate stays trusted (default: one device-certificate lifetime).
    #[arg(long, default_value_t = 90)]
    overlap_days: i64,
}

/// Arguments of `ca revoke-intermediate`.
#[derive(Debug, Args)]
pub struct RevokeCaArgs {
    #[command(flatten)]
    dir: DataDirArg,
    #[command(flatten)]
    root: RootKeyArgs,
    /// Intermediate generation to revoke (see chain.pem: "ironroot Intermediate CA G<n>").
    #[arg(long, required_unless_present = "factory", conflicts_with = "factory")]
    generation: Option<u32>,
    /// Revoke the factory CA instead.
    #[arg(long)]
    factory: bool,
    /// Treat it as a key compromise (reason code keyCompromise/cACompromise) rather than
    /// a plain retirement.
    #[arg(long)]
    compromised: bool,
}

/// Arguments of `ca chain`.
#[derive(Debug, Args)]
pub struct ChainArgs {
    #[command(flatten)]
    dir: DataDirArg,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Arguments of `ca crl`.
#[derive(Debug, Args)]
pub struct CrlArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Output file (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Hours until relying parties must fetch a new CRL (nextUpdate).
    #[arg(long, default_value_t = 24)]
    next_update_hours: i64,
}

/// Arguments of `ca issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Device id the certificate is for (registered with `ironroot device add`).
    #[arg(long, value_name = "ID", required_unless_present = "csr_dir")]
    device: Option<String>,
    /// The certificate signing request, PEM or DER (at most 16 KiB).
    #[arg(
        long,
        value_name = "CSR.pem",
        required_unless_present = "csr_dir",
        conflicts_with = "csr_dir"
    )]
    csr: Option<PathBuf>,
    /// Where to write the certificate (PEM).
    #[arg(long, value_name = "CERT.pem", required_unless_present = "csr_dir")]
    out: Option<PathBuf>,
    /// Also write the CA chain (intermediate, root; with --factory: factory CA, root) here.
    #[arg(long, value_name = "CHAIN.pem")]
    chain_out: Option<PathBuf>,
    /// Issue factory credentials (bootstrap certificates from the factory CA, for devices
    /// still manufactured) instead of operational certificates; see above.
    #[arg(long)]
    factory: bool,
    /// Batch: issue for every `<device-id>.csr` / `<device-id>.pem` in this directory, with
    /// one unlock of the CA key. Prints a JSON summary; exits non-zero if any failed.
    #[arg(long, value_name = "DIR", requires = "out_dir", conflicts_with_all = ["device", "out"])]
    csr_dir: Option<PathBuf>,
    /// Batch: where to write `<device-id>.crt.pem` for each issued CSR, and `chain.pem`.
    #[arg(long, value_name = "DIR", requires = "csr_dir")]
    out_dir: Option<PathBuf>,
}

/// Arguments of `ca revoke`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["serial", "device"])))]
pub struct RevokeArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Serial of the certificate, hex as `openssl x509 -serial` prints it.
    #[arg(long, value_name = "HEX")]
    serial: Option<String>,
    /// Revoke this device (state: revoked) and every certificate it holds.
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Reason: unspecified, key_compromise, affiliation_changed, superseded,
    /// cessation_of_operation, privilege_withdrawn.
    #[arg(long, default_value = "unspecified", value_parser = parse_reason)]
    reason: StoreReason,
}

fn parse_reason(text: &str) -> Result<StoreReason, String> {
    let name = text.replace('-', "_");
    StoreReason::from_name(&name)
        .filter(|r| *r != StoreReason::CaCompromise)
        .ok_or_else(|| {
            format!(
                "unknown reason {text:?}; expected unspecified, key_compromise, affiliation_changed, \
                 superseded, cessation_of_operation or privilege_withdrawn"
            )
        })
}

/// Arguments of `ca server-cert`.
#[derive(Debug, Args)]
pub struct ServerCertArgs {
    #[command(flatten)]
    dir: DataDirArg,
    #[command(flatten)]
    online: OnlineKeyArgs,
    /// Host name or IP address (repeat for several; the first is the subject CN).
    #[arg(long = "name", required = true)]
    names: Vec<String>,
    /// Where to write the certificate chain (server certificate + intermediate).
    #[arg(long)]
    out_cert: PathBuf,
    /// Where to write the private key (unencrypted PKCS#8, mode 0600).
    #[arg(long)]
    out_key: PathBuf,
}

/// Runs a `ca` subcommand.
pub fn run(cmd: CaCommand) -> Result<()> {
    let now = OffsetDateTime::now_utc();
    match cmd {
        CaCommand::Init(a) => init(a, now),
        CaCommand::RotateIntermediate(a) => {
            let dir = CaDirectory::new(&a.dir.data_dir);
            let pass = root_passphrase(a.root.root_passphrase_file.as_deref())?;
            let backend = new_key_backend(&a.online, &dir)?;
            let written = dir.rotate_intermediate(
                a.root.root_key.as_deref(),
                &pass,
                &backend,
                KdfParams::DEFAULT,
                Duration::days(a.overlap_days),
                now,
            )?;
            println!("Rotated the intermediate CA in {}.", dir.path().display());
            print_written(&written);
            println!(
                "\nThe previous intermediate stays trusted for {} days. Restart or reload the server to use the new one.",
                a.overlap_days
            );
            Ok(())
        }
        CaCommand::RevokeIntermediate(a) => {
            let dir = CaDirectory::new(&a.dir.data_dir);
            let pass = root_passphrase(a.root.root_passphrase_file.as_deref())?;
            let reason = if a.compromised {
                RevocationReason::CaCompromise
            } else {
                RevocationReason::CessationOfOperation
            };
            let generation = if a.factory { None } else { a.generation };
            let (entry, written) =
                dir.revoke_ca(a.root.root_key.as_deref(), &pass, generation, reason, now)?;
            println!("Revoked CA certificate with serial {}.", entry.serial);
            print_written(&written);
            Ok(())
        }
        CaCommand::Chain(a) => {
            let dir = CaDirectory::new(&a.dir.data_dir);
            output(a.out.as_deref(), dir.chain_pem(now)?.as_bytes())
        }
        CaCommand::Crl(a) => block_on(async move {
            let mut options = IdentityOptions::new(&a.store.data_dir);
            options.crl_lifetime = Duration::hours(a.next_update_hours);
            let service = open_identity(&a.store, &a.online, options, true).await?;
            // Every trusted intermediate's CRL with the registry's revoked device
            // certificates, then the root CRL (revoked CAs), as written by the root.
            service.write_crl().await?;
            let text = fs::read(service.crl_path())
                .with_context(|| format!("reading {}", service.crl_path().display()))?;
            service.store().close().await;
            output(a.out.as_deref(), &text)
        }),
        CaCommand::Issue(a) => block_on(issue::issue(a)),
        CaCommand::Revoke(a) => block_on(issue::revoke(a)),
        CaCommand::ServerCert(a) => {
            let dir = CaDirectory::new(&a.dir.data_dir);
            let online = dir.open_online(&online_secrets(&a.online, &dir)?, now)?;
            let names = a
                .names
                .iter()
                .map(|n| ServerName::parse(n))
                .collect::<Result<Vec<_>, _>>()?;
            let key = SoftwareKey::generate()?;
            let cert = online.issuing().issue_server(
                &SubjectKey::p256(key.public_key())?,
                &names,
                &IssuancePolicy::default(),
                now,
            )?;
            let chain = format!("{}{}", cert.pem(), online.issuing().certificate().pem());
            write_secret(&a.out_key, key.to_pkcs8_pem()?.as_bytes())?;
            fs::write(&a.out_cert, chain)
                .with_context(|| format!("writing {}", a.out_cert.display()))?;
            println!(
                "Server certificate for {} (serial {}, valid until {}):",
                a.names.join(", "),
                cert.serial(),
                cert.not_after().date()
            );
            println!("  {}  certificate + intermediate", a.out_cert.display());
            println!("  {}  private key (keep secret)", a.out_key.display());
            Ok(())
        }
    }
}

/// Actor recorded in the audit log for CLI operations.
const CLI_ACTOR: &str = "operator:cli";

fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn init(a: InitArgs, now: OffsetDateTime) -> Result<()> {
    let dir = CaDirectory::new(&a.dir.data_dir);
    let root_passphrase = root_passphrase(a.root_passphrase_file.as_deref())?;
    let online = if a.online.pkcs11_module.is_some()
        || a.online.ca_passphrase_file.is_some()
        || std::env::var_os("IRONROOT_CA_PASSPHRASE").is_some()
    {
        Some(new_key_backend(&a.online, &dir)?)
    } else {
        None
    };
    let written = dir.init(
        InitOptions {
            root_passphrase,
            online,
            kdf: KdfParams::DEFAULT,
            hierarchy: HierarchyPolicy {
                organization: a.organization,
                ..HierarchyPolicy::default()
            },
            operator: DeviceId::parse(&a.operator).context("operator name")?,
        },
        now,
    )?;
    println!(
        "Created a certificate authority in {}.\n",
        dir.path().display()
    );
    print_written(&written);
    println!(
        "\nNext steps:\n  1. Move root.key.enc to offline storage and remember the root passphrase; \
         the server never needs them.\n     `ca rotate-intermediate` and `ca revoke-intermediate` ask for them (--root-key PATH).\n  \
         2. Give operator.crt.pem and operator.key.pem to the operator, then delete the key here.\n  \
         3. Distribute root.crt.pem (or chain.pem) to devices and relying parties."
    );
    Ok(())
}

fn print_written(written: &[WrittenFile]) {
    for (title, handling) in [
        ("Public (distribute freely):", Handling::Public),
        ("OFFLINE (move off this machine):", Handling::Offline),
        (
            "Online secrets (needed by the server; keep in a secret store):",
            Handling::OnlineSecret,
        ),
        (
            "Operator secrets (hand over, then delete here):",
            Handling::OperatorSecret,
        ),
        ("State (no secrets):", Handling::State),
    ] {
        let files: Vec<_> = written.iter().filter(|w| w.handling == handling).collect();
        if files.is_empty() {
            continue;
        }
        println!("{title}");
        for f in files {
            println!("  {:<55} {}", f.path.display(), f.what);
        }
    }
}

fn output(out: Option<&Path>, data: &[u8]) -> Result<()> {
    match out {
        Some(path) => {
            fs::write(path, data).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        None => std::io::stdout().write_all(data)?,
    }
    Ok(())
}

fn write_secret(path: &Path, data: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", path.display()))
}
