//! Time in the CA's clock, so a device whose own clock is wrong by hours still renews on time.
//!
//! The rule: **certificate times are compared only with the CA's time, never with the device's
//! wall clock.** The device learns the server's clock from the `Date` header of every answer it
//! gets over HTTPS (EST), keeps that reading on its monotonic clock (immune to wall-clock jumps
//! while it runs), and after a reboot — when the monotonic anchor is gone — falls back to its
//! wall clock corrected by the last offset it measured. A device that never heard the server's
//! time uses its wall clock as is; if that is so wrong that the broker refuses its certificate
//! as expired, the lifecycle re-enrolls (see [`super::Lifecycle`]), which resynchronizes.

use std::time::Duration;

/// A certificate's validity in the CA's clock (Unix seconds), read from the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertTimes {
    /// `notBefore` (the CA backdates it a few minutes to tolerate skew).
    pub not_before: i64,
    /// `notAfter`.
    pub not_after: i64,
    /// When the device received it, in CA time (the server's `Date`; `notBefore` when
    /// unknown). Renewal is timed from here, not from the backdated `notBefore`, so short
    /// lifetimes do not come due at once.
    pub issued_at: i64,
}

impl CertTimes {
    /// Times of a certificate received at CA time `issued_at` (clamped into its validity).
    pub fn new(not_before: i64, not_after: i64, issued_at: Option<i64>) -> Self {
        let issued_at = issued_at
            .unwrap_or(not_before)
            .clamp(not_before, not_after.max(not_before));
        Self {
            not_before,
            not_after,
            issued_at,
        }
    }

    /// When renewal is due: two thirds of the way from issuance to `notAfter`.
    pub fn renew_at(&self) -> i64 {
        let life = self.not_after.saturating_sub(self.issued_at).max(0);
        self.issued_at
            .saturating_add(life / 3 * 2 + (life % 3) * 2 / 3)
    }

    /// Whether the certificate has expired at CA time `now`.
    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after
    }
}

/// The device's estimate of the CA's clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaClock {
    /// Monotonic reading and CA time at the last sync (lost on reboot).
    anchor: Option<(Duration, i64)>,
    /// CA time minus device wall time at the last sync, seconds (kept across reboots).
    wall_offset: i64,
}

impl CaClock {
    /// A clock that trusts the device's wall clock until the first sync.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock restored after a reboot from the offset persisted before it (no monotonic
    /// anchor yet).
    pub fn with_offset(wall_offset: i64) -> Self {
        Self {
            anchor: None,
            wall_offset,
        }
    }

    /// Records the server's time `server_now` (e.g. its HTTP `Date`), read when the device's
    /// monotonic clock showed `mono` and its wall clock `wall`.
    pub fn sync(&mut self, mono: Duration, wall: i64, server_now: i64) {
        self.anchor = Some((mono, server_now));
        self.wall_offset = server_now.saturating_sub(wall);
    }

    /// CA time now, given the device's monotonic and wall readings.
    pub fn now(&self, mono: Duration, wall: i64) -> i64 {
        match self.anchor {
            Some((at, ca)) if mono >= at => {
                ca.saturating_add(i64::try_from((mono - at).as_secs()).unwrap_or(i64::MAX))
            }
            _ => wall.saturating_add(self.wall_offset),
        }
    }

    /// The measured offset (CA − device wall clock), to persist across reboots.
    pub fn wall_offset(&self) -> i64 {
        self.wall_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400;

    #[test]
    fn renewal_is_at_two_thirds_of_the_lifetime() {
        let t = CertTimes::new(1_000, 1_000 + 90 * DAY, None);
        assert_eq!(t.renew_at(), 1_000 + 60 * DAY);
        // A short lifetime behind a 5-minute backdate: timed from issuance, not notBefore.
        let short = CertTimes::new(10_000 - 300, 10_000 + 120, Some(10_000));
        assert_eq!(short.renew_at(), 10_080);
        assert!(!t.expired(1_000 + 90 * DAY - 1));
        assert!(t.expired(1_000 + 90 * DAY));
    }

    #[test]
    fn a_device_six_hours_slow_still_renews_on_time() {
        let real = 1_800_000_000i64; // CA time at enrollment
        let wall = real - 6 * 3_600; // the device's clock is six hours behind
        let mut clock = CaClock::new();
        clock.sync(Duration::from_secs(100), wall, real);
        let cert = CertTimes::new(real - 300, real + 90 * DAY, Some(real));
        // Sixty days later on the monotonic clock: CA time is right, so renewal is due then,
        // while the slow wall clock alone would have said "six hours to go".
        let mono = Duration::from_secs(100 + (60 * DAY) as u64);
        let now = clock.now(mono, wall + 60 * DAY);
        assert_eq!(now, real + 60 * DAY);
        assert!(now >= cert.renew_at());
        assert!(wall + 60 * DAY < cert.renew_at());
        // After a reboot the monotonic anchor is gone: the persisted offset corrects the wall
        // clock the same way.
        let rebooted = CaClock::with_offset(clock.wall_offset());
        assert_eq!(
            rebooted.now(Duration::ZERO, wall + 60 * DAY),
            real + 60 * DAY
        );
    }

    #[test]
    fn a_wall_clock_jump_while_running_does_not_move_ca_time() {
        let mut clock = CaClock::new();
        clock.sync(Duration::from_secs(10), 5_000, 9_000);
        // NTP (or a user) sets the wall clock back by a day: the monotonic clock rules.
        assert_eq!(clock.now(Duration::from_secs(70), 5_060 - DAY), 9_060);
    }

    proptest! {
        #[test]
        fn renewal_always_falls_inside_the_validity(nb in -1_000_000_000i64..4_000_000_000, life in 1i64..(20 * 365 * DAY)) {
            let t = CertTimes::new(nb, nb + life, Some(nb + life / 7));
            prop_assert!(t.renew_at() >= t.issued_at);
            prop_assert!(t.renew_at() < t.not_after);
        }

        #[test]
        fn any_skew_is_cancelled_by_a_sync(skew in -(30 * DAY)..(30 * DAY), elapsed in 0u64..(400 * DAY as u64)) {
            let real = 1_800_000_000i64;
            let mut clock = CaClock::new();
            clock.sync(Duration::ZERO, real + skew, real);
            let e = i64::try_from(elapsed).unwrap();
            prop_assert_eq!(clock.now(Duration::from_secs(elapsed), real + skew + e), real + e);
            prop_assert_eq!(CaClock::with_offset(clock.wall_offset()).now(Duration::ZERO, real + skew + e), real + e);
        }
    }
}
