//! MQTT policies: named, versioned documents and their attachments to devices and groups.
//!
//! ```text
//!  put_policy(name, json) ── ironroot-policy parses + validates ──► policy_versions (v = latest + 1)
//!  attach_policy(name, Device(id) | Group(g)) ─────────────────────► policy_attachments
//!        every write records a change (Policy: name; Group: g; Device: id) for running brokers
//! ```
//!
//! A document is stored only after [`ironroot_policy::PolicyDocument::parse`] accepted it, so
//! every stored version compiles; the latest version of a policy is the one in force. Reading
//! back re-parses it (a row edited behind the store's back is reported, not trusted).

use ironroot_policy::{PolicyDocument, PolicyName};

use crate::changes::ChangeKind;
use crate::conn::Connection;
use crate::error::{Result, StoreError};
use crate::on_backend;
use crate::store::{Store, now};
use crate::tx::Transaction;
use crate::validate;

/// What a policy is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PolicyTarget {
    /// One device, by id.
    Device(String),
    /// Every device of a group, by group name.
    Group(String),
}

impl PolicyTarget {
    fn kind(&self) -> &'static str {
        match self {
            PolicyTarget::Device(_) => "device",
            PolicyTarget::Group(_) => "group",
        }
    }

    fn name(&self) -> &str {
        match self {
            PolicyTarget::Device(id) | PolicyTarget::Group(id) => id,
        }
    }

    fn from_row(kind: String, target: String) -> Result<Self> {
        match kind.as_str() {
            "device" => Ok(PolicyTarget::Device(target)),
            "group" => Ok(PolicyTarget::Group(target)),
            _ => Err(StoreError::CorruptRow {
                table: "policy_attachments",
                column: "target_kind",
                value: kind,
            }),
        }
    }
}

impl std::fmt::Display for PolicyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

/// One stored version of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// The policy's name.
    pub name: String,
    /// Version number, 1 for the first upload.
    pub version: u32,
    /// The document as uploaded (JSON text).
    pub document: String,
    /// When this version was stored (seconds since the Unix epoch).
    pub created_at: i64,
}

impl PolicyVersion {
    /// Parses the stored document (it was validated on upload; this catches tampering).
    pub fn parse(&self) -> Result<PolicyDocument> {
        PolicyDocument::parse(&self.document).map_err(|source| StoreError::InvalidPolicy {
            source: Box::new(source),
            name: self.name.clone(),
        })
    }
}

/// A policy with its version in force and its attachments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The latest version (the one in force).
    pub latest: PolicyVersion,
    /// Every version number stored, ascending.
    pub versions: Vec<u32>,
    /// Devices and groups the policy is attached to, sorted.
    pub attachments: Vec<PolicyTarget>,
    /// When the policy was first created.
    pub created_at: i64,
}

/// A policy attachment in force, as a broker loads it: the latest version of the policy and
/// what it is attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAttachment {
    /// The policy version in force.
    pub policy: PolicyVersion,
    /// The device or group.
    pub target: PolicyTarget,
}

fn check_name(name: &str) -> Result<()> {
    PolicyName::new(name).map_err(|_| StoreError::InvalidInput {
        what: "policy name",
        value: name.to_owned(),
        reason: "use 1 to 128 letters, digits and the characters _+=,.@-",
    })?;
    Ok(())
}

fn check_target(target: &PolicyTarget) -> Result<()> {
    match target {
        PolicyTarget::Device(id) => validate::device_id(id),
        PolicyTarget::Group(g) => validate::group_name(g),
    }
}

fn version_from_row(
    name: String,
    version: i64,
    document: String,
    at: i64,
) -> Result<PolicyVersion> {
    let version = u32::try_from(version).map_err(|_| StoreError::CorruptRow {
        table: "policy_versions",
        column: "version",
        value: version.to_string(),
    })?;
    Ok(PolicyVersion {
        name,
        version,
        document,
        created_at: at,
    })
}

async fn latest_version(conn: &mut Connection<'_>, name: &str) -> Result<Option<i64>> {
    on_backend!(conn, c => {
        sqlx::query_scalar("SELECT latest_version FROM policy_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **c)
            .await
    })
    .map_err(StoreError::db("read policy"))
}

async fn fetch(conn: &mut Connection<'_>, name: &str) -> Result<Policy> {
    let op = "read policy";
    let head: Option<(i64, i64)> = on_backend!(&mut *conn, c => {
        sqlx::query_as("SELECT latest_version, created_at FROM policy_policies WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut **c)
            .await
    })
    .map_err(StoreError::db(op))?;
    let Some((latest, created_at)) = head else {
        return Err(StoreError::UnknownPolicy(name.to_owned()));
    };
    let rows: Vec<(i64, String, i64)> = on_backend!(&mut *conn, c => {
        sqlx::query_as(
            "SELECT version, document, created_at FROM policy_versions WHERE name = $1 \
             ORDER BY version",
        )
        .bind(name)
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db(op))?;
    let mut versions = Vec::with_capacity(rows.len());
    let mut latest_row = None;
    for (version, document, at) in rows {
        let v = version_from_row(name.to_owned(), version, document, at)?;
        versions.push(v.version);
        if version == latest {
            latest_row = Some(v);
        }
    }
    let latest = latest_row.ok_or(StoreError::CorruptRow {
        table: "policy_policies",
        column: "latest_version",
        value: latest.to_string(),
    })?;
    let targets: Vec<(String, String)> = on_backend!(&mut *conn, c => {
        sqlx::query_as(
            "SELECT target_kind, target FROM policy_attachments WHERE policy_name = $1 \
             ORDER BY target_kind, target",
        )
        .bind(name)
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db(op))?;
    let attachments = targets
        .into_iter()
        .map(|(k, t)| PolicyTarget::from_row(k, t))
        .collect::<Result<Vec<_>>>()?;
    Ok(Policy {
        latest,
        versions,
        attachments,
        created_at,
    })
}

async fn list(conn: &mut Connection<'_>) -> Result<Vec<Policy>> {
    let names: Vec<String> = on_backend!(&mut *conn, c => {
        sqlx::query_scalar("SELECT name FROM policy_policies ORDER BY name")
            .fetch_all(&mut **c)
            .await
    })
    .map_err(StoreError::db("list policies"))?;
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        out.push(fetch(conn, &name).await?);
    }
    Ok(out)
}

async fn attachments_in_force(conn: &mut Connection<'_>) -> Result<Vec<PolicyAttachment>> {
    let rows: Vec<(String, i64, String, i64, String, String)> = on_backend!(conn, c => {
        sqlx::query_as(
            "SELECT v.name, v.version, v.document, v.created_at, a.target_kind, a.target \
             FROM policy_attachments a \
             JOIN policy_policies p ON p.name = a.policy_name \
             JOIN policy_versions v ON v.name = p.name AND v.version = p.latest_version \
             ORDER BY a.target_kind, a.target, v.name",
        )
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db("read policy attachments"))?;
    rows.into_iter()
        .map(|(name, version, document, at, kind, target)| {
            Ok(PolicyAttachment {
                policy: version_from_row(name, version, document, at)?,
                target: PolicyTarget::from_row(kind, target)?,
            })
        })
        .collect()
}

impl Transaction {
    /// Stores `document` as a new version of policy `name` (version 1 creates the policy).
    ///
    /// The document is validated with `ironroot-policy` first; an invalid one (size limit,
    /// unknown action, bad variable, malformed JSON ...) is refused with
    /// [`StoreError::InvalidPolicy`] and nothing is stored. Running brokers apply the new
    /// version to live sessions through the change feed.
    pub async fn put_policy(&mut self, name: &str, document: &str) -> Result<PolicyVersion> {
        check_name(name)?;
        PolicyDocument::parse(document).map_err(|source| StoreError::InvalidPolicy {
            source: Box::new(source),
            name: name.to_owned(),
        })?;
        let op = "store policy";
        let at = now();
        let mut conn = self.connection();
        let version = match latest_version(&mut conn, name).await? {
            None => {
                on_backend!(&mut conn, c => {
                    sqlx::query(
                        "INSERT INTO policy_policies (name, latest_version, created_at, updated_at) \
                         VALUES ($1, 1, $2, $2)",
                    )
                    .bind(name)
                    .bind(at)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                })
                .map_err(StoreError::db(op))?;
                1
            }
            Some(latest) => {
                let next = latest + 1;
                on_backend!(&mut conn, c => {
                    sqlx::query(
                        "UPDATE policy_policies SET latest_version = $1, updated_at = $2 \
                         WHERE name = $3",
                    )
                    .bind(next)
                    .bind(at)
                    .bind(name)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                })
                .map_err(StoreError::db(op))?;
                next
            }
        };
        on_backend!(&mut conn, c => {
            sqlx::query(
                "INSERT INTO policy_versions (name, version, document, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(name)
            .bind(version)
            .bind(document)
            .bind(at)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db(op))?;
        self.push_change(ChangeKind::Policy, name, at);
        version_from_row(name.to_owned(), version, document.to_owned(), at)
    }

    /// Attaches policy `name` to a device (which must be registered) or a group (created when
    /// missing). Returns `false` when it was already attached.
    pub async fn attach_policy(&mut self, name: &str, target: &PolicyTarget) -> Result<bool> {
        check_name(name)?;
        check_target(target)?;
        let op = "attach policy";
        let at = now();
        let mut conn = self.connection();
        if latest_version(&mut conn, name).await?.is_none() {
            return Err(StoreError::UnknownPolicy(name.to_owned()));
        }
        match target {
            PolicyTarget::Device(id) => {
                let exists: Option<i64> = on_backend!(&mut conn, c => {
                    sqlx::query_scalar("SELECT CAST(1 AS BIGINT) FROM devices WHERE id = $1")
                        .bind(id)
                        .fetch_optional(&mut **c)
                        .await
                })
                .map_err(StoreError::db(op))?;
                if exists.is_none() {
                    return Err(StoreError::UnknownDevice(id.clone()));
                }
            }
            PolicyTarget::Group(g) => {
                on_backend!(&mut conn, c => {
                    sqlx::query(
                        "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    )
                    .bind(g)
                    .bind(at)
                    .execute(&mut **c)
                    .await
                    .map(|r| r.rows_affected())
                })
                .map_err(StoreError::db(op))?;
            }
        }
        let added = on_backend!(&mut conn, c => {
            sqlx::query(
                "INSERT INTO policy_attachments (policy_name, target_kind, target, attached_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(target.kind())
            .bind(target.name())
            .bind(at)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db(op))?;
        if added > 0 {
            self.record_attachment_change(name, target, at);
        }
        Ok(added > 0)
    }

    /// Detaches policy `name` from a device or group; returns whether it was attached.
    pub async fn detach_policy(&mut self, name: &str, target: &PolicyTarget) -> Result<bool> {
        check_name(name)?;
        let at = now();
        let mut conn = self.connection();
        if latest_version(&mut conn, name).await?.is_none() {
            return Err(StoreError::UnknownPolicy(name.to_owned()));
        }
        let removed = on_backend!(&mut conn, c => {
            sqlx::query(
                "DELETE FROM policy_attachments \
                 WHERE policy_name = $1 AND target_kind = $2 AND target = $3",
            )
            .bind(name)
            .bind(target.kind())
            .bind(target.name())
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("detach policy"))?;
        if removed > 0 {
            self.record_attachment_change(name, target, at);
        }
        Ok(removed > 0)
    }

    pub(crate) fn record_attachment_change(&mut self, name: &str, target: &PolicyTarget, at: i64) {
        self.push_change(ChangeKind::Policy, name, at);
        match target {
            PolicyTarget::Group(g) => self.push_change(ChangeKind::Group, g, at),
            PolicyTarget::Device(id) => self.push_change(ChangeKind::Device, id, at),
        }
    }

    /// One policy with its latest version, version numbers and attachments.
    pub async fn policy(&mut self, name: &str) -> Result<Policy> {
        fetch(&mut self.connection(), name).await
    }
}

impl Store {
    /// Stores a new version of a policy in its own transaction (see
    /// [`Transaction::put_policy`]).
    pub async fn put_policy(&self, name: &str, document: &str) -> Result<PolicyVersion> {
        let mut tx = self.begin().await?;
        let v = tx.put_policy(name, document).await?;
        tx.commit().await?;
        Ok(v)
    }

    /// Attaches a policy in its own transaction (see [`Transaction::attach_policy`]).
    pub async fn attach_policy(&self, name: &str, target: &PolicyTarget) -> Result<bool> {
        let mut tx = self.begin().await?;
        let added = tx.attach_policy(name, target).await?;
        tx.commit().await?;
        Ok(added)
    }

    /// Detaches a policy in its own transaction (see [`Transaction::detach_policy`]).
    pub async fn detach_policy(&self, name: &str, target: &PolicyTarget) -> Result<bool> {
        let mut tx = self.begin().await?;
        let removed = tx.detach_policy(name, target).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// One policy; [`StoreError::UnknownPolicy`] when there is none of that name.
    pub async fn policy(&self, name: &str) -> Result<Policy> {
        fetch(&mut self.acquire().await?.connection(), name).await
    }

    /// Every policy, sorted by name.
    pub async fn list_policies(&self) -> Result<Vec<Policy>> {
        list(&mut self.acquire().await?.connection()).await
    }

    /// Every attachment with the latest version of its policy: what a broker loads into its
    /// policy snapshot.
    pub async fn policy_attachments(&self) -> Result<Vec<PolicyAttachment>> {
        attachments_in_force(&mut self.acquire().await?.connection()).await
    }
}
