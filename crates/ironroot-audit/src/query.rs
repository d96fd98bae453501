//! Selecting and rendering audit entries: one filter and one JSON form for the CLI
//! (`ironroot audit show`) and the operator API (`GET /api/v1/audit/events`).

use crate::{Event, EventKind, Timestamp, leaf_hash};

/// What `--type` / `type=` selects: one kind, or every kind of an area (`cert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeFilter {
    /// Exactly this kind.
    Kind(EventKind),
    /// Every kind whose name starts with `<area>.`.
    Area(String),
}

impl TypeFilter {
    /// A known kind or area. Names this build does not know are refused even though the log
    /// may hold them (written by a newer version): a typo must not silently match nothing.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(kind) = EventKind::from_name(text) {
            return Ok(Self::Kind(kind));
        }
        let mut areas: Vec<&str> = EventKind::ALL.iter().map(EventKind::area).collect();
        areas.dedup();
        if areas.contains(&text) {
            return Ok(Self::Area(text.to_owned()));
        }
        Err(format!(
            "unknown event type {text:?}; expected one of: {} (or an area: {})",
            EventKind::names(),
            areas.join(", ")
        ))
    }
}

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only entries about this device (as subject, actor `device:<id>` or `device` detail).
    pub device: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries of this kind or area.
    pub event_type: Option<TypeFilter>,
}

impl EventFilter {
    /// Whether `e` is selected.
    pub fn matches(&self, e: &Event) -> bool {
        if let Some(d) = &self.device {
            let about = (e.subject.kind == "device" && &e.subject.id == d)
                || e.actor.strip_prefix("device:") == Some(d.as_str())
                || e.details.get("device") == Some(d);
            if !about {
                return false;
            }
        }
        if self.since.is_some_and(|t| e.time < t) {
            return false;
        }
        match &self.event_type {
            Some(TypeFilter::Kind(k)) if &e.event_type != k => false,
            Some(TypeFilter::Area(a)) if e.event_type.area() != a => false,
            _ => true,
        }
    }
}

/// The JSON form of entry `index` (decoded `e`, raw `leaf` bytes): what `audit show --json`
/// prints per line and the API returns.
pub fn entry_json(index: u64, e: &Event, leaf: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "index": index,
        "time": e.time.to_string(),
        "type": e.event_type.as_str(),
        "actor": e.actor,
        "subject": { "kind": e.subject.kind, "id": e.subject.id },
        "source": e.source,
        "outcome": e.outcome.as_str(),
        "details": e.details,
        "leaf_hash": leaf_hash(leaf).to_hex(),
    })
}
