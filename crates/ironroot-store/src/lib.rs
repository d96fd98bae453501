//! The ironroot registry: devices, their lifecycle, groups, attributes and owners, and every
//! certificate ironroot issued — on embedded SQLite (the default) or PostgreSQL (scale-out).
//!
//! The principal type is [`Store`], opened from a URL or a data directory:
//!
//! ```text
//!   Store::open("sqlite://D/ironroot.db") / Store::open_data_dir(D) / Store::open("postgres://…")
//!     │  applies embedded migrations (migrations/<backend>/NNNN_*.sql), forward-only
//!     ├─ reads:   store.device(id), store.certificate(serial), store.revoked_certificates(), …
//!     ├─ writes:  store.add_device(..)            (one call = one transaction)
//!     │           let mut tx = store.begin().await?;          (several changes, all or nothing)
//!     │           tx.record_issued_certificate(&cert).await?;
//!     │           tx.set_device_state(id, DeviceState::Provisioned).await?;
//!     │           tx.commit().await?;   ◄── hand the certificate out only after this
//!     ├─ lifecycle: tx.contain_device(..) (incidents), tx.send_for_repair(..),
//!     │           tx.rebind_device(..) (transfer, re-commission)
//!     ├─ policies: store.put_policy(name, json) (validated), attach_policy(name, target)
//!     └─ feed:    store.subscribe_changes(cursor) → next() = Change { kind, item, cursor }
//! ```
//!
//! Both backends run the same SQL (with `$n` placeholders, which SQLite understands too) through
//! [`on_backend!`], which compiles each query body once per backend. Other crates (the audit
//! log) run their own queries on the same pool or inside the same [`Transaction`] with
//! [`Store::acquire`], [`Transaction::connection`] and the same macro; their tables come as
//! migrations in this crate's `migrations/` directories (see the README there for the ranges).
//!
//! Durability: a returned `commit` is durable — SQLite runs in WAL mode with
//! `synchronous=FULL` (the WAL is fsynced at every commit), PostgreSQL with its default
//! `synchronous_commit=on`.
#![forbid(unsafe_code)]

#[macro_use]
mod model;
mod certificates;
mod changes;
mod conn;
mod containment;
mod devices;
mod error;
mod group;
mod policies;
mod rebind;
mod reports;
mod store;
mod tx;
pub mod validate;

pub use changes::{Change, ChangeCursor, ChangeKind, ChangeSubscription, NOTIFY_CHANNEL};
pub use conn::Connection;
pub use containment::Contained;
pub use devices::MAX_PAGE;
pub use error::{Result, StoreError};
pub use group::{GroupCommitter, JobFuture};
pub use model::{
    Certificate, CertificateKind, CertificateStatus, Device, DeviceFilter, DeviceState,
    NewCertificate, NewDevice, RevocationReason, RevokedCertificate,
};
pub use policies::{Policy, PolicyAttachment, PolicyTarget, PolicyVersion};
pub use rebind::{Rebind, RebindKind, Rebound};
pub use reports::BootRecord;
pub use store::{Backend, DATABASE_FILE, PooledConnection, Store, StoreOptions, known_migrations};
pub use tx::Transaction;

/// The sqlx version the store is built on, for crates that run their own queries on its pools.
pub use sqlx;
