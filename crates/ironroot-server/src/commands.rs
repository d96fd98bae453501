//! Signed commands from the server to devices, and the decommission that uses the first of
//! them.
//!
//! ```text
//!  POST /devices/{id}/decommission ─▶ connected? ─no──────────────────────────────┐
//!        │ yes                                                                    │
//!        ▼                                                                        │
//!  fresh P-256 key (memory) ─▶ intermediate issues a command-signer certificate   │
//!  (codeSigning, urn:ironroot:command-signer, valid for the command's window)      │
//!        ▼                                                                        │
//!  Envelope::seal {"type":"decommission","device","id","issued_at","expires_at"}   │
//!        ▼ CommandChannel::send (the node's broker: devices/{id}/commands)        │
//!  wait ≤ 5 s for the session to end (the device destroys its keys, disconnects)  │
//!        ▼                                                                        ▼
//!  audit device.command {id, delivered, keys_destroyed_confirmed} ─▶ revoke + retire (as before)
//! ```
//!
//! The command-signing key lives only for one command, in memory (it is dropped once the
//! envelope is sealed): there is no long-lived signing key to steal, and a signer certificate
//! is useless after its command's window. The broker only carries the envelope; devices
//! verify it against their root ([`ironroot_device::command`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_audit::{Event, EventKind, Outcome};
use ironroot_device::command::{Command, CommandKind, Envelope};
use ironroot_pki::{CaSigner as _, DeviceId, IssuancePolicy, SoftwareKey, SubjectKey};
use ironroot_store::{Certificate, DeviceState};

use crate::app::AppState;
use crate::identity::IdentityError;

/// How long a command is valid after it is signed (its certificate too).
pub const COMMAND_LIFETIME: Duration = Duration::from_secs(300);

/// How long a decommission waits for the device to end its session after the command.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Where commands go: the node attaches its MQTT broker ([`crate::ServerHandle::set_command_channel`]).
pub trait CommandChannel: Send + Sync + fmt::Debug {
    /// Publishes `envelope` on `devices/<device>/commands`; returns whether a subscription
    /// matched (the device was listening).
    fn send(&self, device: &str, envelope: &[u8]) -> Result<bool, ChannelError>;

    /// Whether the device has a live session now.
    fn is_connected(&self, device: &str) -> bool;
}

/// Why a command could not be handed to the channel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel refused the message (broker stopped, overloaded, too large).
    #[error("command channel refused the message: {0}")]
    Refused(String),
}

/// Why a command could not be signed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The one-command key or its signature failed.
    #[error("command signing key: {0}")]
    Key(#[from] ironroot_pki::SignerError),
    /// The intermediate would not issue the command-signer certificate.
    #[error("command-signer certificate: {0}")]
    Issue(#[from] ironroot_pki::IssueError),
}

/// Signs `command` with a fresh one-command key certified by the online intermediate; returns
/// the envelope JSON.
pub fn sign(ca: &ironroot_pki::OnlineCa, command: &Command) -> Result<Vec<u8>, SignError> {
    let key = SoftwareKey::generate()?;
    let subject = SubjectKey::p256(key.public_key()).map_err(ironroot_pki::IssueError::from)?;
    let now = time::OffsetDateTime::from_unix_timestamp(command.issued_at)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc());
    let validity = time::Duration::seconds(command.expires_at - command.issued_at);
    let cert =
        ca.issuing()
            .issue_command_signer(&subject, validity, &IssuancePolicy::default(), now)?;
    let chain = [cert.der().clone(), ca.issuing().certificate().der().clone()];
    Ok(Envelope::seal(command, &chain, |m| key.sign(m))?)
}

/// A new command for `device`, valid for [`COMMAND_LIFETIME`] from now, with a random
/// (UUID v4) id.
pub fn new_command(kind: CommandKind, device: &DeviceId) -> Command {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Command {
        kind,
        device: device.as_str().to_owned(),
        id: uuid_v4(),
        issued_at: now,
        expires_at: now + i64::try_from(COMMAND_LIFETIME.as_secs()).unwrap_or(300),
    }
}

fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    // On failure the id is still unique enough from the clock; the OS generator does not fail
    // in practice.
    if getrandom::fill(&mut b).is_err() {
        b[..16].copy_from_slice(
            &time::OffsetDateTime::now_utc()
                .unix_timestamp_nanos()
                .to_be_bytes(),
        );
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// What a decommission did.
#[derive(Debug)]
pub struct Decommissioned {
    /// Certificates revoked now.
    pub revoked: Vec<Certificate>,
    /// Whether the signed command reached a listening device.
    pub command_sent: bool,
    /// Whether the device ended its session after the command (it does so after destroying
    /// its keys). `false`: offline or silent; its keys could not be destroyed remotely.
    pub keys_destroyed_confirmed: bool,
}

/// Decommissions `device`: when it is connected, sends it a signed decommission command and
/// waits up to [`ACK_TIMEOUT`] for its session to end; then revokes and retires it (always,
/// connected or not). The command and its outcome are audited (`device.command`).
pub(crate) async fn decommission(
    state: &AppState,
    device: &DeviceId,
    actor: &str,
) -> Result<Decommissioned, IdentityError> {
    let id = device.as_str();
    let eligible = matches!(
        state.store.device(id).await,
        Ok(d) if d.state != DeviceState::Decommissioned
    );
    let channel: Option<Arc<dyn CommandChannel>> = state.commands.get().cloned();
    let mut command_sent = false;
    let mut confirmed = false;
    if eligible {
        let command = new_command(CommandKind::Decommission, device);
        let online = channel.as_ref().is_some_and(|c| c.is_connected(id));
        let mut event = Event::new(EventKind::DeviceCommand, actor)
            .subject("device", id)
            .detail("command", command.kind.as_str())
            .detail("id", command.id.clone());
        let sent = match &channel {
            Some(channel) if online => match sign(state.identity.ca(), &command) {
                Ok(envelope) => channel.send(id, &envelope).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            },
            _ => Ok(false),
        };
        match sent {
            Ok(true) => {
                command_sent = true;
                confirmed = wait_disconnected(channel.as_deref(), id, ACK_TIMEOUT).await;
                if !confirmed {
                    event = event.detail("reason", "no_disconnect");
                }
            }
            Ok(false) if online => event = event.detail("reason", "not_subscribed"),
            Ok(false) => event = event.detail("reason", "device_offline"),
            Err(e) => {
                log::warn!("decommission command for {id} not sent: {e}");
                event = event.detail("reason", "not_sent");
            }
        }
        event = event
            .detail("delivered", command_sent.to_string())
            .detail("keys_destroyed_confirmed", confirmed.to_string())
            .outcome(if confirmed {
                Outcome::Success
            } else {
                Outcome::Failure
            });
        if let Err(e) = state.audit.record(event).await {
            log::error!("audit log write failed: {e}");
        }
    }
    let revoked = state.identity.decommission(device, actor).await?;
    Ok(Decommissioned {
        revoked,
        command_sent,
        keys_destroyed_confirmed: confirmed,
    })
}

async fn wait_disconnected(
    channel: Option<&dyn CommandChannel>,
    device: &str,
    timeout: Duration,
) -> bool {
    let Some(channel) = channel else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    while channel.is_connected(device) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn device_and_pki_agree_on_the_command_signer_uri() {
        assert_eq!(
            ironroot_device::command::COMMAND_SIGNER_URI,
            ironroot_pki::COMMAND_SIGNER_URI
        );
    }

    #[test]
    fn command_ids_are_uuid_v4() {
        let id = super::uuid_v4();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, super::uuid_v4());
    }
}
