//! `ironroot device …` through a running server's operator API (HTTPS + admin token).

use std::fmt::Write as _;

use anyhow::{Context as _, Result, bail};
use ironroot_server::client::{Client, ClientError};
use ironroot_server::operator::{
    ClaimResponse, DeviceDetail, DeviceView, ImportResult, RetireResult, StateResult,
};

use crate::cmd::device::{DeviceCommand, StoreArgs, utc, write_details};

/// A running server's operator API, with the admin token (shared by `device` and `incident`).
pub(crate) struct Remote {
    client: Client,
    token: zeroize::Zeroizing<String>,
    /// The server's URL.
    pub(crate) url: String,
    /// Found through <data-dir>/server.url rather than given: a stale file falls back to the
    /// offline mode for add/list/show.
    pub(crate) implicit: bool,
}

/// The server `store` names (`--server`, or `<data-dir>/server.url`); `None`: work offline.
pub(crate) fn resolve(store: &StoreArgs) -> Result<Option<Remote>> {
    let (url, implicit) = match &store.server {
        Some(u) => (u.clone(), false),
        None if store.database_url.is_some() => return Ok(None),
        None => {
            match std::fs::read_to_string(store.data_dir.join(ironroot_server::SERVER_URL_FILE)) {
                Ok(u) => (u.trim().to_owned(), true),
                Err(_) => return Ok(None),
            }
        }
    };
    let token_path = store
        .admin_token_file
        .clone()
        .unwrap_or_else(|| store.data_dir.join(ironroot_server::ADMIN_TOKEN_FILE));
    let token = match std::env::var("IRONROOT_ADMIN_TOKEN") {
        Ok(t) => zeroize::Zeroizing::new(t),
        Err(_) => zeroize::Zeroizing::new(
            std::fs::read_to_string(&token_path)
                .with_context(|| format!("cannot read the admin token {}", token_path.display()))?
                .trim()
                .to_owned(),
        ),
    };
    let ca_path = store
        .ca_file
        .clone()
        .unwrap_or_else(|| store.data_dir.join("pki").join("chain.pem"));
    let ca = std::fs::read(&ca_path)
        .with_context(|| format!("cannot read the CA chain {}", ca_path.display()))?;
    let client = Client::new(&url, &ca, None)?;
    Ok(Some(Remote {
        client,
        token,
        url,
        implicit,
    }))
}

impl Remote {
    /// The same server, accepting answers up to `bytes`.
    pub(crate) fn with_max_body(mut self, bytes: usize) -> Self {
        self.client = self.client.with_max_body(bytes);
        self
    }

    /// One authenticated request; the status and body.
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let auth = format!("Bearer {}", self.token.as_str());
        let r = self
            .client
            .request(
                method,
                path,
                &[("Authorization", &auth), ("Content-Type", content_type)],
                body,
            )
            .await?;
        Ok((r.status, r.body))
    }
}

/// Turns a refusal into an error naming the server's message, the field at fault and its hint
/// (`{"error","field","hint"}` from the operator API).
pub(crate) fn check(status: u16, body: &[u8], what: &str) -> Result<()> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let v = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let msg = v["error"]
        .as_str()
        .map_or_else(|| format!("HTTP {status}"), str::to_owned);
    let field = v["field"]
        .as_str()
        .map_or_else(String::new, |f| format!(" (field {f})"));
    let hint = match v["hint"].as_str() {
        Some(h) => format!("; {h}"),
        None if status == 401 => "; is the admin token right? see --admin-token-file".to_owned(),
        None => String::new(),
    };
    bail!("{what}: {msg}{field}{hint}")
}

pub(crate) fn enc(id: &str) -> String {
    // Device ids are [A-Za-z0-9._:-]; ':' is fine in a path segment. Anything else is refused
    // by the server, so pass it escaped rather than build another path.
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"._:-".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Runs the command through the server when one is configured; `Ok(None)`: use the offline mode.
pub(crate) async fn try_remote(cmd: &DeviceCommand) -> Result<Option<String>> {
    let store = match cmd {
        DeviceCommand::Add { store, .. }
        | DeviceCommand::List { store, .. }
        | DeviceCommand::Show { store, .. }
        | DeviceCommand::Import { store, .. }
        | DeviceCommand::Claim { store, .. }
        | DeviceCommand::Revoke { store, .. }
        | DeviceCommand::Quarantine { store, .. }
        | DeviceCommand::Release { store, .. }
        | DeviceCommand::Decommission { store, .. }
        | DeviceCommand::Transfer { store, .. }
        | DeviceCommand::Recommission { store, .. }
        | DeviceCommand::Repair { store, .. } => store,
    };
    let offline_ok = matches!(
        cmd,
        DeviceCommand::Add { .. } | DeviceCommand::List { .. } | DeviceCommand::Show { .. }
    );
    let Some(remote) = resolve(store)? else {
        return Ok(None);
    };
    match run(&remote, cmd).await {
        Err(e)
            if offline_ok
                && remote.implicit
                && e.downcast_ref::<ClientError>()
                    .is_some_and(ClientError::is_unreachable) =>
        {
            Ok(None)
        }
        Err(e) => Err(e.context(format!("server {}", remote.url))),
        Ok(out) => Ok(Some(out)),
    }
}

async fn run(remote: &Remote, cmd: &DeviceCommand) -> Result<String> {
    let mut out = String::new();
    match cmd {
        DeviceCommand::Add {
            id,
            groups,
            attrs,
            owner,
            ..
        } => {
            let body = serde_json::json!({
                "id": id, "groups": groups,
                "attributes": attrs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                "owner": owner,
            });
            let (status, body) = remote
                .call(
                    "POST",
                    "/api/v1/devices",
                    "application/json",
                    body.to_string().as_bytes(),
                )
                .await?;
            check(status, &body, "cannot add the device")?;
            let d: DeviceView = serde_json::from_slice(&body)?;
            writeln!(
                out,
                "added device {} ({}) via {}",
                d.id, d.state, remote.url
            )?;
            write_details(&mut out, &d.groups, &d.attributes, d.owner.as_deref())?;
        }
        DeviceCommand::List {
            group,
            state,
            owner,
            ..
        } => {
            let mut after: Option<String> = None;
            let mut rows: Vec<DeviceView> = Vec::new();
            loop {
                let mut q = vec!["limit=1000".to_owned()];
                if let Some(g) = group {
                    q.push(format!("group={}", enc(g)));
                }
                if let Some(s) = state {
                    q.push(format!("state={}", s.as_str()));
                }
                if let Some(o) = owner {
                    q.push(format!("owner={}", enc(o)));
                }
                if let Some(a) = &after {
                    q.push(format!("after={}", enc(a)));
                }
                let (status, body) = remote
                    .call(
                        "GET",
                        &format!("/api/v1/devices?{}", q.join("&")),
                        "application/json",
                        b"",
                    )
                    .await?;
                check(status, &body, "cannot list devices")?;
                let page: Vec<DeviceView> = serde_json::from_slice(&body)?;
                let full = page.len() == 1000;
                after = page.last().map(|d| d.id.clone());
                rows.extend(page);
                if !full {
                    break;
                }
            }
            if rows.is_empty() {
                writeln!(out, "no devices")?;
            } else {
                let width = rows.iter().map(|d| d.id.len()).max().unwrap_or(0).max(2);
                writeln!(
                    out,
                    "{:width$}  {:14}  {:16}  GROUPS",
                    "ID", "STATE", "OWNER"
                )?;
                for d in &rows {
                    let groups = if d.groups.is_empty() {
                        "-".to_owned()
                    } else {
                        d.groups.join(",")
                    };
                    writeln!(
                        out,
                        "{:width$}  {:14}  {:16}  {}",
                        d.id,
                        d.state,
                        d.owner.as_deref().unwrap_or("-"),
                        groups
                    )?;
                }
                writeln!(out, "{} device(s)", rows.len())?;
            }
        }
        DeviceCommand::Show { id, .. } => {
            let (status, body) = remote
                .call(
                    "GET",
                    &format!("/api/v1/devices/{}", enc(id)),
                    "application/json",
                    b"",
                )
                .await?;
            check(status, &body, "cannot show the device")?;
            let d: DeviceDetail = serde_json::from_slice(&body)?;
            writeln!(out, "device {}", d.device.id)?;
            writeln!(out, "  state:        {}", d.device.state)?;
            write_details(
                &mut out,
                &d.device.groups,
                &d.device.attributes,
                d.device.owner.as_deref(),
            )?;
            writeln!(out, "  registered:   {}", utc(d.device.created_at))?;
            if d.certificates.is_empty() {
                writeln!(out, "  certificates: none")?;
            } else {
                writeln!(out, "  certificates:")?;
                for c in &d.certificates {
                    writeln!(
                        out,
                        "    {} {} {} valid until {}",
                        c.serial,
                        c.kind,
                        c.status,
                        utc(c.not_after)
                    )?;
                }
            }
        }
        DeviceCommand::Import { file, .. } => {
            let data =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            let kind = if file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                "application/json"
            } else {
                "text/csv"
            };
            let (status, body) = remote
                .call("POST", "/api/v1/devices/import", kind, &data)
                .await?;
            check(status, &body, "import refused")?;
            let r: ImportResult = serde_json::from_slice(&body)?;
            writeln!(out, "imported {} device(s) via {}", r.added, remote.url)?;
            for e in &r.errors {
                writeln!(out, "  skipped {e}")?;
            }
        }
        DeviceCommand::Claim { id, ttl, .. } => {
            let body = serde_json::json!({ "ttl_seconds": ttl }).to_string();
            let (status, body) = remote
                .call(
                    "POST",
                    &format!("/api/v1/devices/{}/claim", enc(id)),
                    "application/json",
                    body.as_bytes(),
                )
                .await?;
            check(status, &body, "cannot mint a claim token")?;
            let c: ClaimResponse = serde_json::from_slice(&body)?;
            // The token alone on stdout, so `TOKEN=$(ironroot device claim ID)` works; the rest on stderr.
            writeln!(out, "{}", c.token)?;
            eprintln!(
                "one-time claim token for {id}, valid until {} (shown once; the server keeps only its hash).\n\
                 enroll: curl --cacert chain.pem --data-binary @csr.b64 -H 'Content-Type: application/pkcs10' -u {id}:TOKEN {}/.well-known/est/simpleenroll",
                utc(c.expires_at),
                remote.url
            );
        }
        DeviceCommand::Revoke { id, .. } | DeviceCommand::Decommission { id, .. } => {
            let (verb, done) = if matches!(cmd, DeviceCommand::Revoke { .. }) {
                ("revoke", "revoked")
            } else {
                ("decommission", "decommissioned")
            };
            let (status, body) = remote
                .call(
                    "POST",
                    &format!("/api/v1/devices/{}/{verb}", enc(id)),
                    "application/json",
                    b"",
                )
                .await?;
            check(status, &body, &format!("cannot {verb} the device"))?;
            let r: RetireResult = serde_json::from_slice(&body)?;
            writeln!(
                out,
                "{done} device {} ({} certificate(s) revoked now)",
                r.device,
                r.revoked.len()
            )?;
            match r.keys_destroyed_confirmed {
                Some(true) => writeln!(
                    out,
                    "the device verified the signed command, destroyed its keys and disconnected"
                )?,
                Some(false) if r.command_sent == Some(true) => writeln!(
                    out,
                    "the signed command was sent, but the device did not disconnect in time: \
                     its keys may still exist (it is revoked all the same)"
                )?,
                Some(false) => writeln!(
                    out,
                    "the device was not connected: its keys could not be destroyed remotely \
                     (it is revoked all the same)"
                )?,
                None => {}
            }
        }
        DeviceCommand::Transfer { .. }
        | DeviceCommand::Recommission { .. }
        | DeviceCommand::Repair { .. } => {
            out = crate::cmd::device_fleet::run_remote(remote, cmd).await?;
        }
        DeviceCommand::Quarantine { id, .. } | DeviceCommand::Release { id, .. } => {
            let verb = if matches!(cmd, DeviceCommand::Quarantine { .. }) {
                "quarantine"
            } else {
                "release"
            };
            let (status, body) = remote
                .call(
                    "POST",
                    &format!("/api/v1/devices/{}/{verb}", enc(id)),
                    "application/json",
                    b"",
                )
                .await?;
            check(status, &body, &format!("cannot {verb} the device"))?;
            let r: StateResult = serde_json::from_slice(&body)?;
            writeln!(out, "device {} is now {}", r.device, r.state)?;
        }
    }
    Ok(out)
}
