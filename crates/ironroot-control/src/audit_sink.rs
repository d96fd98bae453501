//! Broker events into the audit log: the broker hands events to a bounded channel (never
//! blocking a worker thread; a full channel drops and counts), and one task records them in
//! batches — every event of a batch is submitted at once, so the audit writer commits them
//! together.

use std::sync::Arc;

use ironroot_audit::{Audit, Event, EventKind, Outcome, Timestamp};
use ironroot_broker::{BrokerEvent, DeniedAction, DisconnectCause, EventReceiver, EventRecord};

/// Largest number of events submitted to the audit log together.
const BATCH: usize = 512;

/// Records events from `rx` until the channel closes.
/// Sessions that connected with a certificate are also reported to `on_connect`.
pub(crate) async fn run(
    audit: Arc<Audit>,
    mut rx: EventReceiver,
    on_connect: Option<crate::plane::ConnectHook>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let mut pending = tokio::task::JoinSet::new();
        for record in batch.drain(..) {
            if let (
                Some(hook),
                BrokerEvent::Connected {
                    device_id,
                    serial: Some(serial),
                    ..
                },
            ) = (&on_connect, &record.event)
            {
                hook(device_id, serial.as_bytes());
            }
            let audit = audit.clone();
            pending.spawn(async move {
                let event = to_audit(&record);
                if let Err(e) = audit.record(event).await {
                    log::error!("cannot record broker event in the audit log: {e}");
                }
            });
        }
        while pending.join_next().await.is_some() {}
    }
}

fn device(event: Event, id: &str) -> Event {
    event.subject("device", id)
}

/// Maps a broker event onto an audit event (`mqtt.*`).
pub(crate) fn to_audit(record: &EventRecord) -> Event {
    let at = record
        .at
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| Timestamp::new(d.as_secs() as i64, d.subsec_nanos()).ok())
        .unwrap_or_else(Timestamp::now);
    let actor = |id: &str| format!("device:{id}");
    let e = match &record.event {
        BrokerEvent::Connected {
            device_id,
            client_id,
            source,
            serial,
            protocol,
            session_present,
            quarantined,
        } => device(
            Event::new(EventKind::MqttConnect, actor(device_id)),
            device_id,
        )
        .source(source.to_string())
        .outcome(Outcome::Success)
        .detail("protocol", format!("{protocol:?}"))
        .detail(
            "serial",
            serial.as_ref().map(|s| s.to_string()).unwrap_or_default(),
        )
        .detail("client_id", client_id.clone())
        .detail("session_present", session_present.to_string())
        .detail("quarantined", quarantined.to_string()),
        BrokerEvent::Disconnected {
            device_id,
            source,
            cause,
        } => device(
            Event::new(EventKind::MqttDisconnect, actor(device_id)),
            device_id,
        )
        .source(source.to_string())
        .outcome(match cause {
            DisconnectCause::PublishDenied | DisconnectCause::Kicked(_) => Outcome::Denied,
            DisconnectCause::ProtocolError(_) => Outcome::Failure,
            _ => Outcome::Success,
        })
        .detail("cause", format!("{cause:?}")),
        BrokerEvent::ConnectRefused {
            client_id,
            certificate_cn,
            source,
            reason,
        } => {
            let who = certificate_cn.as_deref().unwrap_or(client_id);
            device(Event::new(EventKind::MqttConnectRefused, actor(who)), who)
                .source(source.to_string())
                .outcome(Outcome::Denied)
                .detail("client_id", client_id.clone())
                .detail("reason", format!("{reason:?}"))
        }
        BrokerEvent::Denied {
            device_id,
            source,
            action,
            reason,
        } => {
            let (what, target) = match action {
                DeniedAction::Publish(t) => ("publish", t),
                DeniedAction::RetainPublish(t) => ("retain_publish", t),
                DeniedAction::Subscribe(t) => ("subscribe", t),
                DeniedAction::Receive(t) => ("receive", t),
                DeniedAction::SubscriptionRevoked(t) => ("subscription_revoked", t),
                _ => ("other", &String::new()),
            };
            device(
                Event::new(EventKind::MqttDenied, actor(device_id)),
                device_id,
            )
            .source(source.to_string())
            .outcome(Outcome::Denied)
            .detail("action", what)
            .detail("topic", target.clone())
            .detail("reason", reason.clone())
        }
        BrokerEvent::Kicked {
            device_id,
            source,
            reason,
        } => device(Event::new(EventKind::MqttKick, "system"), device_id)
            .source(source.to_string())
            .outcome(Outcome::Success)
            .detail("reason", format!("{reason:?}")),
        BrokerEvent::TakenOver {
            device_id,
            previous_source,
            new_source,
            previous_serial,
            new_serial,
        } => device(
            Event::new(EventKind::MqttTakeover, actor(device_id)),
            device_id,
        )
        .source(new_source.to_string())
        .outcome(Outcome::Success)
        .detail("previous_source", previous_source.to_string())
        .detail(
            "previous_serial",
            previous_serial
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        )
        .detail(
            "new_serial",
            new_serial
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        BrokerEvent::SubscriptionsRevoked { device_id, filters } => device(
            Event::new(EventKind::MqttSubscriptionsRevoked, "system"),
            device_id,
        )
        .outcome(Outcome::Success)
        .detail("filters", filters.join(" ")),
        BrokerEvent::TlsHandshakeFailed { source, error } => {
            Event::new(EventKind::MqttTlsFailed, "unknown")
                .subject("connection", source.to_string())
                .source(source.to_string())
                .outcome(Outcome::Denied)
                .detail("error", error.clone())
        }
        BrokerEvent::CertificateRejected {
            claimed_cn,
            serial,
            error,
        } => {
            let who = claimed_cn.as_deref().unwrap_or("unknown");
            Event::new(EventKind::MqttCertificateRejected, "unknown")
                .subject("device", who)
                .outcome(Outcome::Denied)
                .detail("claimed_cn", who)
                .detail(
                    "serial",
                    serial.as_ref().map(|s| s.to_string()).unwrap_or_default(),
                )
                .detail("error", error.clone())
        }
        BrokerEvent::ConnectionRateExceeded { source } => {
            Event::new(EventKind::MqttConnectionRateExceeded, "unknown")
                .subject("connection", source.to_string())
                .source(source.to_string())
                .outcome(Outcome::Denied)
        }
        BrokerEvent::PublishRateExceeded { device_id } => device(
            Event::new(EventKind::MqttPublishRateExceeded, actor(device_id)),
            device_id,
        )
        .outcome(Outcome::Denied),
        BrokerEvent::QueueOverflow {
            device_id,
            dropped_total,
        } => device(
            Event::new(EventKind::MqttQueueOverflow, "system"),
            device_id,
        )
        .outcome(Outcome::Failure)
        .detail("dropped_total", dropped_total.to_string()),
        BrokerEvent::WillPublished { device_id, topic } => device(
            Event::new(EventKind::MqttWillPublished, actor(device_id)),
            device_id,
        )
        .outcome(Outcome::Success)
        .detail("topic", topic.clone()),
        BrokerEvent::SessionExpired {
            device_id,
            discarded_messages,
        } => device(
            Event::new(EventKind::MqttSessionExpired, "system"),
            device_id,
        )
        .outcome(Outcome::Success)
        .detail("discarded_messages", discarded_messages.to_string()),
        other => Event::new(EventKind::MqttOther, "system")
            .subject("broker", "mqtt")
            .detail("event", format!("{other:?}")),
    };
    e.at(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironroot_broker::{KickReason, RefusalReason};

    #[test]
    fn refusals_and_kicks_map_to_denied_device_events() {
        let src = "127.0.0.1:5000".parse().unwrap();
        let e = to_audit(&EventRecord {
            at: std::time::SystemTime::now(),
            event: BrokerEvent::ConnectRefused {
                client_id: "x".into(),
                certificate_cn: Some("dev-1".into()),
                source: src,
                reason: RefusalReason::Revoked,
            },
        });
        let bytes = e.encode().unwrap();
        let back = Event::decode(&bytes).unwrap();
        assert_eq!(back, e);
        let text = format!("{back:?}");
        assert!(
            text.contains("mqtt.connect_refused") && text.contains("dev-1"),
            "{text}"
        );
        assert!(text.contains("Revoked"), "{text}");
        let k = to_audit(&EventRecord {
            at: std::time::SystemTime::now(),
            event: BrokerEvent::Kicked {
                device_id: "dev-1".into(),
                source: src,
                reason: KickReason::Revoked,
            },
        });
        assert!(format!("{k:?}").contains("mqtt.kick"));
    }
}
