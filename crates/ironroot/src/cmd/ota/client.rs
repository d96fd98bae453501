//! `ironroot ota client`: the TUF client workflow over an HTTP(S) or file:// mirror.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use ironroot_https_client::{Endpoint, HttpsClient, HttpsError, Limits};
use ironroot_tuf::{Config, DirStore, FetchError, Store as _, Transport, Updater};

/// TUF client: trust a root, refresh metadata from a mirror, download a verified target.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Directory of the trusted metadata (root.json, timestamp.json, snapshot.json, targets.json).
    #[arg(long, value_name = "DIR")]
    metadata_dir: PathBuf,
    /// Base URL of the metadata mirror: http://, https:// or file:// (untrusted: everything
    /// fetched is verified).
    #[arg(long, value_name = "URL")]
    metadata_url: Option<String>,
    /// Target to download (its path in targets metadata).
    #[arg(long, value_name = "NAME")]
    target_name: Option<String>,
    /// Directory the verified target is written to (file name: the target name, quoted).
    #[arg(long, value_name = "DIR")]
    target_dir: Option<PathBuf>,
    /// Base URL of the targets mirror (http://, https:// or file://).
    #[arg(long, value_name = "URL")]
    target_base_url: Option<String>,
    /// PEM CA bundle to trust for https:// mirrors.
    #[arg(long, value_name = "PEM")]
    ca_file: Option<PathBuf>,
    /// Longest one fetch may take (slow retrieval bound).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Trust TRUSTED_ROOT (checked against its own root threshold) as root.json.
    Init {
        /// The root metadata file to trust.
        trusted_root: PathBuf,
    },
    /// Update root (rotations), timestamp, snapshot and targets from --metadata-url.
    Refresh,
    /// Refresh, then download --target-name from --target-base-url into --target-dir,
    /// checked against its signed length and hashes.
    Download,
}

/// An untrusted mirror at a base URL.
enum Mirror {
    Http {
        client: HttpsClient,
        prefix: String,
        rt: tokio::runtime::Runtime,
    },
    File(PathBuf),
}

impl Mirror {
    fn new(url: &str, ca: Option<&PathBuf>, timeout: Duration) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Mirror::File(PathBuf::from(path)));
        }
        let endpoint = Endpoint::parse_mirror(url)?;
        let scheme_len = url.trim().find("://").map_or(0, |i| i + 3);
        let rest = &url.trim()[scheme_len..];
        let mut prefix = rest
            .find('/')
            .map_or("/".to_string(), |i| rest[i..].to_string());
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        let client = if endpoint.is_plain_http() {
            HttpsClient::plain(endpoint)?
        } else {
            let ca = ca.ok_or_else(|| anyhow!("an https:// mirror needs --ca-file"))?;
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            let config = ironroot_device::TrustAnchor::from_pem(&pem)?.anonymous_client()?;
            HttpsClient::new(endpoint, config)?
        };
        let client = client.with_limits(Limits {
            max_body: 0,
            timeout,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Mirror::Http { client, prefix, rt })
    }
}

impl Transport for Mirror {
    fn fetch(&mut self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, FetchError> {
        match self {
            Mirror::File(dir) => {
                let file = match std::fs::File::open(dir.join(path)) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(FetchError::Failed(e.to_string())),
                };
                let mut buf = Vec::new();
                file.take(max_len.saturating_add(1))
                    .read_to_end(&mut buf)
                    .map_err(|e| FetchError::Failed(e.to_string()))?;
                if buf.len() as u64 > max_len {
                    return Err(FetchError::TooLarge);
                }
                Ok(Some(buf))
            }
            Mirror::Http { client, prefix, rt } => {
                let limits = Limits {
                    max_body: usize::try_from(max_len).unwrap_or(usize::MAX),
                    timeout: client.limits().timeout,
                };
                let c = client.clone().with_limits(limits);
                let url_path = format!("{prefix}{path}");
                match rt.block_on(c.request("GET", &url_path, &[], &[])) {
                    Ok(r) if r.status == 200 => Ok(Some(r.body)),
                    Ok(r) if r.status == 404 || r.status == 403 => Ok(None),
                    Ok(r) => Err(FetchError::Failed(format!("HTTP status {}", r.status))),
                    Err(HttpsError::TooLarge { .. }) => Err(FetchError::TooLarge),
                    Err(e) => Err(FetchError::Failed(e.to_string())),
                }
            }
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `ironroot ota client ...`: exit 0 on success, 1 on any refusal or failure.
pub fn run(a: ClientArgs) -> Result<ExitCode> {
    let mut store = DirStore::new(&a.metadata_dir)?;
    if let ClientCommand::Init { trusted_root } = &a.command {
        let bytes = std::fs::read(trusted_root)
            .with_context(|| format!("reading {}", trusted_root.display()))?;
        let root = ironroot_tuf::verify_trusted_root(&bytes)
            .with_context(|| format!("{} is not a valid root", trusted_root.display()))?;
        store.save("root.json", &bytes)?;
        println!(
            "trusted root version {} in {}",
            root.common.version,
            a.metadata_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let url = a
        .metadata_url
        .as_deref()
        .ok_or_else(|| anyhow!("--metadata-url is required"))?;
    let mut mirror = Mirror::new(url, a.ca_file.as_ref(), a.timeout)?;
    let mut updater = Updater::new(store, now(), Config::default())?;
    updater.refresh(&mut mirror).context("update refused")?;
    let versions = |u: &Updater<DirStore>| {
        format!(
            "root v{}, timestamp v{}, snapshot v{}, targets v{}",
            u.root().common.version,
            u.timestamp().map_or(0, |t| t.common.version),
            u.snapshot().map_or(0, |s| s.common.version),
            u.targets("targets").map_or(0, |t| t.common.version)
        )
    };
    if matches!(a.command, ClientCommand::Refresh) {
        println!("refreshed: {}", versions(&updater));
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(name), Some(dir), Some(base)) = (&a.target_name, &a.target_dir, &a.target_base_url)
    else {
        bail!("download needs --target-name, --target-dir and --target-base-url");
    };
    let info = updater
        .target_info(&mut mirror, name)
        .context("update refused")?;
    let mut targets = Mirror::new(base, a.ca_file.as_ref(), a.timeout)?;
    let bytes = updater
        .download_target(&mut targets, name, &info)
        .context("download refused")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(ironroot_tuf::quote_file_name(name));
    ironroot_fs::write_atomically(&path, &bytes)?;
    println!(
        "{} ({} bytes, verified) -> {}",
        name,
        bytes.len(),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
