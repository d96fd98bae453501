//! The device agent: drives the transport-free [`crate::core::Lifecycle`] over real HTTPS (EST),
//! real MQTT over mutual TLS, and a real secure element. One agent is one device; the fleet
//! simulator runs thousands of them in one process.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ironroot_element::{DeviceSigner, SecureElement};
use rustls::pki_types::CertificateDer;
use zeroize::Zeroizing;

mod boot;
mod commands;

use crate::command::{CommandError, CommandVerifier, VerifiedCommand};
use crate::core::{Action, Backoff, CaClock, CertTimes, Event, Lifecycle, Phase};
use crate::{
    Answer, BootReport, DeviceError, DeviceTls, EstClient, Firmware, Issued, MqttDevice,
    MqttTarget, TrustAnchor,
};

/// The credential a device enrolls with the first time (and after expiry).
pub enum Bootstrap {
    /// A one-time (or group, quota-limited) claim token, sent as HTTP Basic `id:token`.
    ClaimToken(Zeroizing<String>),
    /// A factory certificate whose key is in the element (mutual TLS to EST).
    Factory(Arc<DeviceTls>),
}

impl std::fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ClaimToken(_) => "Bootstrap::ClaimToken(secret)",
            Self::Factory(_) => "Bootstrap::Factory",
        })
    }
}

/// Everything one device needs to know about its cloud.
#[derive(Debug)]
pub struct AgentConfig {
    /// The device id (certificate CN, MQTT client id).
    pub device_id: String,
    /// The EST server.
    pub est: EstClient,
    /// The root the device trusts.
    pub trust: TrustAnchor,
    /// The MQTT broker.
    pub mqtt: MqttTarget,
    /// How the device enrolls.
    pub bootstrap: Bootstrap,
    /// Telemetry period while connected (`None`: no telemetry).
    pub telemetry_interval: Option<Duration>,
    /// Retry and reconnect delays.
    pub backoff: Backoff,
    /// Seconds added to the device's wall clock: simulates a device whose clock is wrong (the
    /// lifecycle must not care). Zero on real devices.
    pub clock_skew: i64,
}

/// What the agent reports as it works; the simulator counts it, a gateway logs it.
pub trait AgentObserver: Send + Sync {
    /// A certificate arrived (`renewal`: not the first one) after `took`.
    fn enrolled(&self, _device: &str, _renewal: bool, _took: Duration) {}
    /// The MQTT session came up after `took`.
    fn connected(&self, _device: &str, _took: Duration) {}
    /// A telemetry message was answered after `latency` (PUBACK), accepted or refused.
    fn published(&self, _device: &str, _latency: Duration, _accepted: bool) {}
    /// Something failed; the lifecycle retries with backoff.
    fn failed(&self, _device: &str, _step: &'static str, _error: &DeviceError) {}
    /// A new identity is in hand: persist `state` (a gateway writes it to disk) to resume
    /// with [`Agent::resume`] after a restart. Called before the previous key is destroyed.
    fn certificate(&self, _device: &str, _state: &Resume) {}
    /// The cloud accepted this boot report (after connecting, and again after confirming).
    fn boot_reported(&self, _device: &str, _report: &BootReport) {}
    /// A signed command passed every check and is being carried out.
    fn command_accepted(&self, _device: &str, _command: &VerifiedCommand) {}
    /// A message on the commands topic was refused (forged, replayed, expired, for another
    /// device, malformed) and ignored.
    fn command_refused(&self, _device: &str, _error: &CommandError) {}
}

/// What a device keeps across restarts: its certificate chain, the label of its key in the
/// element, when the certificate was received (CA time) and the measured clock offset.
#[derive(Debug, Clone)]
pub struct Resume {
    /// The certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The key's label in the element (`identity-<n>`).
    pub key_label: String,
    /// CA time the certificate was received.
    pub issued_at: i64,
    /// CA time minus device wall time, seconds.
    pub clock_offset: i64,
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;
impl AgentObserver for Quiet {}

/// One device.
pub struct Agent {
    cfg: AgentConfig,
    element: Arc<dyn SecureElement>,
    observer: Arc<dyn AgentObserver>,
    lifecycle: Lifecycle,
    clock: CaClock,
    started: Instant,
    key: Option<Arc<dyn DeviceSigner>>,
    tls: Option<DeviceTls>,
    generation: u32,
    session: Option<MqttDevice>,
    sequence: u64,
    firmware: Option<Box<dyn Firmware>>,
    /// Whether the cloud has this boot's report (in its latest, confirmed form).
    boot_reported: bool,
    commands: CommandVerifier,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("device", &self.cfg.device_id)
            .field("phase", &self.lifecycle.phase())
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch on the device's wall clock.
fn wall_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The validity of a DER certificate in Unix seconds, received at CA time `issued_at`.
pub fn certificate_times(
    cert: &CertificateDer<'_>,
    issued_at: Option<i64>,
) -> Result<CertTimes, DeviceError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| DeviceError::BadResponse(format!("issued certificate does not parse: {e}")))?;
    Ok(CertTimes::new(
        parsed.validity().not_before.timestamp(),
        parsed.validity().not_after.timestamp(),
        issued_at,
    ))
}

/// Whether an error means the peer refused our certificate itself (expired, revoked,
/// unknown), rather than a transient failure.
fn certificate_refused(err: &DeviceError) -> bool {
    let text = err.to_string();
    [
        "CertificateExpired",
        "CertificateRevoked",
        "BadCertificate",
        "CertificateUnknown",
    ]
    .iter()
    .any(|alert| text.contains(alert))
}

impl Agent {
    /// A device fresh from the factory, with its element.
    pub fn new(
        cfg: AgentConfig,
        element: Arc<dyn SecureElement>,
        observer: Arc<dyn AgentObserver>,
    ) -> Self {
        let backoff = cfg.backoff.clone();
        let commands = CommandVerifier::new(cfg.trust.anchors(), cfg.device_id.clone());
        Self {
            cfg,
            element,
            observer,
            lifecycle: Lifecycle::new(backoff),
            clock: CaClock::new(),
            started: Instant::now(),
            key: None,
            tls: None,
            generation: 0,
            session: None,
            sequence: 0,
            firmware: None,
            boot_reported: false,
            commands,
        }
    }

    /// The firmware this agent runs as (the application ironroot-boot started): its boot
    /// report is sent once connected, and a trial image is confirmed once the health check
    /// passed (mutual TLS to the broker and the report accepted by the cloud).
    pub fn with_firmware(mut self, firmware: Box<dyn Firmware>) -> Self {
        self.firmware = Some(firmware);
        self.boot_reported = false;
        self
    }

    /// A device that already holds an identity (a restart): opens its key in the element and
    /// continues as operational (renewing or re-enrolling if the certificate is due or gone).
    pub fn resume(
        cfg: AgentConfig,
        element: Arc<dyn SecureElement>,
        observer: Arc<dyn AgentObserver>,
        saved: Resume,
    ) -> Result<Self, DeviceError> {
        let key = element.open(&saved.key_label)?;
        let leaf = saved.chain.first().ok_or_else(|| DeviceError::BadInput {
            what: "saved device certificate",
            reason: "empty chain".into(),
        })?;
        let times = certificate_times(leaf, Some(saved.issued_at))?;
        let generation = saved
            .key_label
            .strip_prefix("identity-")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let tls = DeviceTls::new(&cfg.trust, saved.chain, key.clone())?;
        let mut agent = Self::new(cfg, element, observer);
        agent.lifecycle = Lifecycle::resume(times, agent.cfg.backoff.clone());
        agent.clock = CaClock::with_offset(saved.clock_offset);
        agent.key = Some(key);
        agent.tls = Some(tls);
        agent.generation = generation;
        Ok(agent)
    }

    /// Runs the lifecycle until it stops (decommissioned) or `stop` resolves.
    pub async fn run(&mut self, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                action = self.step() => if action == Action::Stop { break },
            }
        }
        self.disconnect().await;
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.cfg.device_id
    }

    /// The lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.lifecycle.phase()
    }

    /// The operational certificate's times, once enrolled.
    pub fn certificate(&self) -> Option<CertTimes> {
        self.lifecycle.certificate()
    }

    /// The device's estimate of the CA's clock.
    pub fn clock(&self) -> &CaClock {
        &self.clock
    }

    /// The current mutual-TLS identity (after enrollment).
    pub fn tls(&self) -> Option<&DeviceTls> {
        self.tls.as_ref()
    }

    /// The live MQTT session, if connected.
    pub fn session(&mut self) -> Option<&mut MqttDevice> {
        self.session.as_mut()
    }

    fn mono(&self) -> Duration {
        self.started.elapsed()
    }

    fn wall(&self) -> i64 {
        wall_now().saturating_add(self.cfg.clock_skew)
    }

    /// The device's estimate of CA time now.
    pub fn ca_now(&self) -> i64 {
        self.clock.now(self.mono(), self.wall())
    }

    fn jitter() -> f64 {
        rand::random::<f64>()
    }

    fn report(&mut self, event: Event) {
        let mono = self.mono();
        self.lifecycle.on(event, mono, Self::jitter());
    }

    /// Decides the next action and carries it out; returns the action taken. `Wait` actions
    /// sleep, send telemetry when it is due, and notice a session that ended.
    pub async fn step(&mut self) -> Action {
        let action = self.lifecycle.next(self.ca_now(), self.mono());
        match action {
            Action::Enroll | Action::Renew | Action::Reenroll => self.enroll(action).await,
            Action::Connect => self.connect().await,
            Action::Wait(d) => self.wait(d).await,
            Action::DestroyKeys => {
                // Keys first: the server takes the end of the session as the acknowledgement.
                self.destroy_keys();
                self.disconnect().await;
                self.report(Event::KeysDestroyed);
            }
            _ => {}
        }
        action
    }

    /// Runs until the device is connected (or `timeout` passes); returns whether it is.
    pub async fn run_until_connected(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.lifecycle.connected() && Instant::now() < deadline {
            let action = self.lifecycle.next(self.ca_now(), self.mono());
            match action {
                Action::Wait(d) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    tokio::time::sleep(d.min(left)).await;
                }
                Action::Stop => return false,
                _ => {
                    self.step().await;
                }
            }
        }
        self.lifecycle.connected()
    }

    /// Tells the lifecycle a verified decommission command arrived.
    pub fn decommission(&mut self) {
        self.report(Event::Decommission);
    }

    async fn enroll(&mut self, action: Action) {
        let started = Instant::now();
        let label = format!("identity-{}", self.generation + 1);
        // A key left behind by an interrupted attempt is replaced, never reused for a CSR.
        let _ = self.element.destroy(&label);
        let result = async {
            let key = self.element.generate(&label)?;
            let csr = crate::csr(&key, &self.cfg.device_id)?;
            let issued = match (action, &self.cfg.bootstrap, &self.tls) {
                (Action::Renew, _, Some(tls)) => self.cfg.est.reenroll(tls, &csr).await?,
                (Action::Reenroll, Bootstrap::Factory(f), _) => {
                    self.cfg.est.reenroll(f, &csr).await?
                }
                (_, Bootstrap::Factory(f), _) => {
                    self.cfg.est.enroll_with_certificate(f, &csr).await?
                }
                (_, Bootstrap::ClaimToken(t), _) => {
                    self.cfg
                        .est
                        .enroll_with_claim(&self.cfg.device_id, t, &csr)
                        .await?
                }
            };
            Ok::<_, DeviceError>((key, issued))
        }
        .await;
        match result {
            Ok((key, Issued { chain, server_time })) => {
                let times = match chain.first().map(|c| certificate_times(c, server_time)) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => return self.enroll_failed(&label, "enroll", e),
                    None => {
                        let e = DeviceError::BadResponse("no certificate".into());
                        return self.enroll_failed(&label, "enroll", e);
                    }
                };
                if let Some(server) = server_time {
                    let mono = self.mono();
                    let wall = self.wall();
                    self.clock.sync(mono, wall, server);
                }
                let tls = match DeviceTls::new(&self.cfg.trust, chain.clone(), key.clone()) {
                    Ok(t) => t,
                    Err(e) => return self.enroll_failed(&label, "enroll", e),
                };
                // Saved before the previous key is destroyed: a crash in between leaves a
                // usable identity on disk, never a certificate without its key.
                let saved = Resume {
                    chain,
                    key_label: label.clone(),
                    issued_at: times.issued_at,
                    clock_offset: self.clock.wall_offset(),
                };
                self.observer.certificate(&self.cfg.device_id, &saved);
                // The previous key is destroyed once the new certificate is in hand.
                if let Some(old) = self.key.replace(key) {
                    let _ = self.element.destroy(old.key_id());
                }
                self.generation += 1;
                self.tls = Some(tls);
                self.disconnect().await;
                self.observer.enrolled(
                    &self.cfg.device_id,
                    action != Action::Enroll,
                    started.elapsed(),
                );
                self.report(Event::Enrolled(times));
            }
            Err(e) => self.enroll_failed(&label, "enroll", e),
        }
    }

    fn enroll_failed(&mut self, label: &str, step: &'static str, e: DeviceError) {
        let _ = self.element.destroy(label);
        self.observer.failed(&self.cfg.device_id, step, &e);
        let event = if certificate_refused(&e) {
            Event::CertificateRejected
        } else {
            Event::EnrollFailed
        };
        self.report(event);
    }

    async fn connect(&mut self) {
        self.disconnect().await;
        let Some(tls) = &self.tls else {
            self.report(Event::Disconnected);
            return;
        };
        let started = Instant::now();
        match MqttDevice::connect(&self.cfg.mqtt, &self.cfg.device_id, tls).await {
            Ok(mut session) => {
                let commands = format!("devices/{}/commands", self.cfg.device_id);
                match session.subscribe(&commands).await {
                    Ok(Answer::Accepted) => {}
                    Ok(Answer::Refused(why)) => {
                        let e = DeviceError::Mqtt(format!("subscribe {commands}: {why}"));
                        self.observer.failed(&self.cfg.device_id, "subscribe", &e);
                    }
                    Err(e) => {
                        self.observer.failed(&self.cfg.device_id, "subscribe", &e);
                        self.report(Event::Disconnected);
                        return;
                    }
                }
                self.session = Some(session);
                self.observer
                    .connected(&self.cfg.device_id, started.elapsed());
                self.report(Event::Connected);
                self.report_boot().await;
            }
            Err(e) => {
                self.observer.failed(&self.cfg.device_id, "connect", &e);
                let event = if certificate_refused(&e) {
                    Event::CertificateRejected
                } else {
                    Event::Disconnected
                };
                self.report(event);
            }
        }
    }

    async fn wait(&mut self, d: Duration) {
        if self.session.as_mut().is_some_and(MqttDevice::poll_closed) {
            self.session = None;
            self.report(Event::Disconnected);
            return;
        }
        let Some(interval) = self
            .cfg
            .telemetry_interval
            .filter(|_| self.session.is_some())
        else {
            // Not connected (backoff) or no telemetry: sleep, but at most a second at a time so
            // a caller can interleave its own checks.
            self.sleep_or_command(d.min(Duration::from_secs(1))).await;
            return;
        };
        if self.sleep_or_command(d.min(interval)).await {
            return;
        }
        if self.session.as_mut().is_some_and(MqttDevice::poll_closed) {
            self.session = None;
            self.report(Event::Disconnected);
            return;
        }
        self.publish_telemetry().await;
    }

    /// Publishes one telemetry message now (QoS 1), reporting the PUBACK latency.
    pub async fn publish_telemetry(&mut self) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        self.sequence += 1;
        let topic = format!("devices/{}/telemetry", self.cfg.device_id);
        let payload = format!(r#"{{"seq":{},"temp_c":21.5}}"#, self.sequence);
        let started = Instant::now();
        match session.publish(&topic, payload.as_bytes()).await {
            Ok(answer) => {
                let accepted = answer == Answer::Accepted;
                self.observer
                    .published(&self.cfg.device_id, started.elapsed(), accepted);
                if !accepted && session.is_closed() {
                    self.session = None;
                    self.report(Event::Disconnected);
                }
            }
            Err(e) => {
                self.observer.failed(&self.cfg.device_id, "publish", &e);
                self.session = None;
                self.report(Event::Disconnected);
            }
        }
    }

    /// Ends the MQTT session, if any.
    pub async fn disconnect(&mut self) {
        if let Some(s) = self.session.take() {
            s.disconnect().await;
        }
    }

    fn destroy_keys(&mut self) {
        if let Some(key) = self.key.take() {
            let _ = self.element.destroy(key.key_id());
        }
        self.tls = None;
    }
}
