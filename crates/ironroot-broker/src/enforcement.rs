//! Live enforcement on the hub: kick a device, cut the sessions of a revoked serial, put a
//! device into quarantine, and re-evaluate live sessions after a policy change.

use std::collections::HashSet;
use std::sync::Arc;

use ironroot_pki::Serial;

use crate::authz::Action;
use crate::events::{BrokerEvent, DeniedAction, KickReason};
use crate::hub::Hub;
use crate::session::SessionState;

/// What `policy_changed` and friends did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EnforcementReport {
    /// Sessions whose policy was rebuilt.
    pub sessions_evaluated: usize,
    /// Connections asked to close.
    pub connections_closed: usize,
    /// Subscriptions removed because the new policy denies them.
    pub subscriptions_removed: usize,
}

impl Hub {
    /// Closes the live connections of `device_id` (every client id it holds); returns whether
    /// there was one.
    pub(crate) fn kick(&self, device_id: &str, reason: KickReason) -> bool {
        self.kick_devices(&HashSet::from([device_id]), reason) > 0
    }

    /// Closes the live connections of every device in `ids`, in one pass over the sessions
    /// (an incident cuts thousands at once); returns how many were closed.
    pub(crate) fn kick_devices(&self, ids: &HashSet<&str>, reason: KickReason) -> usize {
        if ids.is_empty() {
            return 0;
        }
        let reg = self.registry.lock();
        let mut closed = 0;
        for session in reg.sessions.values() {
            if ids.contains(&*session.device_id) && self.kick_session(session, reason) {
                closed += 1;
            }
        }
        closed
    }

    /// Closes every live connection.
    pub(crate) fn kick_all(&self, reason: KickReason) {
        let reg = self.registry.lock();
        for session in reg.sessions.values() {
            self.kick_session(session, reason);
        }
    }

    /// Closes the live connection of one session; returns whether there was one.
    fn kick_session(&self, session: &SessionState, reason: KickReason) -> bool {
        let inner = session.lock();
        let Some(a) = &inner.attached else {
            return false;
        };
        a.signal.kick(reason);
        self.events.emit(BrokerEvent::Kicked {
            device_id: session.device_id.to_string(),
            source: a.source,
            reason,
        });
        true
    }

    /// Remembers `serial` as revoked and closes every live connection that presented it.
    pub(crate) fn revoke_serial(&self, serial: &Serial) -> usize {
        self.revoke_serials(std::slice::from_ref(serial))
    }

    /// [`Hub::revoke_serial`] for many serials in one pass over the sessions.
    pub(crate) fn revoke_serials(&self, serials: &[Serial]) -> usize {
        if serials.is_empty() {
            return 0;
        }
        let wanted: HashSet<&Serial> = serials.iter().collect();
        let mut reg = self.registry.lock();
        reg.revoked.extend(serials.iter().cloned());
        let mut closed = 0;
        for session in reg.sessions.values() {
            let inner = session.lock();
            if let Some(a) = &inner.attached
                && a.serial.as_ref().is_some_and(|s| wanted.contains(s))
            {
                a.signal.kick(KickReason::Revoked);
                closed += 1;
                self.events.emit(BrokerEvent::Kicked {
                    device_id: session.device_id.to_string(),
                    source: a.source,
                    reason: KickReason::Revoked,
                });
            }
        }
        closed
    }

    /// Puts a device into quarantine or releases it, and applies the change to its sessions
    /// (every client id it holds).
    pub(crate) fn set_quarantine(&self, device_id: &str, on: bool) -> EnforcementReport {
        let sessions: Vec<Arc<SessionState>> = {
            let mut reg = self.registry.lock();
            if on {
                reg.quarantined.insert(device_id.into());
            } else {
                reg.quarantined.remove(device_id);
            }
            reg.sessions
                .values()
                .filter(|s| &*s.device_id == device_id)
                .cloned()
                .collect()
        };
        let mut report = EnforcementReport::default();
        for s in &sessions {
            self.reevaluate(s, on, &mut report);
        }
        report
    }

    /// Rebuilds the policies of the given devices (all when `None`) and enforces them on live
    /// sessions: subscriptions the new policy denies are removed, connections it no longer
    /// allows are closed, and later deliveries are decided under the new policy.
    pub(crate) fn policy_changed(&self, devices: Option<&[&str]>) -> EnforcementReport {
        let targets: Vec<(Arc<SessionState>, bool)> = {
            let reg = self.registry.lock();
            let pick = |s: &Arc<SessionState>| (s.clone(), reg.quarantined.contains(&s.device_id));
            // Sessions by owning device: a device holds several client ids when its policy
            // widens `iot:Connect`.
            reg.sessions
                .values()
                .filter(|s| devices.is_none_or(|ids| ids.contains(&&*s.device_id)))
                .map(pick)
                .collect()
        };
        let mut report = EnforcementReport::default();
        for (s, quarantined) in &targets {
            self.reevaluate(s, *quarantined, &mut report);
        }
        report
    }

    fn reevaluate(
        &self,
        session: &Arc<SessionState>,
        quarantined: bool,
        report: &mut EnforcementReport,
    ) {
        let identity = session.lock().identity.clone();
        let policy = self.provider.session_policy(&identity, quarantined);
        session.set_policy(policy.clone());
        report.sessions_evaluated += 1;

        let filters: Vec<Box<str>> = session.lock().subscriptions.keys().cloned().collect();
        let mut removed = Vec::new();
        for f in filters {
            if let Err(denied) = policy.authorize(Action::Subscribe { filter: &f })
                && self.unsubscribe(session, &f)
            {
                self.events.emit(BrokerEvent::Denied {
                    device_id: session.device_id.to_string(),
                    source: identity.source(),
                    action: DeniedAction::SubscriptionRevoked(f.to_string()),
                    reason: denied.reason().to_string(),
                });
                removed.push(f.to_string());
            }
        }
        report.subscriptions_removed += removed.len();
        if !removed.is_empty() {
            self.events.emit(BrokerEvent::SubscriptionsRevoked {
                device_id: session.device_id.to_string(),
                filters: removed,
            });
        }
        if policy.authorize(Action::Connect).is_err() {
            let reason = if quarantined {
                KickReason::Quarantined
            } else {
                KickReason::PolicyChanged
            };
            if self.kick_session(session, reason) {
                report.connections_closed += 1;
            }
        }
    }
}
