//! The device lifecycle as a pure state machine: the driver asks [`Lifecycle::next`] what to
//! do, does it (HTTPS, MQTT, the element), and reports the outcome with [`Lifecycle::on`].

use std::time::Duration;

use super::{Backoff, CertTimes};

/// Where the device is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// No operational certificate yet: enroll with the bootstrap credential (claim token or
    /// factory certificate).
    Bootstrap,
    /// Holds an operational certificate: connect, stream telemetry, renew at two thirds.
    Operational,
    /// The operational certificate expired (the device was offline too long, or the broker
    /// refused it as expired): re-enroll with the factory credential.
    Expired,
    /// A signed decommission command was received: destroy the keys, then stop for good.
    Decommissioned,
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Enroll: fresh key in the element, CSR, EST `simpleenroll` with the bootstrap credential.
    Enroll,
    /// (Re)connect over mutual TLS with the current certificate, closing any older session.
    Connect,
    /// Renew: fresh key, EST `simplereenroll` authenticated by the current certificate.
    Renew,
    /// Re-enroll after expiry: fresh key, EST `simplereenroll` with the factory credential.
    Reenroll,
    /// Nothing is due for this long (or until an event arrives).
    Wait(Duration),
    /// Destroy every key in the element.
    DestroyKeys,
    /// Decommissioned and keys destroyed: the device does nothing more.
    Stop,
}

/// What happened when the driver acted, or what arrived from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Enrollment, renewal or re-enrollment succeeded with a certificate valid for these times.
    Enrolled(CertTimes),
    /// An HTTPS exchange failed in a way worth retrying (network, timeout, 5xx).
    EnrollFailed,
    /// The MQTT session is up.
    Connected,
    /// The MQTT session ended or could not be set up (network, broker restart, 0x97).
    Disconnected,
    /// The broker or server refused the certificate itself (expired in the CA's clock).
    CertificateRejected,
    /// A verified, signed decommission command arrived.
    Decommission,
    /// The element confirmed the keys are destroyed.
    KeysDestroyed,
}

/// The lifecycle of one device. `ca_now` is CA time in Unix seconds ([`super::CaClock`]);
/// `mono` is the device's monotonic clock; `jitter` a uniform draw in `[0, 1)`.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    phase: Phase,
    cert: Option<CertTimes>,
    connected: bool,
    keys_destroyed: bool,
    backoff: Backoff,
    retry_at: Option<Duration>,
}

impl Lifecycle {
    /// A device fresh from the factory (no operational certificate).
    pub fn new(backoff: Backoff) -> Self {
        Self {
            phase: Phase::Bootstrap,
            cert: None,
            connected: false,
            keys_destroyed: false,
            backoff,
            retry_at: None,
        }
    }

    /// A device that already holds an operational certificate (restart, restored state).
    pub fn resume(cert: CertTimes, backoff: Backoff) -> Self {
        Self {
            phase: Phase::Operational,
            cert: Some(cert),
            ..Self::new(backoff)
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The current operational certificate's times, if any.
    pub fn certificate(&self) -> Option<CertTimes> {
        self.cert
    }

    /// Whether the MQTT session is up.
    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Failed attempts since the last success (for reports).
    pub fn failures(&self) -> u32 {
        self.backoff.attempts()
    }

    /// What to do now.
    pub fn next(&mut self, ca_now: i64, mono: Duration) -> Action {
        if let Some(at) = self.retry_at {
            if mono < at {
                return Action::Wait(at - mono);
            }
            self.retry_at = None;
        }
        match self.phase {
            Phase::Decommissioned if self.keys_destroyed => Action::Stop,
            Phase::Decommissioned => Action::DestroyKeys,
            Phase::Bootstrap => Action::Enroll,
            Phase::Expired => Action::Reenroll,
            Phase::Operational => {
                let Some(cert) = self.cert else {
                    self.phase = Phase::Bootstrap;
                    return Action::Enroll;
                };
                if cert.expired(ca_now) {
                    self.phase = Phase::Expired;
                    self.connected = false;
                    return Action::Reenroll;
                }
                if ca_now >= cert.renew_at() {
                    return Action::Renew;
                }
                if !self.connected {
                    return Action::Connect;
                }
                let until = u64::try_from(cert.renew_at() - ca_now).unwrap_or(0);
                Action::Wait(Duration::from_secs(until.max(1)))
            }
        }
    }

    /// Records what happened.
    pub fn on(&mut self, event: Event, mono: Duration, jitter: f64) {
        if self.phase == Phase::Decommissioned && event != Event::KeysDestroyed {
            return;
        }
        match event {
            Event::Enrolled(cert) => {
                self.cert = Some(cert);
                self.phase = Phase::Operational;
                // A new certificate means a new session: the old one used the old key.
                self.connected = false;
                self.succeed();
            }
            Event::Connected => {
                self.connected = true;
                self.succeed();
            }
            Event::EnrollFailed | Event::Disconnected => {
                self.connected = false;
                self.fail(mono, jitter);
            }
            Event::CertificateRejected => {
                self.connected = false;
                if self.phase == Phase::Operational {
                    self.phase = Phase::Expired;
                }
                self.fail(mono, jitter);
            }
            Event::Decommission => {
                self.phase = Phase::Decommissioned;
                self.connected = false;
                self.retry_at = None;
            }
            Event::KeysDestroyed => {
                if self.phase == Phase::Decommissioned {
                    self.keys_destroyed = true;
                }
            }
        }
    }

    fn succeed(&mut self) {
        self.backoff.reset();
        self.retry_at = None;
    }

    fn fail(&mut self, mono: Duration, jitter: f64) {
        self.retry_at = Some(mono + self.backoff.next_delay(jitter));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const T0: i64 = 1_800_000_000;

    fn cert(from: i64) -> CertTimes {
        CertTimes::new(from, from + 90 * DAY, None)
    }

    fn at(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn factory_to_operational_to_renewal() {
        let mut l = Lifecycle::new(Backoff::default());
        assert_eq!(l.next(T0, at(0)), Action::Enroll);
        l.on(Event::Enrolled(cert(T0)), at(1), 0.5);
        assert_eq!(l.next(T0, at(1)), Action::Connect);
        l.on(Event::Connected, at(2), 0.5);
        assert!(matches!(l.next(T0, at(2)), Action::Wait(d) if d.as_secs() as i64 == 60 * DAY));
        // Two thirds in: renew, then reconnect with the new certificate.
        assert_eq!(l.next(T0 + 60 * DAY, at(3)), Action::Renew);
        l.on(Event::Enrolled(cert(T0 + 60 * DAY)), at(4), 0.5);
        assert_eq!(l.next(T0 + 60 * DAY, at(4)), Action::Connect);
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let mut l = Lifecycle::new(Backoff::new(at(1), at(60)));
        l.on(Event::EnrollFailed, at(10), 0.99);
        assert!(matches!(l.next(T0, at(10)), Action::Wait(_)));
        assert_eq!(l.next(T0, at(11)), Action::Enroll);
        l.on(Event::EnrollFailed, at(11), 0.99);
        l.on(Event::EnrollFailed, at(11), 0.99);
        assert_eq!(l.failures(), 3);
        l.on(Event::Enrolled(cert(T0)), at(20), 0.5);
        assert_eq!(l.failures(), 0);
        assert_eq!(l.next(T0, at(20)), Action::Connect);
    }

    #[test]
    fn offline_past_expiry_re_enrolls_with_the_factory_credential() {
        let mut l = Lifecycle::resume(cert(T0), Backoff::default());
        assert_eq!(l.next(T0 + 91 * DAY, at(0)), Action::Reenroll);
        assert_eq!(l.phase(), Phase::Expired);
        l.on(Event::Enrolled(cert(T0 + 91 * DAY)), at(1), 0.5);
        assert_eq!(l.phase(), Phase::Operational);
        assert_eq!(l.next(T0 + 91 * DAY, at(1)), Action::Connect);
    }

    #[test]
    fn a_certificate_the_broker_calls_expired_leads_to_re_enrollment() {
        // The device's clock says the certificate is fine; the broker (CA time) disagrees.
        let mut l = Lifecycle::resume(cert(T0), Backoff::new(at(1), at(1)));
        assert_eq!(l.next(T0, at(0)), Action::Connect);
        l.on(Event::CertificateRejected, at(0), 0.0);
        assert_eq!(l.next(T0, at(0)), Action::Reenroll);
    }

    #[test]
    fn decommission_destroys_keys_then_stops_for_good() {
        let mut l = Lifecycle::resume(cert(T0), Backoff::default());
        l.on(Event::Connected, at(0), 0.5);
        l.on(Event::Decommission, at(1), 0.5);
        assert_eq!(l.next(T0, at(1)), Action::DestroyKeys);
        l.on(Event::Enrolled(cert(T0)), at(2), 0.5); // ignored once decommissioned
        assert_eq!(l.next(T0, at(2)), Action::DestroyKeys);
        l.on(Event::KeysDestroyed, at(3), 0.5);
        assert_eq!(l.next(T0 + 400 * DAY, at(4)), Action::Stop);
        assert_eq!(l.phase(), Phase::Decommissioned);
    }
}
