//! Which devices an incident contains: named devices, a group, or a query over the registry.

use std::collections::BTreeMap;

use ironroot_store::{Device, DeviceFilter, DeviceState, MAX_PAGE, Store, StoreError};

use super::IncidentError;

/// Most devices one incident may contain (a query that matches more is refused, not cut short).
pub const MAX_TARGETS: usize = 100_000;

/// A device query: space-separated `key=value` terms, all of which must hold.
///
/// Keys: `group`, `state`, `owner` (looked up in the registry's indexes), `attr.<name>` (a device
/// attribute), `id` (exact, or a prefix ending in `*`). Example: `group=line-7 attr.fw=1.2.0`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceQuery {
    /// `group=`: members of this group.
    pub group: Option<String>,
    /// `state=`: devices in this lifecycle state.
    pub state: Option<DeviceState>,
    /// `owner=`: devices of this owner.
    pub owner: Option<String>,
    /// `attr.<name>=`: attributes that must have these values.
    pub attributes: BTreeMap<String, String>,
    /// `id=`: an exact id, or a prefix when it ends in `*`.
    pub id: Option<String>,
}

impl DeviceQuery {
    /// Parses a query; refuses unknown keys, repeated keys, empty values and an empty query
    /// (which would match the whole fleet).
    pub fn parse(text: &str) -> Result<Self, IncidentError> {
        let bad = |why: String| IncidentError::BadQuery(why);
        let mut q = DeviceQuery::default();
        let mut seen = std::collections::BTreeSet::new();
        for term in text.split_whitespace() {
            let (key, value) = term
                .split_once('=')
                .ok_or_else(|| bad(format!("term {term:?} is not key=value")))?;
            if value.is_empty() {
                return Err(bad(format!("term {term:?} has an empty value")));
            }
            if !seen.insert(key.to_owned()) {
                return Err(bad(format!("key {key:?} appears twice")));
            }
            match key {
                "group" => q.group = Some(value.to_owned()),
                "owner" => q.owner = Some(value.to_owned()),
                "id" => q.id = Some(value.to_owned()),
                "state" => {
                    q.state = Some(DeviceState::from_name(value).ok_or_else(|| {
                        bad(format!(
                            "state {value:?} is not one of manufactured, provisioned, active, \
                             quarantined, in_repair, revoked, decommissioned"
                        ))
                    })?)
                }
                k => match k.strip_prefix("attr.") {
                    Some(name) if !name.is_empty() => {
                        q.attributes.insert(name.to_owned(), value.to_owned());
                    }
                    _ => {
                        return Err(bad(format!(
                            "unknown key {key:?} (use group, state, owner, id or attr.<name>)"
                        )));
                    }
                },
            }
        }
        if seen.is_empty() {
            return Err(bad(
                "the query is empty: it would match every device; name at least one term".into(),
            ));
        }
        Ok(q)
    }

    /// Whether `device` matches every term.
    pub fn matches(&self, device: &Device) -> bool {
        let id_ok = match self.id.as_deref() {
            None => true,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => device.id.starts_with(prefix),
                None => device.id == p,
            },
        };
        id_ok
            && self
                .group
                .as_ref()
                .is_none_or(|g| device.groups.contains(g))
            && self.state.is_none_or(|s| device.state == s)
            && self
                .owner
                .as_ref()
                .is_none_or(|o| device.owner.as_ref() == Some(o))
            && self
                .attributes
                .iter()
                .all(|(k, v)| device.attributes.get(k) == Some(v))
    }

    /// Every matching device, read page by page; refuses more than [`MAX_TARGETS`].
    pub(crate) async fn resolve(&self, store: &Store) -> Result<Vec<Device>, IncidentError> {
        let mut filter = DeviceFilter {
            group: self.group.clone(),
            state: self.state,
            owner: self.owner.clone(),
            after: None,
            limit: Some(MAX_PAGE),
        };
        let mut found = Vec::new();
        loop {
            let page = store
                .list_devices(&filter)
                .await
                .map_err(IncidentError::Store)?;
            let Some(last) = page.last() else { break };
            filter.after = Some(last.id.clone());
            let full = page.len() as u32 == MAX_PAGE;
            found.extend(page.into_iter().filter(|d| self.matches(d)));
            if found.len() > MAX_TARGETS {
                return Err(IncidentError::TooManyTargets(MAX_TARGETS));
            }
            if !full {
                break;
            }
        }
        Ok(found)
    }
}

/// Devices named one by one: each read from the registry; unknown ids are kept aside.
pub(crate) async fn named(
    store: &Store,
    ids: &[String],
) -> Result<(Vec<Device>, Vec<String>), IncidentError> {
    if ids.len() > MAX_TARGETS {
        return Err(IncidentError::TooManyTargets(MAX_TARGETS));
    }
    let mut found = Vec::with_capacity(ids.len());
    let mut unknown = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        match store.device(id).await {
            Ok(d) => found.push(d),
            Err(StoreError::UnknownDevice(_)) | Err(StoreError::InvalidInput { .. }) => {
                unknown.push(id.clone())
            }
            Err(e) => return Err(IncidentError::Store(e)),
        }
    }
    Ok((found, unknown))
}
