//! `ironroot device …`: register, list and inspect devices; mint claim tokens, revoke,
//! decommission.
//!
//! When a server runs (`--server URL`, or `<data-dir>/server.url` written by `ironroot up`) the
//! commands go through its operator API with the admin token (`<data-dir>/admin.token`), so
//! every change is audited by the server. Without a server, `add`, `list` and `show` work
//! directly on the data directory's database (or the PostgreSQL database named by
//! `--database-url`); `add` then goes through the same fleet service as the server
//! (`ironroot_fleet::Fleet`), so it is audited the same way (`device.added`, written ahead of
//! the registry commit, actor `operator:$USER`, source `cli`), and so do `transfer`,
//! `recommission` and `repair` (module `device_fleet`); `import`, `claim`, `revoke` and
//! `decommission` need the server.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use ironroot_audit::Audit;
use ironroot_fleet::{Fleet, Origin};
use ironroot_store::{DeviceFilter, DeviceState, MAX_PAGE, NewDevice, Store};

/// Where the registry lives: a data directory (SQLite) or a PostgreSQL URL.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Data directory holding the embedded database (ironroot.db).
    #[arg(
        long,
        env = "IRONROOT_DATA_DIR",
        default_value = "./ironroot-data",
        value_name = "DIR"
    )]
    pub data_dir: PathBuf,
    /// Use this PostgreSQL database instead of the data directory's SQLite database
    /// (postgres://user@host/db); takes precedence over --data-dir.
    #[arg(
        long,
        env = "IRONROOT_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// URL of a running ironroot server (default: <data-dir>/server.url when `ironroot up`
    /// runs there). Operator commands then go through its API.
    #[arg(long, env = "IRONROOT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// File holding the operator token (default: <data-dir>/admin.token).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// CA chain the server certificate is checked against (default: <data-dir>/pki/chain.pem).
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
}

impl StoreArgs {
    /// A readable name of the database, without any password.
    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(_) => "the PostgreSQL database given by --database-url".to_owned(),
            None => self
                .data_dir
                .join(ironroot_store::DATABASE_FILE)
                .display()
                .to_string(),
        }
    }

    /// Opens the store; `create` allows creating a new data directory and database.
    pub async fn open(&self, create: bool) -> anyhow::Result<Store> {
        if let Some(url) = &self.database_url {
            return Store::open(url)
                .await
                .context("cannot open the PostgreSQL registry");
        }
        let db = self.data_dir.join(ironroot_store::DATABASE_FILE);
        if !create && !db.exists() {
            bail!(
                "no ironroot database at {} (register a device with `ironroot device add`, or \
                 pass --data-dir)",
                db.display()
            );
        }
        Store::open_data_dir(&self.data_dir)
            .await
            .with_context(|| format!("cannot open the registry at {}", db.display()))
    }
}

/// The operator running this command, as the audit log names it: `operator:$USER`, source `cli`.
pub(crate) fn cli_origin() -> Origin {
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    Origin::new(format!("operator:{user}"), "cli")
}

impl StoreArgs {
    /// Opens the registry and its audit log (keys in the data directory) as the fleet
    /// service, which makes and audits every change; `create` as in [`StoreArgs::open`].
    pub async fn fleet(&self, create: bool) -> anyhow::Result<Fleet> {
        let store = self.open(create).await?;
        let audit = Audit::open_store(&store, &self.data_dir)
            .await
            .context("cannot open the audit log")?;
        Ok(Fleet::new(store, std::sync::Arc::new(audit)))
    }
}

/// Register, list and inspect devices in the registry.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    #[command(subcommand)]
    command: DeviceCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Register a device (state: manufactured) so it can later be provisioned.
    ///
    /// Example: ironroot device add sensor-0001 --group line-b --attr site=lyon
    Add {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id: 1-128 characters from A-Z a-z 0-9 . _ : - (it becomes the certificate
        /// CN and the MQTT client id).
        id: String,
        /// Put the device in this group (repeatable); groups are created on first use.
        #[arg(long = "group", value_name = "GROUP")]
        groups: Vec<String>,
        /// Set an attribute, KEY=VALUE (repeatable); policies can refer to attributes.
        #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
        attrs: Vec<(String, String)>,
        /// Who the device belongs to (a team, customer or site).
        #[arg(long)]
        owner: Option<String>,
    },
    /// List devices, optionally filtered.
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Only devices in this group.
        #[arg(long)]
        group: Option<String>,
        /// Only devices in this state (manufactured, provisioned, active, quarantined,
        /// in_repair, revoked, decommissioned).
        #[arg(long, value_parser = parse_state)]
        state: Option<DeviceState>,
        /// Only devices of this owner.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show one device: state, groups, attributes and certificates.
    Show {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
    },
    /// Register many devices from a CSV file (header: id[,groups][,owner][,attribute columns];
    /// groups separated by ';') or a JSON array of {"id","groups","attributes","owner"}.
    /// Needs the server.
    Import {
        #[command(flatten)]
        store: StoreArgs,
        /// The file (.csv or .json).
        file: PathBuf,
    },
    /// Mint a one-time claim token for a device and print it (shown once). The device enrolls
    /// with HTTP Basic "ID:TOKEN" on /.well-known/est/simpleenroll. Needs the server.
    Claim {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
        /// Token lifetime: seconds, or with a unit s, m, h, d (e.g. 15m).
        #[arg(long, default_value = "15m", value_parser = parse_ttl)]
        ttl: u64,
    },
    /// Revoke a device: every certificate it holds is revoked and it can no longer connect or
    /// enroll. Needs the server.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
    },
    /// Retire a device for good (revokes it first if needed). A connected device first gets a
    /// signed decommission command: it destroys its keys in its element and disconnects (the
    /// answer says whether that was confirmed). Needs the server.
    Decommission {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
    },
    /// Transfer a device to a new owner. Every certificate it holds is revoked (affiliation
    /// changed) and its live sessions are cut; the old owner's groups, attributes, device
    /// policies, unused claim tokens and pending rotations are removed. The device is
    /// manufactured again and must enroll a fresh key with a claim token the new owner mints
    /// (`ironroot device claim ID`). Refused for a device in repair, revoked or
    /// decommissioned (re-commission it instead).
    ///
    /// Example: ironroot device transfer sensor-0001 --to acme-water --group acme-pumps
    Transfer {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
        /// The new owner (a team, customer or site).
        #[arg(long = "to", value_name = "OWNER")]
        to: String,
        #[command(flatten)]
        binding: crate::cmd::device_fleet::Binding,
    },
    /// Re-commission a device back from repair, revoked or decommissioned: the one way to use
    /// a retired id again (`device add` refuses a decommissioned one). Like a transfer, it
    /// comes back manufactured with only the binding given here, and must enroll a fresh key
    /// with a new claim token.
    ///
    /// Example: ironroot device recommission sensor-0001 --owner lab --group refurbished
    Recommission {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
        /// Who owns it now.
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        binding: crate::cmd::device_fleet::Binding,
    },
    /// Send a device for repair (returned by its owner): it becomes in_repair, every
    /// certificate it holds is revoked and its live sessions are cut, so it can neither connect
    /// nor enroll. Back from repair, `ironroot device recommission ID` makes it enroll a fresh
    /// key.
    Repair {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
        /// Print the result as JSON ({"device","revoked"}).
        #[arg(long)]
        json: bool,
    },
    /// Quarantine a device: it keeps its certificate, but the broker allows it nothing except
    /// its own status topic (devices/ID/status), applied to a live session within a second.
    /// Needs the server.
    Quarantine {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
    },
    /// Release a quarantined device: it becomes active and its policies apply again.
    /// Needs the server.
    Release {
        #[command(flatten)]
        store: StoreArgs,
        /// Device id.
        id: String,
    },
}

pub(crate) fn parse_attr(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?}; use s, m, h or d"
            ));
        }
    };
    n.checked_mul(mult)
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("invalid duration {text:?}"))
}

fn parse_state(text: &str) -> Result<DeviceState, String> {
    DeviceState::from_name(text).ok_or_else(|| {
        let names: Vec<_> = DeviceState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown state {text:?}; expected one of {}",
            names.join(", ")
        )
    })
}

/// Runs `ironroot device …`.
pub fn run(args: DeviceArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if let Some(out) = crate::cmd::device_remote::try_remote(&args.command).await? {
            print!("{out}");
            return Ok(());
        }
        let mut out = String::new();
        match args.command {
            DeviceCommand::Add {
                store: location,
                id,
                groups,
                attrs,
                owner,
            } => {
                let fleet = location.fleet(true).await?;
                let mut new = NewDevice::new(id);
                new.groups = groups;
                new.attributes = attrs.into_iter().collect();
                new.owner = owner;
                let device = fleet.add_device(&cli_origin(), &new).await?;
                writeln!(
                    out,
                    "added device {} ({}) to {}",
                    device.id,
                    device.state,
                    location.describe()
                )?;
                write_details(
                    &mut out,
                    &device.groups,
                    &device.attributes,
                    device.owner.as_deref(),
                )?;
                fleet.store().close().await;
            }
            DeviceCommand::List {
                store: location,
                group,
                state,
                owner,
            } => {
                let store = location.open(false).await?;
                let mut filter = DeviceFilter {
                    group,
                    state,
                    owner,
                    ..Default::default()
                };
                let mut rows = Vec::new();
                loop {
                    let page = store.list_devices(&filter).await?;
                    let full = page.len() == MAX_PAGE as usize;
                    filter.after = page.last().map(|d| d.id.clone());
                    rows.extend(page);
                    if !full {
                        break;
                    }
                }
                write_table(&mut out, &rows)?;
                store.close().await;
            }
            DeviceCommand::Show {
                store: location,
                id,
            } => {
                let store = location.open(false).await?;
                let device = store.device(&id).await?;
                let certs = store.certificates_for_device(&id).await?;
                writeln!(out, "device {}", device.id)?;
                writeln!(out, "  state:        {}", device.state)?;
                write_details(
                    &mut out,
                    &device.groups,
                    &device.attributes,
                    device.owner.as_deref(),
                )?;
                writeln!(out, "  registered:   {}", utc(device.created_at))?;
                writeln!(out, "  updated:      {}", utc(device.updated_at))?;
                if certs.is_empty() {
                    writeln!(out, "  certificates: none")?;
                } else {
                    writeln!(out, "  certificates:")?;
                    for cert in certs {
                        writeln!(
                            out,
                            "    {} {} {} valid until {}{}",
                            cert.serial,
                            cert.kind,
                            cert.status,
                            utc(cert.not_after),
                            match cert.revocation {
                                Some((at, reason)) => format!(" (revoked {} : {reason})", utc(at)),
                                None => String::new(),
                            }
                        )?;
                    }
                }
                store.close().await;
            }
            cmd @ (DeviceCommand::Transfer { .. }
            | DeviceCommand::Recommission { .. }
            | DeviceCommand::Repair { .. }) => {
                out = crate::cmd::device_fleet::run_offline(cmd).await?;
            }
            DeviceCommand::Import { .. }
            | DeviceCommand::Claim { .. }
            | DeviceCommand::Quarantine { .. }
            | DeviceCommand::Release { .. }
            | DeviceCommand::Revoke { .. }
            | DeviceCommand::Decommission { .. } => bail!(
                "this command needs the running server: start `ironroot up --data-dir DIR` \
                 (or pass --server URL)"
            ),
        }
        print!("{out}");
        Ok(())
    })
}

pub(crate) fn write_details(
    out: &mut String,
    groups: &[String],
    attributes: &BTreeMap<String, String>,
    owner: Option<&str>,
) -> std::fmt::Result {
    writeln!(out, "  owner:        {}", owner.unwrap_or("-"))?;
    let groups = if groups.is_empty() {
        "-".to_owned()
    } else {
        groups.join(", ")
    };
    writeln!(out, "  groups:       {groups}")?;
    let attrs: Vec<_> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let attrs = if attrs.is_empty() {
        "-".to_owned()
    } else {
        attrs.join(", ")
    };
    writeln!(out, "  attributes:   {attrs}")
}

fn write_table(out: &mut String, devices: &[ironroot_store::Device]) -> std::fmt::Result {
    if devices.is_empty() {
        return writeln!(out, "no devices");
    }
    let width = devices.iter().map(|d| d.id.len()).max().unwrap_or(0).max(2);
    writeln!(
        out,
        "{:width$}  {:14}  {:16}  GROUPS",
        "ID", "STATE", "OWNER"
    )?;
    for d in devices {
        let groups = if d.groups.is_empty() {
            "-".to_owned()
        } else {
            d.groups.join(",")
        };
        writeln!(
            out,
            "{:width$}  {:14}  {:16}  {}",
            d.id,
            d.state.as_str(),
            d.owner.as_deref().unwrap_or("-"),
            groups
        )?;
    }
    writeln!(out, "{} device(s)", devices.len())
}

/// Seconds since the epoch as an RFC 3339 UTC timestamp (proleptic Gregorian calendar).
pub(crate) fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn attributes_parse_at_the_first_equals_sign() {
        assert_eq!(parse_attr("a=b=c").unwrap(), ("a".into(), "b=c".into()));
        assert_eq!(parse_attr("a=").unwrap(), ("a".into(), String::new()));
        assert!(parse_attr("novalue").is_err());
        assert!(parse_attr("=v").is_err());
    }
}
