//! `ironroot device transfer`, `recommission` and `repair`: through the server's operator API
//! when one runs, else on the data directory through the same fleet service
//! (`ironroot_fleet::Fleet::rebind_device`, `send_for_repair`); a running server picks the
//! change up from the registry's change feed and cuts the device's sessions all the same.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use ironroot_server::operator::{RebindResult, RetireResult};
use ironroot_store::{Rebind, RebindKind};

use crate::cmd::device::{DeviceCommand, cli_origin, parse_attr};
use crate::cmd::device_remote::{Remote, check, enc};

/// The binding the new owner gives the device, and how to print the answer.
#[derive(Debug, Args)]
pub(crate) struct Binding {
    /// Put the device in this group (repeatable); groups are created on first use.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Set an attribute, KEY=VALUE (repeatable).
    #[arg(long = "attr", value_name = "KEY=VALUE", value_parser = parse_attr)]
    attrs: Vec<(String, String)>,
    /// Print the result as JSON (the API's RebindResult).
    #[arg(long)]
    json: bool,
}

/// The command's id, request and output format; `None` for other device commands.
fn request(cmd: &DeviceCommand) -> Option<(&str, Rebind, bool)> {
    let (id, kind, owner, binding) = match cmd {
        DeviceCommand::Transfer {
            id, to, binding, ..
        } => (id, RebindKind::Transfer, Some(to.clone()), binding),
        DeviceCommand::Recommission {
            id, owner, binding, ..
        } => (id, RebindKind::Recommission, owner.clone(), binding),
        _ => return None,
    };
    let rebind = Rebind {
        kind,
        owner,
        groups: binding.groups.clone(),
        attributes: binding.attrs.iter().cloned().collect::<BTreeMap<_, _>>(),
    };
    Some((id.as_str(), rebind, binding.json))
}

/// Runs transfer/recommission/repair through the server.
pub(crate) async fn run_remote(remote: &Remote, cmd: &DeviceCommand) -> Result<String> {
    if let DeviceCommand::Repair { id, json, .. } = cmd {
        let (status, answer) = remote
            .call(
                "POST",
                &format!("/api/v1/devices/{}/repair", enc(id)),
                "application/json",
                b"",
            )
            .await?;
        check(status, &answer, "cannot send the device for repair")?;
        let result: RetireResult = serde_json::from_slice(&answer)?;
        return render_repair(&result, *json);
    }
    let Some((id, rebind, json)) = request(cmd) else {
        anyhow::bail!("not a fleet-service device command");
    };
    let verb = rebind.kind.as_str();
    let body = serde_json::json!({
        "owner": rebind.owner,
        "groups": rebind.groups,
        "attributes": rebind.attributes,
    });
    let (status, answer) = remote
        .call(
            "POST",
            &format!("/api/v1/devices/{}/{verb}", enc(id)),
            "application/json",
            &serde_json::to_vec(&body)?,
        )
        .await?;
    check(status, &answer, &format!("cannot {verb} the device"))?;
    let result: RebindResult = serde_json::from_slice(&answer)?;
    render(rebind.kind, &result, json)
}

/// Runs transfer/recommission/repair on the data directory (no server).
pub(crate) async fn run_offline(cmd: DeviceCommand) -> Result<String> {
    let store = match &cmd {
        DeviceCommand::Transfer { store, .. }
        | DeviceCommand::Recommission { store, .. }
        | DeviceCommand::Repair { store, .. } => store,
        _ => anyhow::bail!("not a fleet-service device command"),
    };
    let fleet = store.fleet(false).await?;
    let out = if let DeviceCommand::Repair { id, json, .. } = &cmd {
        let done = fleet.send_for_repair(&cli_origin(), id).await;
        done.map(|revoked| RetireResult::revoked_now(id.clone(), &revoked))
            .map_err(anyhow::Error::from)
            .and_then(|r| render_repair(&r, *json))
    } else if let Some((id, rebind, json)) = request(&cmd) {
        let done = fleet.rebind_device(&cli_origin(), id, &rebind).await;
        done.map_err(anyhow::Error::from).and_then(|r| {
            let result = RebindResult::from_rebound(id.to_owned(), rebind.owner.clone(), r);
            render(rebind.kind, &result, json)
        })
    } else {
        Err(anyhow::anyhow!("not a fleet-service device command"))
    };
    fleet.store().close().await;
    out
}

fn render_repair(r: &RetireResult, json: bool) -> Result<String> {
    let mut out = String::new();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
    } else {
        writeln!(
            out,
            "device {} is in_repair ({} certificate(s) revoked now); back from repair: \
             ironroot device recommission {}",
            r.device,
            r.revoked.len(),
            r.device
        )?;
    }
    Ok(out)
}

fn render(kind: RebindKind, r: &RebindResult, json: bool) -> Result<String> {
    let mut out = String::new();
    if json {
        writeln!(out, "{}", serde_json::to_string(r)?)?;
        return Ok(out);
    }
    let owner = |o: &Option<String>| o.clone().unwrap_or_else(|| "no owner".into());
    match kind {
        RebindKind::Transfer => writeln!(
            out,
            "transferred device {} from {} to {}",
            r.device,
            owner(&r.previous_owner),
            owner(&r.owner)
        )?,
        _ => writeln!(
            out,
            "re-commissioned device {} (was {}), owner {}",
            r.device,
            r.from_state,
            owner(&r.owner)
        )?,
    }
    writeln!(out, "  certificates revoked now: {}", r.revoked.len())?;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    writeln!(out, "  groups left: {}", list(&r.groups_removed))?;
    writeln!(out, "  attributes removed: {}", list(&r.attributes_removed))?;
    writeln!(
        out,
        "  device policies detached: {}",
        list(&r.policies_detached)
    )?;
    writeln!(out, "  unused claim tokens voided: {}", r.claims_voided)?;
    writeln!(
        out,
        "it is {} now: mint a claim token (ironroot device claim {}) so it enrolls a fresh key",
        r.state, r.device
    )?;
    Ok(out)
}
