//! The transport-free device core: lifecycle state machine, renewal timing in the CA's clock,
//! and reconnect backoff. Nothing here touches a socket, a runtime, TLS or MQTT, and time comes
//! in as numbers, so the same logic runs in the fleet simulator, on a Linux gateway and (later)
//! on a microcontroller, and every rule is tested without waiting.
//!
//! ```text
//!            Enroll ok                 now ≥ renew_at: Renew ok (fresh key)
//!  Bootstrap ─────────▶ Operational ◀──────────────────────────────┐
//!      ▲                  │   │  └──────────────────────────────────┘
//!      │ re-enroll        │   └─ now ≥ not_after (offline too long) ──▶ Expired ── Reenroll ok ──▶ Operational
//!      │ refused          │
//!      └──────────────────┴─ signed decommission command ──▶ Decommissioned (keys destroyed)
//! ```

mod backoff;
mod clock;
mod lifecycle;

pub use backoff::Backoff;
pub use clock::{CaClock, CertTimes};
pub use lifecycle::{Action, Event, Lifecycle, Phase};
