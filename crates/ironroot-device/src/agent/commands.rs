//! Commands from `devices/<id>/commands`: verified against the device's root, then carried out.

use std::time::Duration;

use super::Agent;
use crate::command::CommandKind;

impl Agent {
    /// Sleeps for `d`, or until a message arrives on the session (then handled as a command);
    /// returns whether one arrived.
    pub(super) async fn sleep_or_command(&mut self, d: Duration) -> bool {
        let Some(session) = self.session.as_mut() else {
            tokio::time::sleep(d).await;
            return false;
        };
        match session.next_message(d).await {
            Ok(Some((topic, payload))) => {
                self.handle_command(&topic, &payload);
                true
            }
            _ => false,
        }
    }

    /// Verifies a message from `devices/<id>/commands`
    /// ([`CommandVerifier`](crate::command::CommandVerifier), at the CA-clock estimate) and
    /// carries it out; anything else is refused, reported and ignored.
    pub fn handle_command(&mut self, topic: &str, payload: &[u8]) {
        if topic != format!("devices/{}/commands", self.cfg.device_id) {
            return;
        }
        let ca_now = self.ca_now();
        match self.commands.verify(payload, ca_now) {
            Ok(command) => {
                self.observer
                    .command_accepted(&self.cfg.device_id, &command);
                match command.kind() {
                    CommandKind::Decommission => self.decommission(),
                }
            }
            Err(e) => self.observer.command_refused(&self.cfg.device_id, &e),
        }
    }
}
