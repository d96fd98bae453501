//! One-time claim tokens: the credential an operator hands to a device (or to a production line)
//! so it can enroll over HTTP Basic without a factory certificate.
//!
//! A token is 256 random bits, shown once as URL-safe base64 (43 characters). Only its SHA-256
//! is stored (table `provision_claims`, migration 0300), so a copy of the database does not
//! hand out enrollments. A token is bound to one device (quota 1) or to a group (quota n: any
//! registered member of the group may use it, n times in total), and expires. Redeeming is one
//! conditional `UPDATE … SET used = used + 1 WHERE … used < quota AND expires_at > now`, so two
//! concurrent uses of a single-use token cannot both succeed, on SQLite or PostgreSQL.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ironroot_store::{GroupCommitter, Store, StoreError, on_backend};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of randomness in a token.
pub const TOKEN_BYTES: usize = 32;

/// What a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimScope {
    /// Exactly this device, once.
    Device(String),
    /// Any member of this group, `quota` times in total.
    Group {
        /// The group.
        name: String,
        /// How many enrollments the token allows.
        quota: u32,
    },
}

/// A freshly minted token: the secret (shown once) and its expiry.
#[derive(Debug)]
pub struct MintedClaim {
    /// The token text; never stored or logged.
    pub token: Zeroizing<String>,
    /// Expiry, seconds since the epoch.
    pub expires_at: i64,
}

/// Why a token was not accepted (kept apart for the audit log; the client sees one answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimRefusal {
    /// No token with this hash exists (wrong or never issued).
    #[error("unknown_token")]
    Unknown,
    /// The token expired.
    #[error("expired_token")]
    Expired,
    /// The token was already used (up to its quota).
    #[error("token_used")]
    Used,
    /// The token is bound to another device or to a group the device is not in.
    #[error("token_for_other_device")]
    OtherDevice,
}

/// SHA-256 of the token text, lowercase hex: the stored form.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Database { op, source }
}

use ironroot_store::sqlx;

/// Creates a token for `scope`, valid until `expires_at`.
pub async fn mint(
    store: &Store,
    scope: &ClaimScope,
    created_by: &str,
    now: i64,
    expires_at: i64,
) -> Result<MintedClaim, StoreError> {
    let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
    getrandom::fill(raw.as_mut()).map_err(|_| StoreError::Database {
        op: "generate a claim token",
        source: sqlx::Error::Protocol("the operating system random generator failed".into()),
    })?;
    let token = Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_ref()));
    let hash = token_hash(&token);
    let (device, group, quota) = match scope {
        ClaimScope::Device(d) => (Some(d.clone()), None, 1i64),
        ClaimScope::Group { name, quota } => (None, Some(name.clone()), i64::from(*quota)),
    };
    let mut conn = store.acquire().await?;
    let mut conn = conn.connection();
    on_backend!(&mut conn, c => {
        sqlx::query(
            "INSERT INTO provision_claims \
             (token_hash, device_id, group_name, quota, used, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $7)",
        )
        .bind(&hash)
        .bind(&device)
        .bind(&group)
        .bind(quota)
        .bind(created_by)
        .bind(now)
        .bind(expires_at)
        .execute(&mut **c)
        .await
        .map(|_| ())
        .map_err(db("store a claim token"))
    })?;
    Ok(MintedClaim { token, expires_at })
}

type ClaimRow = (Option<String>, Option<String>, i64, i64, i64);

/// Redeems one use of `token` for `device` (whose groups are `groups`). On success the use is
/// committed: the token cannot be replayed even if issuance then fails for an internal reason.
///
/// Runs on the group committer, so concurrent redemptions share one durable commit (on SQLite,
/// one fsync for a whole batch instead of one each). The check and the conditional update run
/// in the same transaction (a savepoint of the batch).
pub async fn redeem(
    committer: &GroupCommitter,
    token: &str,
    device: &str,
    groups: &[String],
    now: i64,
) -> Result<Result<(), ClaimRefusal>, StoreError> {
    let hash = token_hash(token);
    let device = device.to_owned();
    let groups = groups.to_vec();
    committer
        .run(move |tx| {
            Box::pin(async move {
                let mut conn = tx.connection();
                let row: Option<ClaimRow> = on_backend!(&mut conn, c => {
                    sqlx::query_as(
                        "SELECT device_id, group_name, quota, used, expires_at FROM provision_claims \
                         WHERE token_hash = $1",
                    )
                    .bind(&hash)
                    .fetch_optional(&mut **c)
                    .await
                    .map_err(db("read a claim token"))
                })?;
                let Some((bound_device, bound_group, quota, used, expires_at)) = row else {
                    return Ok(Err(ClaimRefusal::Unknown));
                };
                // Binding first: a token for another device says nothing about its own state.
                let bound_ok = match (&bound_device, &bound_group) {
                    (Some(d), _) => *d == device,
                    (None, Some(g)) => groups.iter().any(|x| x == g),
                    (None, None) => false,
                };
                if !bound_ok {
                    return Ok(Err(ClaimRefusal::OtherDevice));
                }
                if expires_at <= now {
                    return Ok(Err(ClaimRefusal::Expired));
                }
                if used >= quota {
                    return Ok(Err(ClaimRefusal::Used));
                }
                let updated = on_backend!(&mut conn, c => {
                    sqlx::query(
                        "UPDATE provision_claims SET used = used + 1 \
                         WHERE token_hash = $1 AND used < quota AND expires_at > $2",
                    )
                    .bind(&hash)
                    .bind(now)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                    .map_err(db("use a claim token"))
                })?;
                if updated == 1 {
                    Ok(Ok(()))
                } else {
                    // Lost a race with a concurrent use of the last unit.
                    Ok(Err(ClaimRefusal::Used))
                }
            })
        })
        .await
}

/// Deletes tokens that expired before `before` (housekeeping); returns how many.
pub async fn purge_expired(store: &Store, before: i64) -> Result<u64, StoreError> {
    let mut pooled = store.acquire().await?;
    let mut conn = pooled.connection();
    on_backend!(&mut conn, c => {
        sqlx::query("DELETE FROM provision_claims WHERE expires_at < $1")
            .bind(before)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
            .map_err(db("purge claim tokens"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
