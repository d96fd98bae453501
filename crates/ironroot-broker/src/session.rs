//! MQTT sessions: the state that outlives a connection (subscriptions, queued and unacknowledged
//! messages, inbound QoS 2 ids) and the signal that reaches the connection currently attached.
//!
//! A session is shared between threads: routers on any worker push into its queue, the worker
//! owning its connection drains it. Everything mutable sits behind one short-held mutex.
//!
//! ```text
//!  router (any worker) ──enqueue──▶ SessionState.queue ──notify──▶ delivery task (owning worker)
//!                                        ▲   │                          │ PUBLISH, ack callback
//!            reconnect: unacked ──(dup)──┘   └── inflight (pid → msg) ◀──┘
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ntex_mqtt::QoS;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;

use crate::authz::SessionPolicy;
use crate::counters::{DeviceCounters, add, inc};
use crate::events::KickReason;
use crate::identity::DeviceIdentity;
use crate::message::{Delivery, Message};
use ironroot_pki::Serial;

/// Options of one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubOptions {
    pub(crate) qos: QoS,
    pub(crate) no_local: bool,
    pub(crate) retain_as_published: bool,
    /// MQTT 5 subscription identifier, sent back with every message it matches.
    pub(crate) id: Option<std::num::NonZeroU32>,
}

/// Wakes and instructs the delivery task of one connection.
#[derive(Debug, Default)]
pub(crate) struct ConnSignal {
    notify: Notify,
    kick: Mutex<Option<KickReason>>,
    closed: AtomicBool,
}

impl ConnSignal {
    /// Asks the connection to close (first reason wins).
    pub(crate) fn kick(&self, reason: KickReason) {
        let mut k = self.kick.lock();
        if k.is_none() {
            *k = Some(reason);
        }
        drop(k);
        self.notify.notify_one();
    }

    pub(crate) fn kick_reason(&self) -> Option<KickReason> {
        *self.kick.lock()
    }

    /// The connection is gone; the delivery task must stop.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}

/// The connection currently attached to a session.
#[derive(Debug, Clone)]
pub(crate) struct Attached {
    pub(crate) conn_id: u64,
    pub(crate) signal: Arc<ConnSignal>,
    pub(crate) source: SocketAddr,
    pub(crate) serial: Option<Serial>,
}

/// A last-will message waiting for its MQTT 5 will-delay interval.
#[derive(Debug)]
pub(crate) struct PendingWill {
    pub(crate) due: Instant,
    pub(crate) msg: Arc<Message>,
}

#[derive(Debug)]
pub(crate) struct SessionInner {
    queue: VecDeque<Delivery>,
    inflight: HashMap<u16, Delivery>,
    next_pid: u16,
    pub(crate) subscriptions: HashMap<Box<str>, SubOptions>,
    pub(crate) attached: Option<Attached>,
    /// Session expiry interval after the connection ends (zero: discard at once).
    pub(crate) expiry: Duration,
    pub(crate) detached_at: Option<Instant>,
    /// Inbound QoS 2 packet ids routed but not yet released by PUBREL.
    pub(crate) qos2_in: HashSet<u16>,
    overflowing: bool,
    pub(crate) identity: DeviceIdentity,
    pub(crate) pending_will: Option<PendingWill>,
    /// The session ended (clean start of a new connection, expiry); it takes no subscriptions.
    pub(crate) discarded: bool,
    /// Publishers waiting for room in the queue ([`OnFull::Wait`]).
    waiters: usize,
}

/// Outcome of offering a message to a session queue.
#[derive(Debug)]
pub(crate) enum Enqueued {
    Queued,
    /// Dropped: QoS 0 for a disconnected session (not queued by design).
    DroppedOffline,
    /// Dropped because the queue is full; `true` when this starts an overflow episode.
    DroppedFull(bool),
    /// Not queued: the queue of this connected session is full and the caller may wait for
    /// room ([`SessionState::space`]) and offer the delivery again (QoS 1/2 backpressure).
    Full(Delivery),
}

/// Whether the caller of [`SessionState::enqueue`] can wait for room in a full queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnFull {
    /// Drop and count (QoS 0, retained messages on subscribe, wills).
    Drop,
    /// A new QoS 1/2 delivery: for a connected session whose queue is full — or that has
    /// publishers waiting already, so newcomers do not overtake them — it is handed back as
    /// [`Enqueued::Full`] and the session counts one more waiter (see [`Waiting`]).
    Wait,
    /// A waiter offering its delivery again after [`SessionState::space`] was signalled.
    Retry,
}

/// One publisher waiting for room in a session's queue; dropping it (queued, gave up, or the
/// connection ended) ends the wait.
pub(crate) struct Waiting(Arc<SessionState>);

impl Drop for Waiting {
    fn drop(&mut self) {
        let mut inner = self.0.inner.lock();
        inner.waiters = inner.waiters.saturating_sub(1);
    }
}

/// One MQTT session.
#[derive(Debug)]
pub(crate) struct SessionState {
    /// Unique per session incarnation (a clean start creates a new one).
    pub(crate) id: u64,
    pub(crate) client_id: Arc<str>,
    /// The device identity owning the session (never changes: no takeover across identities).
    pub(crate) device_id: Arc<str>,
    pub(crate) counters: Arc<DeviceCounters>,
    policy: RwLock<Arc<dyn SessionPolicy>>,
    epoch: AtomicU64,
    inner: Mutex<SessionInner>,
    /// Signalled when the queue shrinks or the connection detaches: publishers held by
    /// backpressure ([`Enqueued::Full`]) offer their delivery again.
    pub(crate) space: tokio::sync::Notify,
}

impl SessionState {
    pub(crate) fn new(
        id: u64,
        identity: DeviceIdentity,
        counters: Arc<DeviceCounters>,
        policy: Arc<dyn SessionPolicy>,
        expiry: Duration,
    ) -> Self {
        SessionState {
            id,
            client_id: identity.client_id_arc().clone(),
            device_id: identity.device_id_arc().clone(),
            counters,
            policy: RwLock::new(policy),
            epoch: AtomicU64::new(0),
            space: tokio::sync::Notify::new(),
            inner: Mutex::new(SessionInner {
                queue: VecDeque::new(),
                inflight: HashMap::new(),
                next_pid: 0,
                subscriptions: HashMap::new(),
                attached: None,
                expiry,
                detached_at: None,
                qos2_in: HashSet::new(),
                overflowing: false,
                identity,
                pending_will: None,
                discarded: false,
                waiters: 0,
            }),
        }
    }

    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, SessionInner> {
        self.inner.lock()
    }

    /// The current policy.
    pub(crate) fn policy(&self) -> Arc<dyn SessionPolicy> {
        self.policy.read().clone()
    }

    /// Replaces the policy; deliveries decided under the old one are re-decided at send time.
    pub(crate) fn set_policy(&self, policy: Arc<dyn SessionPolicy>) {
        *self.policy.write() = policy;
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// How this session stands as a share-group member for the next message (see
    /// [`crate::hub::shared::SharedGroup::pick`]).
    pub(crate) fn standing(&self, max_queued: usize) -> crate::hub::shared::Standing {
        use crate::hub::shared::Standing;
        let inner = self.inner.lock();
        if inner.discarded {
            Standing::Refused
        } else if inner.attached.is_none() {
            Standing::Offline
        } else if inner.queue.len() >= max_queued || inner.waiters > 0 {
            Standing::Full
        } else {
            Standing::Ready
        }
    }

    /// Whether a connection is attached.
    pub(crate) fn is_attached(&self) -> bool {
        self.inner.lock().attached.is_some()
    }

    /// Offers a delivery; wakes the attached connection when the queue was empty.
    pub(crate) fn enqueue(&self, d: Delivery, max_queued: usize, on_full: OnFull) -> Enqueued {
        let mut inner = self.inner.lock();
        if inner.attached.is_none() && d.qos == QoS::AtMostOnce {
            drop(inner);
            inc(&self.counters.messages_dropped);
            return Enqueued::DroppedOffline;
        }
        // Waiting publishers are served first: a newcomer finding them counts as full.
        let full = inner.queue.len() >= max_queued
            || (inner.waiters > 0 && on_full != OnFull::Retry && inner.attached.is_some());
        if full && on_full != OnFull::Drop && d.qos != QoS::AtMostOnce && inner.attached.is_some() {
            if on_full == OnFull::Wait {
                inner.waiters += 1;
            }
            return Enqueued::Full(d);
        }
        if full {
            let starts = !inner.overflowing;
            inner.overflowing = true;
            drop(inner);
            inc(&self.counters.messages_dropped);
            return Enqueued::DroppedFull(starts);
        }
        inner.overflowing = false;
        let was_empty = inner.queue.is_empty();
        inner.queue.push_back(d);
        if was_empty && let Some(a) = &inner.attached {
            a.signal.wake();
        }
        Enqueued::Queued
    }

    /// Takes up to `max` queued deliveries for connection `conn_id`; `None` when that connection
    /// is no longer attached (taken over or detached).
    pub(crate) fn pop_batch(&self, conn_id: u64, max: usize, out: &mut Vec<Delivery>) -> bool {
        let mut inner = self.inner.lock();
        if inner.attached.as_ref().map(|a| a.conn_id) != Some(conn_id) {
            return false;
        }
        let n = max.min(inner.queue.len());
        out.extend(inner.queue.drain(..n));
        drop(inner);
        // One waiter per freed slot, oldest first (`Notify` queues its waiters in order).
        for _ in 0..n {
            self.space.notify_one();
        }
        true
    }

    /// Registers the wait that an [`Enqueued::Full`] answer to [`OnFull::Wait`] started.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        Waiting(self.clone())
    }

    /// Puts deliveries that could not be sent back at the front of the queue (after re-sends of
    /// unacknowledged messages, which must go first).
    pub(crate) fn requeue_front(&self, rest: impl DoubleEndedIterator<Item = Delivery>) {
        let mut inner = self.inner.lock();
        let at = inner.queue.iter().take_while(|d| d.dup).count();
        for d in rest.rev() {
            inner.queue.insert(at, d);
        }
    }

    /// Records an outgoing QoS 1/2 delivery and picks its packet id.
    pub(crate) fn begin_inflight(&self, conn_id: u64, d: &Delivery) -> Option<NonZeroU16> {
        let mut inner = self.inner.lock();
        if inner.attached.as_ref().map(|a| a.conn_id) != Some(conn_id)
            || inner.inflight.len() >= usize::from(u16::MAX) - 1
        {
            return None;
        }
        loop {
            inner.next_pid = inner.next_pid.wrapping_add(1);
            if inner.next_pid != 0 && !inner.inflight.contains_key(&inner.next_pid) {
                break;
            }
        }
        let pid = inner.next_pid;
        inner.inflight.insert(pid, d.clone());
        NonZeroU16::new(pid)
    }

    /// The client acknowledged `pid` on connection `conn_id` (PUBACK, or PUBCOMP for QoS 2).
    /// Returns the QoS of the acknowledged delivery.
    pub(crate) fn ack_inflight(&self, conn_id: u64, pid: u16) -> Option<QoS> {
        let mut inner = self.inner.lock();
        if inner.attached.as_ref().map(|a| a.conn_id) == Some(conn_id)
            && let Some(d) = inner.inflight.remove(&pid)
        {
            drop(inner);
            inc(&self.counters.messages_out);
            add(&self.counters.bytes_out, d.msg.payload.len() as u64);
            return Some(d.qos);
        }
        None
    }

    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.inner.lock().queue.len()
    }
}

impl SessionInner {
    /// Attaches a new connection: unacknowledged messages of the previous connection are queued
    /// again, first, marked as duplicates ([MQTT-4.4.0-1]); packet ids restart.
    pub(crate) fn attach(&mut self, a: Attached, identity: DeviceIdentity, expiry: Duration) {
        let mut unacked: Vec<(u16, Delivery)> = self.inflight.drain().collect();
        unacked.sort_by_key(|(pid, _)| *pid);
        for (_, mut d) in unacked.into_iter().rev() {
            d.dup = true;
            self.queue.push_front(d);
        }
        self.next_pid = 0;
        self.attached = Some(a);
        self.detached_at = None;
        self.pending_will = None;
        self.identity = identity;
        self.expiry = expiry;
        self.overflowing = false;
    }

    /// Detaches `conn_id` if it is the attached connection; returns whether it was.
    pub(crate) fn detach(&mut self, conn_id: u64, now: Instant) -> bool {
        if self.attached.as_ref().map(|a| a.conn_id) != Some(conn_id) {
            return false;
        }
        self.attached = None;
        self.detached_at = Some(now);
        true
    }

    pub(crate) fn queued_total(&self) -> usize {
        self.queue.len() + self.inflight.len()
    }

    pub(crate) fn expires_at(&self) -> Option<Instant> {
        self.detached_at.map(|t| t + self.expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::DenyAll;
    use ntex_bytes::{ByteString, Bytes};
    use std::future::Future;

    fn session() -> Arc<SessionState> {
        let id = DeviceIdentity::new("d", None, "127.0.0.1:1".parse().unwrap());
        Arc::new(SessionState::new(
            1,
            id,
            Arc::default(),
            Arc::new(DenyAll),
            Duration::from_secs(60),
        ))
    }

    fn delivery(qos: QoS, n: u8) -> Delivery {
        Delivery {
            msg: Arc::new(Message {
                topic: ByteString::from_static("t"),
                payload: Bytes::copy_from_slice(&[n]),
                qos,
                retain: false,
                origin: 0,
                props: None,
                expires_at: None,
                charge: None,
            }),
            qos,
            retain: false,
            dup: false,
            epoch: 0,
            sub_ids: Box::default(),
        }
    }

    fn attach(s: &SessionState, conn_id: u64) -> Arc<ConnSignal> {
        let signal = Arc::new(ConnSignal::default());
        let id = s.lock().identity.clone();
        s.lock().attach(
            Attached {
                conn_id,
                signal: signal.clone(),
                source: "127.0.0.1:2".parse().unwrap(),
                serial: None,
            },
            id,
            Duration::from_secs(60),
        );
        signal
    }

    #[test]
    fn full_queue_of_a_connected_session_hands_qos1_back_and_signals_room() {
        let s = session();
        let _signal = attach(&s, 7);
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce, 1), 1, OnFull::Wait),
            Enqueued::Queued
        ));
        let back = s.enqueue(delivery(QoS::AtLeastOnce, 2), 1, OnFull::Wait);
        let Enqueued::Full(d) = back else {
            panic!("expected the delivery back, got {back:?}")
        };
        let wait = s.waiting();
        assert_eq!(d.msg.payload.as_ref(), &[2]);
        assert!(
            matches!(
                s.enqueue(delivery(QoS::AtMostOnce, 3), 1, OnFull::Wait),
                Enqueued::DroppedFull(true)
            ),
            "QoS 0 never waits"
        );
        assert_eq!(s.counters.messages_dropped.load(Ordering::Relaxed), 1);
        let mut room = std::pin::pin!(s.space.notified());
        room.as_mut().enable();
        let mut out = Vec::new();
        assert!(s.pop_batch(7, 10, &mut out));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(
            room.as_mut().poll(&mut cx).is_ready(),
            "popping signals room"
        );
        assert!(
            matches!(
                s.enqueue(delivery(QoS::AtLeastOnce, 4), 1, OnFull::Wait),
                Enqueued::Full(_)
            ),
            "a newcomer does not overtake the waiter"
        );
        let late = s.waiting();
        assert!(matches!(s.enqueue(d, 1, OnFull::Retry), Enqueued::Queued));
        drop(wait);
        drop(late);
        assert_eq!(s.lock().waiters, 0);
    }

    #[test]
    fn offline_qos0_dropped_qos1_queued_and_bounded() {
        let s = session();
        assert!(matches!(
            s.enqueue(delivery(QoS::AtMostOnce, 0), 2, OnFull::Drop),
            Enqueued::DroppedOffline
        ));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce, 1), 2, OnFull::Drop),
            Enqueued::Queued
        ));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce, 2), 2, OnFull::Drop),
            Enqueued::Queued
        ));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce, 3), 2, OnFull::Drop),
            Enqueued::DroppedFull(true)
        ));
        assert!(matches!(
            s.enqueue(delivery(QoS::AtLeastOnce, 4), 2, OnFull::Drop),
            Enqueued::DroppedFull(false)
        ));
        assert_eq!(s.counters.messages_dropped.load(Ordering::Relaxed), 3);
        assert_eq!(s.queued(), 2);
    }

    #[test]
    fn unacked_messages_are_resent_first_as_duplicates() {
        let s = session();
        attach(&s, 1);
        for n in 0..3 {
            s.enqueue(delivery(QoS::AtLeastOnce, n), 10, OnFull::Drop);
        }
        let mut batch = vec![];
        assert!(s.pop_batch(1, 2, &mut batch));
        let p0 = s.begin_inflight(1, &batch[0]).unwrap();
        let p1 = s.begin_inflight(1, &batch[1]).unwrap();
        assert_ne!(p0, p1);
        s.ack_inflight(1, p0.get());
        // connection 1 dies; connection 2 attaches
        assert!(s.lock().detach(1, Instant::now()));
        attach(&s, 2);
        let mut again = vec![];
        assert!(
            !s.pop_batch(1, 10, &mut again),
            "old connection no longer drains"
        );
        assert!(s.pop_batch(2, 10, &mut again));
        let payloads: Vec<(u8, bool)> = again.iter().map(|d| (d.msg.payload[0], d.dup)).collect();
        assert_eq!(payloads, vec![(1, true), (2, false)]);
        assert_eq!(s.counters.messages_out.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn requeue_goes_after_resends() {
        let s = session();
        attach(&s, 1);
        s.enqueue(delivery(QoS::AtLeastOnce, 0), 10, OnFull::Drop);
        let mut b = vec![];
        s.pop_batch(1, 1, &mut b);
        s.begin_inflight(1, &b[0]);
        s.lock().detach(1, Instant::now());
        attach(&s, 2);
        s.requeue_front(vec![delivery(QoS::AtLeastOnce, 9)].into_iter());
        let mut out = vec![];
        s.pop_batch(2, 10, &mut out);
        assert_eq!(
            out.iter().map(|d| d.msg.payload[0]).collect::<Vec<_>>(),
            vec![0, 9]
        );
    }

    #[test]
    fn kick_reason_first_wins() {
        let sig = ConnSignal::default();
        sig.kick(KickReason::Revoked);
        sig.kick(KickReason::Administrative);
        assert_eq!(sig.kick_reason(), Some(KickReason::Revoked));
    }
}
