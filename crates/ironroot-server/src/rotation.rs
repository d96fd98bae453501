//! Rotation: after a re-enrollment the previous certificate stays valid for a grace period, or
//! until the device first uses the new certificate, whichever comes first; then it is retired
//! (revoked with reason `superseded`, through the identity service, so the broker's revoked set
//! and the CRL follow). Pending rotations are rows of `provision_rotations`, so a restart keeps
//! them; an in-memory set of the new serials makes the first-use check a hash probe.

use std::collections::HashSet;
use std::sync::Mutex;

use ironroot_audit::{Event, EventKind};
use ironroot_pki::Serial;
use ironroot_store::{Store, StoreError, on_backend, sqlx};

use crate::app::AppState;

/// Pending rotations.
#[derive(Debug, Default)]
pub(crate) struct Rotations {
    /// New serials whose predecessor still waits for retirement.
    pending_new: Mutex<HashSet<String>>,
}

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

const BY_NEW: &str =
    "SELECT old_serial, new_serial, device_id FROM provision_rotations WHERE new_serial = $1";
const DUE: &str =
    "SELECT old_serial, new_serial, device_id FROM provision_rotations WHERE retire_at <= $1";

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Rotations {
    /// Loads pending rotations (server start).
    pub(crate) async fn load(store: &Store) -> Result<Self, StoreError> {
        let mut pooled = store.acquire().await?;
        let mut conn = pooled.connection();
        let rows: Vec<(String,)> = on_backend!(&mut conn, c => {
            sqlx::query_as("SELECT new_serial FROM provision_rotations")
                .fetch_all(&mut **c)
                .await
                .map_err(db("load rotations"))
        })?;
        Ok(Self {
            pending_new: Mutex::new(rows.into_iter().map(|(s,)| s).collect()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending_new.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `old` is replaced by `new` and retires after the grace period.
    pub(crate) async fn schedule(
        &self,
        state: &AppState,
        device: &str,
        old: &Serial,
        new: &Serial,
    ) {
        // The registry's canonical text form (`Serial`'s Display) is the stored key.
        let (old, new) = (old.to_string(), new.to_string());
        let retire_at = now() + state.config.enrollment.rotation_grace.as_secs() as i64;
        let result = async {
            let mut pooled = state.store.acquire().await?;
            let mut conn = pooled.connection();
            on_backend!(&mut conn, c => {
                sqlx::query(
                    "INSERT INTO provision_rotations (old_serial, new_serial, device_id, retire_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(&old)
                .bind(&new)
                .bind(device)
                .bind(retire_at)
                .execute(&mut **c)
                .await
                .map(|_| ())
                .map_err(db("schedule a rotation"))
            })
        }
        .await;
        match result {
            Ok(_) => {
                self.lock().insert(new);
            }
            Err(e) => log::error!("cannot schedule retirement of {old}: {e}"),
        }
    }

    /// Called for every request made with an operational certificate: the first use of a
    /// rotated-to certificate retires its predecessor at once.
    pub(crate) async fn note_used(&self, state: &AppState, serial: &Serial) {
        let key = serial.to_string();
        if !self.lock().contains(&key) {
            return;
        }
        if let Err(e) = self.retire_where(state, Some(&key), 0, "first_use").await {
            log::error!("rotation retirement failed: {e}");
        }
    }

    /// Retires every predecessor whose grace period ended (the periodic sweep).
    pub(crate) async fn sweep(&self, state: &AppState) -> Result<usize, StoreError> {
        self.retire_where(state, None, now(), "grace_period_ended")
            .await
    }

    async fn retire_where(
        &self,
        state: &AppState,
        serial: Option<&str>,
        at: i64,
        why: &str,
    ) -> Result<usize, StoreError> {
        let rows: Vec<(String, String, String)> = {
            let mut pooled = state.store.acquire().await?;
            let mut conn = pooled.connection();
            on_backend!(&mut conn, c => {
                match serial {
                    Some(s) => sqlx::query_as(BY_NEW).bind(s.to_owned()).fetch_all(&mut **c).await,
                    None => sqlx::query_as(DUE).bind(at).fetch_all(&mut **c).await,
                }
                .map_err(db("read due rotations"))
            })?
        };
        let mut done = 0;
        for (old, new, device) in rows {
            // Delete first: only one caller (request hook or sweep, on any replica) wins.
            let deleted = {
                let mut pooled = state.store.acquire().await?;
                let mut conn = pooled.connection();
                on_backend!(&mut conn, c => {
                    sqlx::query("DELETE FROM provision_rotations WHERE old_serial = $1")
                        .bind(&old)
                        .execute(&mut **c)
                        .await
                        .map(|r| r.rows_affected())
                        .map_err(db("finish a rotation"))
                })?
            };
            self.lock().remove(&new);
            if deleted == 0 {
                continue;
            }
            let Ok(serial) = Serial::from_hex(&old) else {
                continue;
            };
            let actor = "service:provisioning";
            match state.identity.retire(&serial, actor).await {
                Ok(_) => {
                    done += 1;
                    let _ = state
                        .audit
                        .record(
                            Event::new(EventKind::CertRetired, actor)
                                .subject("certificate", old.clone())
                                .detail("device", device)
                                .detail("replaced_by", new)
                                .detail("trigger", why),
                        )
                        .await;
                }
                Err(e) => log::warn!("cannot retire {old}: {e}"),
            }
        }
        Ok(done)
    }
}
