//! The ids of accepted commands, kept until their command expires.

use super::{CLOCK_TOLERANCE_SECS, CommandError};

/// Most live ids remembered at once; beyond it new commands are refused (fail closed).
pub const MAX_TRACKED: usize = 1_024;

/// Accepted command ids with their `expires_at`. An id is dropped only once its command could
/// no longer verify anyway, so forgetting never reopens a replay.
#[derive(Debug, Clone, Default)]
pub struct ReplaySet {
    ids: Vec<(String, i64)>,
}

impl ReplaySet {
    /// Records `id` (valid until `expires_at`) at CA time `now`; refuses a known id.
    pub fn insert(&mut self, id: &str, expires_at: i64, now: i64) -> Result<(), CommandError> {
        // Kept past expiry by the clock tolerance: a device whose estimate steps back a little
        // still recognises the id.
        self.ids
            .retain(|(_, exp)| exp.saturating_add(CLOCK_TOLERANCE_SECS) > now);
        if self.ids.iter().any(|(known, _)| known == id) {
            return Err(CommandError::Replayed(id.to_owned()));
        }
        if self.ids.len() >= MAX_TRACKED {
            return Err(CommandError::ReplaySetFull);
        }
        self.ids.push((id.to_owned(), expires_at));
        Ok(())
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}
