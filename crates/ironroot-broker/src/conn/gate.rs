//! Admission of inbound PUBLISH packets on one connection, and their order.
//!
//! - **Window and rate.** [`InboundGate::ready`] waits until fewer than `window` PUBLISHes are in
//!   progress and the connection's token bucket has a token. The publish services wait here in
//!   their `ready`, before ntex reads the next packet, so a client over its rate or window is
//!   slowed by TCP backpressure: nothing is buffered for it and nothing it sent is lost.
//! - **Order.** Each admitted PUBLISH takes a turn number; it is routed only when every earlier
//!   PUBLISH of the connection finished. A QoS 1 PUBLISH held by a full subscriber queue
//!   (backpressure, see `ConnCore::accept_publish`) thus holds the ones behind it, and
//!   subscribers receive a connection's messages in the order it sent them [MQTT-4.6.0].
//!
//! Everything here is reached from one ntex worker thread (the connection's), hence `Cell`s.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Instant;

use crate::config::RateLimit;
use crate::limits::TokenBucket;

/// Window, rate and turn order of one connection's inbound PUBLISH packets.
pub(crate) struct InboundGate {
    window: u16,
    active: Cell<u16>,
    rate: Option<RateLimit>,
    bucket: RefCell<Option<TokenBucket>>,
    /// Inside a throttling episode (one event per episode).
    throttled: Cell<bool>,
    next_turn: Cell<u64>,
    serving: Cell<u64>,
    /// Turns that ended before their predecessors (a cancelled PUBLISH).
    ended_early: RefCell<BTreeSet<u64>>,
    /// Tasks waiting for a window slot or for their turn (at most `window` + 1).
    waiters: RefCell<Vec<Waker>>,
}

impl InboundGate {
    /// A gate admitting `window` PUBLISHes at once (at least one) at `rate`.
    pub(crate) fn new(window: u16, rate: Option<RateLimit>) -> Self {
        InboundGate {
            window: window.max(1),
            active: Cell::new(0),
            rate,
            bucket: RefCell::new(rate.map(|l| TokenBucket::new(&l, Instant::now()))),
            throttled: Cell::new(false),
            next_turn: Cell::new(0),
            serving: Cell::new(0),
            ended_early: RefCell::new(BTreeSet::new()),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Whether a PUBLISH may be admitted now: a window slot free and a rate token there. Ends
    /// the throttling episode when the bucket has refilled. Lets callers skip the (large)
    /// waiting future on the fast path, so an idle connection does not hold one.
    pub(crate) fn try_ready(&self) -> bool {
        self.active.get() < self.window && self.token_wait().is_zero()
    }

    /// How long until the bucket has a token (zero without a rate limit). Ends the throttling
    /// episode when the bucket has refilled.
    fn token_wait(&self) -> std::time::Duration {
        let mut bucket = self.bucket.borrow_mut();
        let (Some(limit), Some(b)) = (&self.rate, bucket.as_mut()) else {
            return std::time::Duration::ZERO;
        };
        let now = Instant::now();
        if b.is_full(limit, now) {
            self.throttled.set(false); // the client calmed down: the episode is over
        }
        b.wait_for_token(limit, now)
    }

    /// Waits for a free window slot and a rate token (the token is taken by [`Self::admit`]).
    /// `on_throttle` runs once per throttling episode, before the first wait.
    pub(crate) async fn ready(&self, on_throttle: impl Fn()) {
        loop {
            if self.active.get() >= self.window {
                poll_fn(|cx| {
                    if self.active.get() < self.window {
                        Poll::Ready(())
                    } else {
                        self.register(cx.waker());
                        Poll::Pending
                    }
                })
                .await;
                continue;
            }
            let wait = self.token_wait();
            if wait.is_zero() {
                return;
            }
            if !self.throttled.replace(true) {
                on_throttle();
            }
            ntex_util::time::sleep(wait).await;
        }
    }

    /// Admits one PUBLISH: takes its rate token, a window slot and the next turn, all given
    /// back when the returned [`Admitted`] drops.
    pub(crate) fn admit(&self) -> Admitted<'_> {
        if let (Some(limit), Some(b)) = (&self.rate, self.bucket.borrow_mut().as_mut()) {
            b.take(limit, Instant::now());
        }
        self.active.set(self.active.get() + 1);
        let turn = self.next_turn.get();
        self.next_turn.set(turn + 1);
        Admitted { gate: self, turn }
    }

    fn register(&self, waker: &Waker) {
        let mut w = self.waiters.borrow_mut();
        if !w.iter().any(|x| x.will_wake(waker)) {
            w.push(waker.clone());
        }
    }

    fn wake_all(&self) {
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    fn end_turn(&self, turn: u64) {
        if turn == self.serving.get() {
            let mut next = turn + 1;
            let mut early = self.ended_early.borrow_mut();
            while early.remove(&next) {
                next += 1;
            }
            self.serving.set(next);
        } else {
            self.ended_early.borrow_mut().insert(turn);
        }
    }
}

/// One admitted PUBLISH (see [`InboundGate::admit`]).
pub(crate) struct Admitted<'a> {
    gate: &'a InboundGate,
    turn: u64,
}

impl Admitted<'_> {
    /// Waits until every earlier PUBLISH of the connection has finished.
    pub(crate) async fn my_turn(&self) {
        poll_fn(|cx| {
            if self.gate.serving.get() == self.turn {
                Poll::Ready(())
            } else {
                self.gate.register(cx.waker());
                Poll::Pending
            }
        })
        .await;
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let g = self.gate;
        g.active.set(g.active.get().saturating_sub(1));
        g.end_turn(self.turn);
        g.wake_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::pin;
    use std::task::Context;

    fn poll_once<F: Future>(f: std::pin::Pin<&mut F>) -> Poll<F::Output> {
        let waker = Waker::noop();
        f.poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn window_bounds_admissions() {
        let g = InboundGate::new(2, None);
        let a = g.admit();
        let b = g.admit();
        assert!(
            poll_once(pin!(g.ready(|| ()))).is_pending(),
            "window of 2 is full"
        );
        drop(a);
        assert!(
            poll_once(pin!(g.ready(|| ()))).is_ready(),
            "a slot came free"
        );
        drop(b);
    }

    #[test]
    fn turns_are_served_in_admission_order_even_when_one_is_cancelled() {
        let g = InboundGate::new(8, None);
        let first = g.admit();
        let second = g.admit();
        let third = g.admit();
        assert!(poll_once(pin!(first.my_turn())).is_ready());
        assert!(poll_once(pin!(second.my_turn())).is_pending());
        assert!(poll_once(pin!(third.my_turn())).is_pending());
        drop(second); // cancelled before its turn
        assert!(
            poll_once(pin!(third.my_turn())).is_pending(),
            "first still runs"
        );
        drop(first);
        assert!(
            poll_once(pin!(third.my_turn())).is_ready(),
            "skips the cancelled one"
        );
        drop(third);
        let fourth = g.admit();
        assert!(poll_once(pin!(fourth.my_turn())).is_ready());
    }
}
