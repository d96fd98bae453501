//! The power rail shared by a simulated device's flash and OTP: counts every write, erase and
//! fuse burn, and cuts power at a chosen one.

use std::cell::Cell;
use std::prelude::rust_2024::*;
use std::rc::Rc;

/// What an interrupted operation leaves behind.
///
/// ironroot's power-cut model (see `docs/architecture.md`, "Secure boot"):
///
/// * [`CutMode::Before`] — MCUboot's simulator model: the interrupted operation has no effect.
///   Cutting before operation `n + 1` is the same as cutting right after operation `n`, so
///   trying every `n` covers both "not done" and "fully done".
/// * [`CutMode::Torn`] — the interrupted operation is partly done, as on real NOR flash:
///   a write programs a prefix of its write units fully, one unit partially (a random subset
///   of the bits it should change) and leaves the rest untouched; a sector erase leaves every
///   byte of that sector either as it was, erased, partly erased, or random; an OTP burn
///   burns a random subset of its bits. Later sectors of a multi-sector erase are untouched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CutMode {
    /// The interrupted operation does nothing.
    Before,
    /// The interrupted operation is torn; `seed` makes the damage reproducible.
    Torn {
        /// Seed of the damage pattern.
        seed: u64,
    },
}

#[derive(Debug, Default)]
struct State {
    ops: Cell<u64>,
    cut_at: Cell<Option<u64>>,
    mode: Cell<Option<CutMode>>,
    lost: Cell<bool>,
}

/// A handle on a simulated power rail; clones share the same rail.
///
/// Every state-changing operation (one flash write call, one sector of an erase, one OTP
/// burn) is one numbered operation. [`arm`](Self::arm) schedules a cut; when it fires the
/// operation fails with a power-loss error, and every later operation fails too until
/// [`restore`](Self::restore) (the next power-on).
#[derive(Debug, Clone, Default)]
pub struct Power(Rc<State>);

/// What the simulator must do with the operation it is about to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Power is on: perform the operation.
    Proceed,
    /// Power fails during this operation.
    Cut(CutMode),
    /// Power is already off.
    Dead,
}

impl Power {
    /// A rail with power on and no cut scheduled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Schedules a cut during the `n`-th operation from now (`n >= 1`).
    pub fn arm(&self, n: u64, mode: CutMode) {
        let at = self.0.ops.get().saturating_add(n.max(1));
        self.0.cut_at.set(Some(at));
        self.0.mode.set(Some(mode));
    }

    /// Cancels a scheduled cut.
    pub fn disarm(&self) {
        self.0.cut_at.set(None);
        self.0.mode.set(None);
    }

    /// Operations performed (or attempted) since the rail was made.
    pub fn ops(&self) -> u64 {
        self.0.ops.get()
    }

    /// Whether power has been cut and not yet restored.
    pub fn is_lost(&self) -> bool {
        self.0.lost.get()
    }

    /// Powers the device on again after a cut; any scheduled cut is cancelled.
    pub fn restore(&self) {
        self.0.lost.set(false);
        self.disarm();
    }

    pub(crate) fn gate(&self) -> Gate {
        if self.0.lost.get() {
            return Gate::Dead;
        }
        let n = self.0.ops.get() + 1;
        self.0.ops.set(n);
        match (self.0.cut_at.get(), self.0.mode.get()) {
            (Some(at), Some(mode)) if at == n => {
                self.0.lost.set(true);
                self.0.cut_at.set(None);
                Gate::Cut(mode)
            }
            _ => Gate::Proceed,
        }
    }
}

/// SplitMix64: a small deterministic generator for torn-operation damage.
#[derive(Debug, Clone)]
pub(crate) struct Damage(u64);

impl Damage {
    pub(crate) fn new(seed: u64, salt: u64) -> Self {
        Self(seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub(crate) fn byte(&mut self) -> u8 {
        (self.next() >> 24) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_fires_once_at_the_chosen_operation_and_power_stays_off() {
        let p = Power::new();
        assert_eq!(p.gate(), Gate::Proceed);
        p.arm(2, CutMode::Before);
        assert_eq!(p.gate(), Gate::Proceed);
        assert_eq!(p.gate(), Gate::Cut(CutMode::Before));
        assert!(p.is_lost());
        assert_eq!(p.gate(), Gate::Dead);
        p.restore();
        assert_eq!(p.gate(), Gate::Proceed);
        assert_eq!(p.ops(), 4);
    }

    #[test]
    fn clones_share_the_rail() {
        let p = Power::new();
        let q = p.clone();
        q.arm(1, CutMode::Torn { seed: 1 });
        assert_eq!(p.gate(), Gate::Cut(CutMode::Torn { seed: 1 }));
        assert!(q.is_lost());
    }
}
