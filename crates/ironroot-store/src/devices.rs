//! Devices: registration, lifecycle, groups, attributes and owners.

use std::collections::BTreeMap;

use crate::changes::ChangeKind;
use crate::conn::Connection;
use crate::error::{Result, StoreError, is_unique_violation};
use crate::model::{Device, DeviceFilter, DeviceState, NewDevice};
use crate::on_backend;
use crate::store::{Store, now};
use crate::tx::Transaction;
use crate::validate;

/// Largest page [`Store::list_devices`] returns.
pub const MAX_PAGE: u32 = 1000;

type DeviceRow = (String, String, Option<String>, i64, i64);

/// The filtered, ordered, limited page of devices; shared by the three list queries so groups
/// and attributes are fetched for exactly the devices of the page.
macro_rules! device_page {
    () => {
        "SELECT d.id FROM devices d \
         WHERE (CAST($1 AS TEXT) IS NULL OR d.state = $1) \
           AND (CAST($2 AS TEXT) IS NULL OR d.owner = $2) \
           AND (CAST($3 AS TEXT) IS NULL OR EXISTS \
                (SELECT 1 FROM device_groups g WHERE g.device_id = d.id AND g.group_name = $3)) \
           AND (CAST($4 AS TEXT) IS NULL OR d.id > $4) \
         ORDER BY d.id LIMIT $5"
    };
}

const LIST_DEVICES: &str = concat!(
    "SELECT id, state, owner, created_at, updated_at FROM devices WHERE id IN (",
    device_page!(),
    ") ORDER BY id"
);
const LIST_GROUPS: &str = concat!(
    "SELECT device_id, group_name FROM device_groups WHERE device_id IN (",
    device_page!(),
    ") ORDER BY device_id, group_name"
);
const LIST_ATTRIBUTES: &str = concat!(
    "SELECT device_id, key, value FROM device_attributes WHERE device_id IN (",
    device_page!(),
    ") ORDER BY device_id, key"
);

fn device_from_row(
    (id, state, owner, created_at, updated_at): DeviceRow,
    groups: Vec<String>,
    attributes: BTreeMap<String, String>,
) -> Result<Device> {
    Ok(Device {
        id,
        state: DeviceState::from_row(state)?,
        owner,
        groups,
        attributes,
        created_at,
        updated_at,
    })
}

pub(crate) async fn fetch(conn: &mut Connection<'_>, id: &str) -> Result<Option<Device>> {
    let op = "read device";
    let row: Option<DeviceRow> = on_backend!(conn, c => {
        sqlx::query_as(
            "SELECT id, state, owner, created_at, updated_at FROM devices WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&mut **c)
        .await
    })
    .map_err(StoreError::db(op))?;
    let Some(row) = row else { return Ok(None) };
    let groups: Vec<String> = on_backend!(conn, c => {
        sqlx::query_scalar(
            "SELECT group_name FROM device_groups WHERE device_id = $1 ORDER BY group_name",
        )
        .bind(id)
        .fetch_all(&mut **c)
        .await
    })
    .map_err(StoreError::db(op))?;
    let attributes: Vec<(String, String)> = on_backend!(conn, c => {
        sqlx::query_as("SELECT key, value FROM device_attributes WHERE device_id = $1")
            .bind(id)
            .fetch_all(&mut **c)
            .await
    })
    .map_err(StoreError::db(op))?;
    device_from_row(row, groups, attributes.into_iter().collect()).map(Some)
}

pub(crate) async fn get(conn: &mut Connection<'_>, id: &str) -> Result<Device> {
    fetch(conn, id)
        .await?
        .ok_or_else(|| StoreError::UnknownDevice(id.to_owned()))
}

pub(crate) async fn list(conn: &mut Connection<'_>, filter: &DeviceFilter) -> Result<Vec<Device>> {
    let op = "list devices";
    let state = filter.state.map(DeviceState::as_str);
    let owner = filter.owner.as_deref();
    let group = filter.group.as_deref();
    let after = filter.after.as_deref();
    let limit = i64::from(filter.limit.unwrap_or(MAX_PAGE).min(MAX_PAGE));
    let rows: Vec<DeviceRow> = on_backend!(conn, c => {
        sqlx::query_as(LIST_DEVICES)
            .bind(state).bind(owner).bind(group).bind(after).bind(limit)
            .fetch_all(&mut **c)
            .await
    })
    .map_err(StoreError::db(op))?;
    let memberships: Vec<(String, String)> = on_backend!(conn, c => {
        sqlx::query_as(LIST_GROUPS)
            .bind(state).bind(owner).bind(group).bind(after).bind(limit)
            .fetch_all(&mut **c)
            .await
    })
    .map_err(StoreError::db(op))?;
    let attributes: Vec<(String, String, String)> = on_backend!(conn, c => {
        sqlx::query_as(LIST_ATTRIBUTES)
            .bind(state).bind(owner).bind(group).bind(after).bind(limit)
            .fetch_all(&mut **c)
            .await
    })
    .map_err(StoreError::db(op))?;
    assemble(rows, memberships, attributes)
}

/// Devices from their rows, memberships `(device, group)` and attributes `(device, key, value)`.
fn assemble(
    rows: Vec<DeviceRow>,
    memberships: Vec<(String, String)>,
    attributes: Vec<(String, String, String)>,
) -> Result<Vec<Device>> {
    let mut groups_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (device, group) in memberships {
        groups_of.entry(device).or_default().push(group);
    }
    let mut attributes_of: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (device, key, value) in attributes {
        attributes_of.entry(device).or_default().insert(key, value);
    }
    rows.into_iter()
        .map(|row| {
            let groups = groups_of.remove(&row.0).unwrap_or_default();
            let attributes = attributes_of.remove(&row.0).unwrap_or_default();
            device_from_row(row, groups, attributes)
        })
        .collect()
}

/// Several devices by id in three queries (rows, memberships, attributes) instead of three per
/// device: what a change-feed follower needs when an incident changes thousands at once.
/// Ids that name no device are left out.
pub(crate) async fn fetch_many(conn: &mut Connection<'_>, ids: &[String]) -> Result<Vec<Device>> {
    let op = "read devices";
    type GroupRow = (String, String);
    type AttrRow = (String, String, String);
    let (rows, memberships, attributes): (Vec<DeviceRow>, Vec<GroupRow>, Vec<AttrRow>) = match conn
    {
        Connection::Sqlite(c) => {
            // The ids travel as one JSON array parameter, never spliced into the SQL.
            let list = serde_json::to_string(ids).map_err(|_| StoreError::InvalidInput {
                what: "device ids",
                value: String::new(),
                reason: "not encodable as a JSON array",
            })?;
            let rows = sqlx::query_as(
                "SELECT id, state, owner, created_at, updated_at FROM devices \
                     WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
            )
            .bind(&list)
            .fetch_all(&mut **c)
            .await
            .map_err(StoreError::db(op))?;
            let groups = sqlx::query_as(
                    "SELECT device_id, group_name FROM device_groups \
                     WHERE device_id IN (SELECT value FROM json_each($1)) ORDER BY device_id, group_name",
                )
                .bind(&list)
                .fetch_all(&mut **c)
                .await
                .map_err(StoreError::db(op))?;
            let attrs = sqlx::query_as(
                "SELECT device_id, key, value FROM device_attributes \
                     WHERE device_id IN (SELECT value FROM json_each($1))",
            )
            .bind(&list)
            .fetch_all(&mut **c)
            .await
            .map_err(StoreError::db(op))?;
            (rows, groups, attrs)
        }
        Connection::Postgres(c) => {
            let rows = sqlx::query_as(
                "SELECT id, state, owner, created_at, updated_at FROM devices \
                     WHERE id = ANY($1) ORDER BY id",
            )
            .bind(ids)
            .fetch_all(&mut **c)
            .await
            .map_err(StoreError::db(op))?;
            let groups = sqlx::query_as(
                "SELECT device_id, group_name FROM device_groups \
                     WHERE device_id = ANY($1) ORDER BY device_id, group_name",
            )
            .bind(ids)
            .fetch_all(&mut **c)
            .await
            .map_err(StoreError::db(op))?;
            let attrs = sqlx::query_as(
                "SELECT device_id, key, value FROM device_attributes WHERE device_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(&mut **c)
            .await
            .map_err(StoreError::db(op))?;
            (rows, groups, attrs)
        }
    };
    assemble(rows, memberships, attributes)
}

/// Reads a device's state, locking its row on PostgreSQL until the transaction ends
/// (`exclusive`: FOR UPDATE, else FOR SHARE). SQLite needs no lock: its write transactions
/// (BEGIN IMMEDIATE) already run one at a time.
pub(crate) async fn lock_state(
    conn: &mut Connection<'_>,
    id: &str,
    exclusive: bool,
) -> Result<Option<DeviceState>> {
    let op = "read device state";
    let state: Option<String> = match conn {
        Connection::Sqlite(c) => {
            sqlx::query_scalar("SELECT state FROM devices WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        }
        Connection::Postgres(c) => {
            let sql = if exclusive {
                "SELECT state FROM devices WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT state FROM devices WHERE id = $1 FOR SHARE"
            };
            sqlx::query_scalar(sql)
                .bind(id)
                .fetch_optional(&mut **c)
                .await
        }
    }
    .map_err(StoreError::db(op))?;
    state.map(DeviceState::from_row).transpose()
}

pub(crate) async fn ensure_membership(
    conn: &mut Connection<'_>,
    id: &str,
    group: &str,
    at: i64,
) -> Result<()> {
    let op = "add device to group";
    on_backend!(conn, c => {
        sqlx::query("INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(group)
            .bind(at)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(StoreError::db(op))?;
    on_backend!(conn, c => {
        sqlx::query(
            "INSERT INTO device_groups (device_id, group_name) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(group)
        .execute(&mut **c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(StoreError::db(op))?;
    Ok(())
}

pub(crate) async fn upsert_attribute(
    conn: &mut Connection<'_>,
    id: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    on_backend!(conn, c => {
        sqlx::query(
            "INSERT INTO device_attributes (device_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (device_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(key)
        .bind(value)
        .execute(&mut **c)
        .await
        .map(|r| r.rows_affected())
    })
    .map_err(StoreError::db("set device attribute"))?;
    Ok(())
}

/// Writes a device's new state; the caller checked the move and holds the row lock.
pub(crate) async fn write_state(
    conn: &mut Connection<'_>,
    id: &str,
    to: DeviceState,
    at: i64,
) -> Result<()> {
    on_backend!(conn, c => {
        sqlx::query("UPDATE devices SET state = $1, updated_at = $2 WHERE id = $3")
            .bind(to.as_str())
            .bind(at)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(StoreError::db("update device state"))?;
    Ok(())
}

/// Bumps `updated_at` (taking the row lock on PostgreSQL); fails when the device is unknown.
async fn touch(conn: &mut Connection<'_>, id: &str, at: i64) -> Result<()> {
    let done = on_backend!(conn, c => {
        sqlx::query("UPDATE devices SET updated_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(StoreError::db("update device"))?;
    if done == 0 {
        return Err(StoreError::UnknownDevice(id.to_owned()));
    }
    Ok(())
}

impl Transaction {
    /// Registers a device with its groups (created when missing) and attributes.
    pub async fn add_device(&mut self, new: &NewDevice) -> Result<Device> {
        validate::device_id(&new.id)?;
        if let Some(owner) = &new.owner {
            validate::owner(owner)?;
        }
        for group in &new.groups {
            validate::group_name(group)?;
        }
        for (key, value) in &new.attributes {
            validate::attribute_key(key)?;
            validate::attribute_value(value)?;
        }
        let at = now();
        let mut conn = self.connection();
        if lock_state(&mut conn, &new.id, false).await? == Some(DeviceState::Decommissioned) {
            // The tombstone: a retired id is never registered again by accident.
            return Err(StoreError::DecommissionedDevice(new.id.clone()));
        }
        on_backend!(&mut conn, c => {
            sqlx::query(
                "INSERT INTO devices (id, state, owner, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $4)",
            )
            .bind(&new.id)
            .bind(new.state.as_str())
            .bind(new.owner.as_deref())
            .bind(at)
            .execute(&mut **c)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|err| {
            if is_unique_violation(&err) {
                StoreError::DuplicateDevice(new.id.clone())
            } else {
                StoreError::db("insert device")(err)
            }
        })?;
        for group in &new.groups {
            ensure_membership(&mut conn, &new.id, group, at).await?;
        }
        for (key, value) in &new.attributes {
            upsert_attribute(&mut conn, &new.id, key, value).await?;
        }
        let device = get(&mut conn, &new.id).await?;
        self.push_change(ChangeKind::Device, &new.id, at);
        Ok(device)
    }

    /// The device with this id, or [`StoreError::UnknownDevice`].
    pub async fn device(&mut self, id: &str) -> Result<Device> {
        get(&mut self.connection(), id).await
    }

    /// A page of devices matching `filter`, ordered by id.
    pub async fn list_devices(&mut self, filter: &DeviceFilter) -> Result<Vec<Device>> {
        list(&mut self.connection(), filter).await
    }

    /// Moves a device through its lifecycle; refuses moves the state table does not allow with
    /// [`StoreError::InvalidTransition`].
    pub async fn set_device_state(&mut self, id: &str, to: DeviceState) -> Result<Device> {
        let mut conn = self.connection();
        let from = lock_state(&mut conn, id, true)
            .await?
            .ok_or_else(|| StoreError::UnknownDevice(id.to_owned()))?;
        if !from.can_become(to) {
            return Err(StoreError::InvalidTransition {
                device: id.to_owned(),
                from,
                to,
            });
        }
        let at = now();
        write_state(&mut conn, id, to, at).await?;
        let device = get(&mut conn, id).await?;
        self.push_change(ChangeKind::Device, id, at);
        Ok(device)
    }

    /// Adds a device to a group (created when missing); a no-op when it is already a member.
    pub async fn add_device_to_group(&mut self, id: &str, group: &str) -> Result<()> {
        validate::group_name(group)?;
        let at = now();
        let mut conn = self.connection();
        touch(&mut conn, id, at).await?;
        ensure_membership(&mut conn, id, group, at).await?;
        self.push_change(ChangeKind::Device, id, at);
        Ok(())
    }

    /// Removes a device from a group; returns whether it was a member.
    pub async fn remove_device_from_group(&mut self, id: &str, group: &str) -> Result<bool> {
        let at = now();
        let mut conn = self.connection();
        touch(&mut conn, id, at).await?;
        let removed = on_backend!(&mut conn, c => {
            sqlx::query("DELETE FROM device_groups WHERE device_id = $1 AND group_name = $2")
                .bind(id)
                .bind(group)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("remove device from group"))?;
        self.push_change(ChangeKind::Device, id, at);
        Ok(removed > 0)
    }

    /// Sets (or replaces) one attribute.
    pub async fn set_device_attribute(&mut self, id: &str, key: &str, value: &str) -> Result<()> {
        validate::attribute_key(key)?;
        validate::attribute_value(value)?;
        let at = now();
        let mut conn = self.connection();
        touch(&mut conn, id, at).await?;
        upsert_attribute(&mut conn, id, key, value).await?;
        self.push_change(ChangeKind::Device, id, at);
        Ok(())
    }

    /// Removes one attribute; returns whether it existed.
    pub async fn remove_device_attribute(&mut self, id: &str, key: &str) -> Result<bool> {
        let at = now();
        let mut conn = self.connection();
        touch(&mut conn, id, at).await?;
        let removed = on_backend!(&mut conn, c => {
            sqlx::query("DELETE FROM device_attributes WHERE device_id = $1 AND key = $2")
                .bind(id)
                .bind(key)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("remove device attribute"))?;
        self.push_change(ChangeKind::Device, id, at);
        Ok(removed > 0)
    }

    /// Sets or clears the owner.
    pub async fn set_device_owner(&mut self, id: &str, owner: Option<&str>) -> Result<()> {
        if let Some(owner) = owner {
            validate::owner(owner)?;
        }
        let at = now();
        let mut conn = self.connection();
        let done = on_backend!(&mut conn, c => {
            sqlx::query("UPDATE devices SET owner = $1, updated_at = $2 WHERE id = $3")
                .bind(owner)
                .bind(at)
                .bind(id)
                .execute(&mut **c)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(StoreError::db("set device owner"))?;
        if done == 0 {
            return Err(StoreError::UnknownDevice(id.to_owned()));
        }
        self.push_change(ChangeKind::Device, id, at);
        Ok(())
    }
}

/// Repository methods that run in their own transaction (writes) or on a pooled connection
/// (reads). Use [`Store::begin`] to combine several in one transaction.
impl Store {
    /// Registers a device; see [`Transaction::add_device`].
    pub async fn add_device(&self, new: &NewDevice) -> Result<Device> {
        let mut tx = self.begin().await?;
        let device = tx.add_device(new).await?;
        tx.commit().await?;
        Ok(device)
    }

    /// The device with this id, or [`StoreError::UnknownDevice`].
    pub async fn device(&self, id: &str) -> Result<Device> {
        get(&mut self.acquire().await?.connection(), id).await
    }

    /// A page of devices matching `filter`, ordered by id.
    pub async fn list_devices(&self, filter: &DeviceFilter) -> Result<Vec<Device>> {
        list(&mut self.acquire().await?.connection(), filter).await
    }

    /// The devices with these ids, ordered by id (ids naming no device are left out), in three
    /// queries whatever their number: for followers applying many device changes at once.
    pub async fn devices(&self, ids: &[String]) -> Result<Vec<Device>> {
        fetch_many(&mut self.acquire().await?.connection(), ids).await
    }

    /// Moves a device through its lifecycle; see [`Transaction::set_device_state`].
    pub async fn set_device_state(&self, id: &str, to: DeviceState) -> Result<Device> {
        let mut tx = self.begin().await?;
        let device = tx.set_device_state(id, to).await?;
        tx.commit().await?;
        Ok(device)
    }

    /// Adds a device to a group; see [`Transaction::add_device_to_group`].
    pub async fn add_device_to_group(&self, id: &str, group: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.add_device_to_group(id, group).await?;
        tx.commit().await
    }

    /// Removes a device from a group; see [`Transaction::remove_device_from_group`].
    pub async fn remove_device_from_group(&self, id: &str, group: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let removed = tx.remove_device_from_group(id, group).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Sets one attribute; see [`Transaction::set_device_attribute`].
    pub async fn set_device_attribute(&self, id: &str, key: &str, value: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_device_attribute(id, key, value).await?;
        tx.commit().await
    }

    /// Removes one attribute; see [`Transaction::remove_device_attribute`].
    pub async fn remove_device_attribute(&self, id: &str, key: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let removed = tx.remove_device_attribute(id, key).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// Sets or clears the owner; see [`Transaction::set_device_owner`].
    pub async fn set_device_owner(&self, id: &str, owner: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.set_device_owner(id, owner).await?;
        tx.commit().await
    }
}
