//! MQTT 5 over mutual TLS: the device's connection to the ironroot broker.
//!
//! The event loop runs in its own task; the device reads what the broker answered (PUBACK and
//! SUBACK reason codes, deliveries, the end of the connection) in order.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rumqttc::TlsConfiguration;
use rumqttc::Transport;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, Packet, PubAckReason, SubscribeReasonCode};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{DeviceError, DeviceTls};

/// How long the agent waits for the broker's answer to one request.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Most QoS 1 publishes a device keeps in flight.
const MAX_INFLIGHT: u16 = 16;

/// Where the broker listens. `host` must be a name or address in the broker's certificate.
#[derive(Debug, Clone)]
pub struct MqttTarget {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (8883 by default for ironroot).
    pub port: u16,
}

/// The broker's answer to a publish or subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Allowed (PUBACK success / no matching subscribers; SUBACK granted).
    Accepted,
    /// Refused, with the reason code the broker sent (e.g. `NotAuthorized`).
    Refused(String),
}

/// What the event-loop task reports.
enum Report {
    Packet(Box<Packet>),
    Closed(String),
}

/// A connected device session.
pub struct MqttDevice {
    client: AsyncClient,
    reports: mpsc::UnboundedReceiver<Report>,
    delivered: VecDeque<(String, Vec<u8>)>,
    closed: Option<String>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MqttDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttDevice")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl MqttDevice {
    /// Connects with the device's certificate (client id = device id, clean start) and waits
    /// for the CONNACK.
    pub async fn connect(
        target: &MqttTarget,
        device_id: &str,
        tls: &DeviceTls,
    ) -> Result<Self, DeviceError> {
        let mut opts = MqttOptions::new(device_id, target.host.clone(), target.port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_clean_start(true);
        // rumqttc pre-allocates one slot per possible in-flight publish, u16::MAX of them
        // (~10 MiB per connection) unless told otherwise; a device needs a handful.
        opts.set_outgoing_inflight_upper_limit(MAX_INFLIGHT);
        opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            tls.config(),
        )));
        let (client, mut eventloop) = AsyncClient::new(opts, 64);

        let connected = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        return if ack.code == ConnectReturnCode::Success {
                            Ok(())
                        } else {
                            Err(DeviceError::Mqtt(format!(
                                "connection refused: {:?}",
                                ack.code
                            )))
                        };
                    }
                    Ok(_) => continue,
                    Err(e) => return Err(DeviceError::Mqtt(format!("connect: {e}"))),
                }
            }
        })
        .await
        .map_err(|_| DeviceError::Timeout("CONNACK"))?;
        connected?;

        let (tx, reports) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Disconnect(d))) => {
                        let _ = tx.send(Report::Closed(format!(
                            "broker sent DISCONNECT {:?}",
                            d.reason_code
                        )));
                        return;
                    }
                    Ok(Event::Incoming(p)) => {
                        if tx.send(Report::Packet(Box::new(p))).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Outgoing(_)) => {}
                    Err(e) => {
                        // Stop here: polling again would make rumqttc reconnect.
                        let _ = tx.send(Report::Closed(e.to_string()));
                        return;
                    }
                }
            }
        });
        Ok(Self {
            client,
            reports,
            delivered: VecDeque::new(),
            closed: None,
            task,
        })
    }

    /// Publishes at QoS 1 and returns the broker's PUBACK verdict.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> Result<Answer, DeviceError> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.to_vec())
            .await
            .map_err(|e| DeviceError::Mqtt(e.to_string()))?;
        match self.next_ack(|p| matches!(p, Packet::PubAck(_))).await? {
            Some(Packet::PubAck(ack)) => Ok(match ack.reason {
                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => Answer::Accepted,
                other => Answer::Refused(format!("{other:?}")),
            }),
            _ => Ok(Answer::Refused(self.close_reason())),
        }
    }

    /// Subscribes (QoS 1) and returns the broker's SUBACK verdict.
    pub async fn subscribe(&mut self, filter: &str) -> Result<Answer, DeviceError> {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| DeviceError::Mqtt(e.to_string()))?;
        match self.next_ack(|p| matches!(p, Packet::SubAck(_))).await? {
            Some(Packet::SubAck(ack)) => Ok(match ack.return_codes.first() {
                Some(SubscribeReasonCode::Success(_)) => Answer::Accepted,
                Some(other) => Answer::Refused(format!("{other:?}")),
                None => Answer::Refused("empty SUBACK".into()),
            }),
            _ => Ok(Answer::Refused(self.close_reason())),
        }
    }

    /// The next message delivered to this device, waiting at most `timeout`.
    pub async fn next_message(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<(String, Vec<u8>)>, DeviceError> {
        if let Some(m) = self.delivered.pop_front() {
            return Ok(Some(m));
        }
        let deadline = Instant::now() + timeout;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.reports.recv()).await {
                Err(_) => return Ok(None),
                Ok(report) => {
                    self.absorb(report);
                    if let Some(m) = self.delivered.pop_front() {
                        return Ok(Some(m));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Waits until the broker ends the session (e.g. after revocation) and returns why and
    /// how long it took; a timeout if the session is still up after `timeout`.
    pub async fn wait_closed(
        &mut self,
        timeout: Duration,
    ) -> Result<(String, Duration), DeviceError> {
        let start = Instant::now();
        let deadline = start + timeout;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.reports.recv()).await {
                Err(_) => return Err(DeviceError::Timeout("the broker to end the session")),
                Ok(report) => {
                    self.absorb(report);
                }
            }
        }
        Ok((self.close_reason(), start.elapsed()))
    }

    /// Whether the broker has ended the session (as far as reports read so far tell).
    pub fn is_closed(&self) -> bool {
        self.closed.is_some()
    }

    /// Reads what the event loop reported so far without waiting and returns whether the
    /// session has ended. Deliveries are kept for [`Self::next_message`].
    pub fn poll_closed(&mut self) -> bool {
        loop {
            match self.reports.try_recv() {
                Ok(report) => {
                    self.absorb(Some(report));
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    self.absorb(None);
                    break;
                }
            }
        }
        self.closed.is_some()
    }

    /// Sends DISCONNECT and stops the event loop.
    pub async fn disconnect(self) {
        let _ = self.client.disconnect().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }

    fn close_reason(&self) -> String {
        self.closed
            .clone()
            .unwrap_or_else(|| "connection closed".to_string())
    }

    fn absorb(&mut self, report: Option<Report>) -> Option<Packet> {
        match report {
            None => {
                self.closed.get_or_insert_with(|| "event loop ended".into());
                None
            }
            Some(Report::Closed(why)) => {
                self.closed = Some(why);
                None
            }
            Some(Report::Packet(p)) => match *p {
                Packet::Publish(m) => {
                    let topic = String::from_utf8_lossy(&m.topic).into_owned();
                    self.delivered.push_back((topic, m.payload.to_vec()));
                    None
                }
                other => Some(other),
            },
        }
    }

    /// Waits for the first packet `wanted` accepts; `None` when the session ended first.
    async fn next_ack(
        &mut self,
        wanted: impl Fn(&Packet) -> bool,
    ) -> Result<Option<Packet>, DeviceError> {
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let report = tokio::time::timeout(left, self.reports.recv())
                .await
                .map_err(|_| DeviceError::Timeout("the broker's answer"))?;
            if let Some(p) = self.absorb(report)
                && wanted(&p)
            {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }
}

impl Drop for MqttDevice {
    fn drop(&mut self) {
        self.task.abort();
    }
}
