//! The `attacks` scenario: what a compromised or malicious device would try, each against the
//! real server and broker, each of which must be refused and found in the audit log.
//!
//! | attack | refused means | audit entry |
//! |---|---|---|
//! | `cloned_certificate_used_twice` | the two sessions are never both alive (the second takes over) | `mqtt.takeover` |
//! | `publish_to_another_devices_topic` | PUBACK `NotAuthorized` | `mqtt.denied` |
//! | `self_signed_certificate_claiming_a_real_id` | TLS handshake refused | `mqtt.certificate_rejected` |
//! | `replayed_claim_token` | EST 401 | `provision.failed` |
//! | `csr_for_another_device_id` | EST refusal | `provision.failed` |
//! | `reconnect_after_revocation` | live session ended, reconnect refused | `mqtt.certificate_rejected` |
//! | `firmware_signed_with_wrong_key` | the bootloader refuses it (`untrusted_key`), the running image stays | `firmware.refused` |
//! | `downgrade_image` | the bootloader refuses a properly signed older image (`rollback`) | `firmware.refused` |
//! | `api_authentication_bypass` | every documented operation refuses missing, forged and wrong-kind credentials (401/403) | `auth.failed` per operator refusal |
//! | `api_injection` | injection payloads in paths, queries, bodies and EST identities get 4xx, never 2xx/5xx or a leak | `provision.failed` |
//!
//! The firmware attacks run on a device that first took a genuine update: it booted on trial,
//! the agent reported it and confirmed it after its health check, so its anti-rollback floor is
//! the update's security counter. Each attack image is then installed as a downloader would,
//! the board reboots, and the device reports the decision over mutual TLS.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_device::core::Backoff;
use ironroot_device::{
    Agent, AgentConfig, Answer, Bootstrap, DeviceError, DeviceTls, EstClient, MqttDevice,
    MqttTarget, Quiet, TrustAnchor, csr,
};
use ironroot_element::{DeviceSigner, RcgenKey, SecureElement, SoftwareElement};

use crate::board::{Board, FleetFirmware};
use crate::{AttackResult, Operator, SimError};

/// How long the simulator waits for an audit entry to appear.
pub(crate) const AUDIT_WAIT: Duration = Duration::from_secs(10);

/// Everything an attack needs.
pub struct Arena<'a> {
    /// The operator API (registers attack devices, mints claims, revokes, reads the audit log).
    pub operator: &'a Operator,
    /// The EST server.
    pub est: &'a EstClient,
    /// The root the devices trust.
    pub trust: &'a TrustAnchor,
    /// The broker.
    pub mqtt: &'a MqttTarget,
    /// Device id prefix of this run (attack devices are `<prefix>-atk-<name>`).
    pub prefix: &'a str,
    /// The fleet's firmware (keys, images) for the firmware attacks.
    pub firmware: Option<&'a Arc<FleetFirmware>>,
}

/// A device enrolled for an attack: its element key and mutual-TLS identity.
pub(crate) struct Enrolled {
    pub(crate) id: String,
    pub(crate) tls: DeviceTls,
}

impl Arena<'_> {
    pub(crate) fn id(&self, name: &str) -> String {
        format!("{}-atk-{name}", self.prefix)
    }

    pub(crate) async fn register(&self, id: &str) -> Result<(), SimError> {
        self.operator
            .register(&[id.to_owned()], self.prefix)
            .await
            .map(|_| ())
    }

    /// Registers `name`, mints its claim, enrolls it with a key made in a fresh element.
    pub(crate) async fn enrolled(&self, name: &str) -> Result<Enrolled, SimError> {
        let id = self.id(name);
        self.register(&id).await?;
        let token = self.operator.device_claim(&id).await?;
        let key = new_key()?;
        let issued = self
            .est
            .enroll_with_claim(&id, &token, &csr(&key, &id)?)
            .await?;
        let tls = DeviceTls::new(self.trust, issued.chain, key)?;
        Ok(Enrolled { id, tls })
    }

    /// Whether an audit entry of `kind` about `device` appears within [`AUDIT_WAIT`].
    pub(crate) async fn audited(&self, device: &str, kind: &str) -> bool {
        let deadline = Instant::now() + AUDIT_WAIT;
        loop {
            match self.operator.audit_events(Some(device), Some(kind)).await {
                Ok(entries) if !entries.is_empty() => return true,
                _ if Instant::now() >= deadline => return false,
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

pub(crate) fn new_key() -> Result<Arc<dyn DeviceSigner>, SimError> {
    let element = SoftwareElement::ephemeral().map_err(ironroot_device::DeviceError::from)?;
    Ok(element
        .generate("identity")
        .map_err(ironroot_device::DeviceError::from)?)
}

pub(crate) fn result(name: &str, refused: bool, audited: bool) -> AttackResult {
    AttackResult {
        name: name.to_owned(),
        refused,
        audited,
    }
}

/// Runs every attack; an attack that cannot even be set up counts as not refused.
pub async fn run_all(arena: &Arena<'_>) -> Vec<AttackResult> {
    let mut out = Vec::new();
    out.push(cloned_certificate(arena).await);
    out.push(foreign_topic(arena).await);
    out.push(self_signed(arena).await);
    out.push(replayed_claim(arena).await);
    out.push(foreign_csr(arena).await);
    out.push(after_revocation(arena).await);
    out.extend(firmware_attacks(arena).await);
    out.push(crate::api_attacks::auth_bypass(arena).await);
    out.push(crate::api_attacks::injection(arena).await);
    out
}

async fn cloned_certificate(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "cloned_certificate_used_twice";
    let Ok(dev) = a.enrolled("clone").await else {
        return result(NAME, false, false);
    };
    let Ok(mut first) = MqttDevice::connect(a.mqtt, &dev.id, &dev.tls).await else {
        return result(NAME, false, false);
    };
    // The clone: the same certificate and key, a second connection.
    let second = MqttDevice::connect(a.mqtt, &dev.id, &dev.tls).await;
    let first_ended = first.wait_closed(Duration::from_secs(5)).await.is_ok();
    let refused = first_ended || second.is_err();
    if let Ok(s) = second {
        s.disconnect().await;
    }
    result(NAME, refused, a.audited(&dev.id, "mqtt.takeover").await)
}

async fn foreign_topic(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "publish_to_another_devices_topic";
    let Ok(dev) = a.enrolled("spoof").await else {
        return result(NAME, false, false);
    };
    let Ok(mut s) = MqttDevice::connect(a.mqtt, &dev.id, &dev.tls).await else {
        return result(NAME, false, false);
    };
    let victim = format!("devices/{}/telemetry", a.id("victim"));
    let answer = s.publish(&victim, b"{\"spoofed\":true}").await;
    // The same session's own topic is accepted: "refused" is the policy, not a broken path.
    let own = s
        .publish(&format!("devices/{}/telemetry", dev.id), b"{}")
        .await;
    s.disconnect().await;
    let refused = matches!(answer, Ok(Answer::Refused(_))) && matches!(own, Ok(Answer::Accepted));
    result(NAME, refused, a.audited(&dev.id, "mqtt.denied").await)
}

async fn self_signed(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "self_signed_certificate_claiming_a_real_id";
    let victim = a.id("victim");
    if a.register(&victim).await.is_err() {
        return result(NAME, false, false);
    }
    let forged = async {
        let key = new_key()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
            .map_err(|e| SimError::Config(e.to_string()))?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, victim.as_str());
        let cert = params
            .self_signed(&RcgenKey(key.clone()))
            .map_err(|e| SimError::Config(e.to_string()))?;
        Ok::<_, SimError>(DeviceTls::new(a.trust, vec![cert.der().clone()], key)?)
    }
    .await;
    let Ok(tls) = forged else {
        return result(NAME, false, false);
    };
    let refused = MqttDevice::connect(a.mqtt, &victim, &tls).await.is_err();
    result(
        NAME,
        refused,
        a.audited(&victim, "mqtt.certificate_rejected").await,
    )
}

async fn replayed_claim(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "replayed_claim_token";
    let id = a.id("replay");
    let setup = async {
        a.register(&id).await?;
        let token = a.operator.device_claim(&id).await?;
        let key = new_key()?;
        a.est
            .enroll_with_claim(&id, &token, &csr(&key, &id)?)
            .await?;
        let again = new_key()?;
        Ok::<_, SimError>(
            a.est
                .enroll_with_claim(&id, &token, &csr(&again, &id)?)
                .await,
        )
    }
    .await;
    let refused = matches!(
        setup,
        Ok(Err(ironroot_device::DeviceError::Refused {
            status: 401,
            ..
        }))
    );
    result(NAME, refused, a.audited(&id, "provision.failed").await)
}

async fn foreign_csr(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "csr_for_another_device_id";
    let id = a.id("csr");
    let victim = a.id("victim");
    let attempt = async {
        a.register(&id).await?;
        let token = a.operator.device_claim(&id).await?;
        let key = new_key()?;
        // Authenticated as `id`, asking for a certificate naming the victim.
        Ok::<_, SimError>(
            a.est
                .enroll_with_claim(&id, &token, &csr(&key, &victim)?)
                .await,
        )
    }
    .await;
    let refused = matches!(
        attempt,
        Ok(Err(ironroot_device::DeviceError::Refused { .. }))
    );
    result(NAME, refused, a.audited(&id, "provision.failed").await)
}

async fn after_revocation(a: &Arena<'_>) -> AttackResult {
    const NAME: &str = "reconnect_after_revocation";
    let Ok(dev) = a.enrolled("revoked").await else {
        return result(NAME, false, false);
    };
    let Ok(mut live) = MqttDevice::connect(a.mqtt, &dev.id, &dev.tls).await else {
        return result(NAME, false, false);
    };
    if a.operator.revoke(&dev.id).await.is_err() {
        return result(NAME, false, false);
    }
    let kicked = live.wait_closed(Duration::from_secs(10)).await.is_ok();
    let again = MqttDevice::connect(a.mqtt, &dev.id, &dev.tls).await;
    let refused = kicked && again.is_err();
    if let Ok(s) = again {
        s.disconnect().await;
    }
    result(
        NAME,
        refused,
        a.audited(&dev.id, "mqtt.certificate_rejected").await,
    )
}

/// A device for the firmware attacks: registered, claimed, booted on an update that runs on
/// trial and was confirmed by the agent after its health check (so the anti-rollback floor is
/// the update's counter from the next boot on).
struct FirmwareDevice {
    id: String,
    /// The agent that enrolled it (its mutual-TLS identity reports the later boots).
    agent: Agent,
    board: Board,
}

/// The update the firmware device runs before the attacks (counter 2).
const UPDATE_VERSION: &str = "1.1.0";

async fn firmware_device(
    a: &Arena<'_>,
    fw: &Arc<FleetFirmware>,
) -> Result<FirmwareDevice, SimError> {
    let id = a.id("firmware");
    a.register(&id).await?;
    let token = a.operator.device_claim(&id).await?;
    let board = fw.board();
    board.power_on()?;
    board.install(&fw.image(UPDATE_VERSION, 2)?)?;
    let trial = board.power_on()?;
    if !trial.trial {
        return Err(SimError::Config("the update did not boot on trial".into()));
    }
    let element = Arc::new(SoftwareElement::ephemeral().map_err(DeviceError::from)?);
    let cfg = AgentConfig {
        device_id: id.clone(),
        est: a.est.clone(),
        trust: a.trust.clone(),
        mqtt: a.mqtt.clone(),
        bootstrap: Bootstrap::ClaimToken(token),
        telemetry_interval: None,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(5)),
        clock_skew: 0,
    };
    let mut agent =
        Agent::new(cfg, element, Arc::new(Quiet)).with_firmware(Box::new(board.clone()));
    if !agent.run_until_connected(Duration::from_secs(30)).await {
        return Err(SimError::Config(
            "the firmware device did not connect".into(),
        ));
    }
    agent.disconnect().await;
    // The agent confirmed the trial image once its report was accepted: the server says so.
    let stored = a.operator.boot_report(&id).await?;
    if stored["trial"] != serde_json::Value::Bool(false)
        || !stored["firmware_version"]
            .as_str()
            .is_some_and(|v| v.starts_with(UPDATE_VERSION))
    {
        return Err(SimError::Config(format!(
            "the server does not show the confirmed update: {stored}"
        )));
    }
    Ok(FirmwareDevice { id, agent, board })
}

/// Installs `image`, reboots, reports the boot as the device's application does, and says
/// whether the bootloader refused it for `reason` while the update kept running.
async fn refused_update(
    a: &Arena<'_>,
    dev: &FirmwareDevice,
    image: &[u8],
    reason: &str,
) -> Result<bool, SimError> {
    dev.board.install(image)?;
    let report = dev.board.power_on()?;
    let tls = dev
        .agent
        .tls()
        .ok_or_else(|| SimError::Config("no identity after connecting".into()))?;
    a.est.report_boot(tls, &dev.id, &report).await?;
    Ok(report.refused.iter().any(|r| r.reason == reason)
        && report
            .firmware_version
            .as_deref()
            .is_some_and(|v| v.starts_with(UPDATE_VERSION))
        && !report.trial)
}

/// Whether a `firmware.refused` entry with `reason` about `device` appears in time.
async fn audited_refusal(a: &Arena<'_>, device: &str, reason: &str) -> bool {
    let deadline = Instant::now() + AUDIT_WAIT;
    loop {
        if let Ok(entries) = a
            .operator
            .audit_events(Some(device), Some("firmware.refused"))
            .await
            && entries
                .iter()
                .any(|e| e["details"]["reason"].as_str() == Some(reason))
        {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `firmware_signed_with_wrong_key` and `downgrade_image`, on one device.
async fn firmware_attacks(a: &Arena<'_>) -> Vec<AttackResult> {
    const WRONG_KEY: &str = "firmware_signed_with_wrong_key";
    const DOWNGRADE: &str = "downgrade_image";
    let failed = || {
        vec![
            result(WRONG_KEY, false, false),
            result(DOWNGRADE, false, false),
        ]
    };
    let Some(fw) = a.firmware else {
        return failed();
    };
    let Ok(dev) = firmware_device(a, fw).await else {
        return failed();
    };
    let mut out = Vec::new();
    // A newer version, signed with a key the fused root of trust does not name.
    let refused = match fw.rogue_image("9.0.0", 9) {
        Ok(img) => refused_update(a, &dev, &img, "untrusted_key")
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    out.push(result(
        WRONG_KEY,
        refused,
        audited_refusal(a, &dev.id, "untrusted_key").await,
    ));
    // The factory version, properly signed, but below the counter the update raised.
    let refused = match fw.image(super::board::FACTORY_VERSION, super::board::FACTORY_COUNTER) {
        Ok(img) => refused_update(a, &dev, &img, "rollback")
            .await
            .unwrap_or(false),
        Err(_) => false,
    };
    out.push(result(
        DOWNGRADE,
        refused,
        audited_refusal(a, &dev.id, "rollback").await,
    ));
    out
}
