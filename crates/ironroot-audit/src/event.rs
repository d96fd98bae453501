//! Audit events and their canonical leaf encoding.
//!
//! Everything that matters about an event is inside the hashed leaf: time, actor, event type,
//! subject, source, outcome and details. Nothing is stored beside the leaf that could be changed
//! unseen (Rekor v1 kept a signed timestamp outside its leaves and it could be altered).
//!
//! # Leaf encoding, version 1
//!
//! A leaf is the following bytes, all integers big-endian; `str` is a `u32` byte length followed
//! by that many bytes of UTF-8:
//!
//! | field | encoding |
//! |---|---|
//! | version | `u8` = `0x01` |
//! | time | `i64` seconds since 1970-01-01T00:00:00Z (UTC, POSIX: no leap seconds), then `u32` nanoseconds `< 10^9`; years 0000–9999 |
//! | actor | `str` (who acted: `operator:alice`, `device:dev-42`, `system`) |
//! | event type | `str` (what happened: the [`EventKind`] name, `cert.issued`, `mqtt.connect`) |
//! | subject kind | `str` (`device`, `certificate`, `policy`, …) |
//! | subject id | `str` |
//! | source | `str` (where from: `203.0.113.7:51234`, `cli`, empty if none) |
//! | outcome | `u8`: `0x01` success, `0x02` failure, `0x03` denied |
//! | details | `u32` count, then count × (`str` key, `str` value), keys in strictly increasing bytewise order |
//!
//! The leaf hash is `SHA-256(0x00 || leaf)` (RFC 6962). Decoding rejects anything that is not
//! exactly this form (unknown version or outcome, trailing bytes, unsorted or repeated keys,
//! invalid UTF-8, over-long fields), so every event has exactly one encoding and every encoding
//! exactly one event.

use std::collections::BTreeMap;

use crate::hash::{Hash, leaf_hash};
use crate::kind::EventKind;
use crate::time::{TimeError, Timestamp};

/// Leaf format version written by this code.
pub const LEAF_VERSION: u8 = 0x01;
/// Largest accepted encoded leaf (64 KiB): audit events are small; a bigger one is a bug or an
/// attack on storage.
pub const MAX_LEAF_LEN: usize = 64 * 1024;
/// Largest number of detail entries.
pub const MAX_DETAILS: usize = 256;

/// Result of the audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// The action was attempted and failed (bad input, internal error).
    Failure,
    /// The action was refused by authentication or authorization.
    Denied,
}

impl Outcome {
    fn code(self) -> u8 {
        match self {
            Outcome::Success => 0x01,
            Outcome::Failure => 0x02,
            Outcome::Denied => 0x03,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0x01 => Some(Outcome::Success),
            0x02 => Some(Outcome::Failure),
            0x03 => Some(Outcome::Denied),
            _ => None,
        }
    }

    /// Lowercase name used in text output (`success`, `failure`, `denied`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }
}

/// What an event acted upon.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Subject {
    /// Kind of object: `device`, `certificate`, `policy`, `release`, …
    pub kind: String,
    /// Identifier of the object within its kind.
    pub id: String,
}

/// One audit event: the content of one leaf of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened (UTC).
    pub time: Timestamp,
    /// Who acted.
    pub actor: String,
    /// What happened; its name is the event-type string of the leaf.
    pub event_type: EventKind,
    /// What was acted upon.
    pub subject: Subject,
    /// Where the request came from (network address) or `cli`; empty when not applicable.
    pub source: String,
    /// Result.
    pub outcome: Outcome,
    /// Further facts, as a sorted string map (its order is part of the canonical form).
    pub details: BTreeMap<String, String>,
}

impl Event {
    /// A successful event of `kind` by `actor`, stamped with the current time; refine it
    /// with the builder methods.
    pub fn new(kind: EventKind, actor: impl Into<String>) -> Self {
        Self {
            time: Timestamp::now(),
            actor: actor.into(),
            event_type: kind,
            subject: Subject::default(),
            source: String::new(),
            outcome: Outcome::Success,
            details: BTreeMap::new(),
        }
    }

    /// Sets the subject.
    pub fn subject(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.subject = Subject {
            kind: kind.into(),
            id: id.into(),
        };
        self
    }

    /// Sets the source address.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// Sets the outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// Sets the time (tests and imports; [`Event::new`] uses the current time).
    pub fn at(mut self, time: Timestamp) -> Self {
        self.time = time;
        self
    }

    /// Adds one detail.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.details.insert(key.into(), value.into());
        self
    }

    /// The canonical leaf bytes, or an error if the event exceeds the size limits.
    pub fn encode(&self) -> Result<Vec<u8>, LeafError> {
        if self.details.len() > MAX_DETAILS {
            return Err(LeafError::TooManyDetails(self.details.len()));
        }
        let mut out = Vec::with_capacity(128);
        out.push(LEAF_VERSION);
        out.extend_from_slice(&self.time.secs().to_be_bytes());
        out.extend_from_slice(&self.time.nanos().to_be_bytes());
        for s in [
            self.actor.as_str(),
            self.event_type.as_str(),
            self.subject.kind.as_str(),
            self.subject.id.as_str(),
            self.source.as_str(),
        ] {
            put_str(&mut out, s);
        }
        out.push(self.outcome.code());
        out.extend_from_slice(&(self.details.len() as u32).to_be_bytes());
        // BTreeMap<String, _> iterates in bytewise key order, which is the canonical order.
        for (k, v) in &self.details {
            put_str(&mut out, k);
            put_str(&mut out, v);
        }
        if out.len() > MAX_LEAF_LEN {
            return Err(LeafError::TooLarge(out.len()));
        }
        Ok(out)
    }

    /// The RFC 6962 leaf hash of the canonical encoding.
    pub fn leaf_hash(&self) -> Result<Hash, LeafError> {
        Ok(leaf_hash(&self.encode()?))
    }

    /// Decodes canonical leaf bytes (untrusted input: every malformation is a typed error).
    pub fn decode(bytes: &[u8]) -> Result<Self, LeafError> {
        if bytes.len() > MAX_LEAF_LEN {
            return Err(LeafError::TooLarge(bytes.len()));
        }
        let mut r = Reader { bytes, pos: 0 };
        let version = r.u8()?;
        if version != LEAF_VERSION {
            return Err(LeafError::Version(version));
        }
        let secs = i64::from_be_bytes(r.array()?);
        let nanos = u32::from_be_bytes(r.array()?);
        let time = Timestamp::new(secs, nanos).map_err(LeafError::Time)?;
        let actor = r.string("actor")?;
        // A name this build does not know stays as it was read (a newer writer's kind).
        let event_type = EventKind::from_leaf(r.string("event type")?);
        let kind = r.string("subject kind")?;
        let id = r.string("subject id")?;
        let source = r.string("source")?;
        let code = r.u8()?;
        let outcome = Outcome::from_code(code).ok_or(LeafError::Outcome(code))?;
        let count = u32::from_be_bytes(r.array()?) as usize;
        if count > MAX_DETAILS {
            return Err(LeafError::TooManyDetails(count));
        }
        let mut details = BTreeMap::new();
        let mut last: Option<String> = None;
        for _ in 0..count {
            let k = r.string("detail key")?;
            let v = r.string("detail value")?;
            if last
                .as_ref()
                .is_some_and(|prev| prev.as_bytes() >= k.as_bytes())
            {
                return Err(LeafError::DetailOrder);
            }
            last = Some(k.clone());
            details.insert(k, v);
        }
        if r.pos != bytes.len() {
            return Err(LeafError::TrailingBytes(bytes.len() - r.pos));
        }
        Ok(Self {
            time,
            actor,
            event_type,
            subject: Subject { kind, id },
            source,
            outcome,
            details,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Lengths beyond u32 cannot pass the MAX_LEAF_LEN check, which encode() applies afterwards.
    out.extend_from_slice(&(s.len().min(u32::MAX as usize) as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], LeafError> {
        let end = self.pos.checked_add(n).ok_or(LeafError::Truncated)?;
        let s = self.bytes.get(self.pos..end).ok_or(LeafError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, LeafError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LeafError> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    fn string(&mut self, field: &'static str) -> Result<String, LeafError> {
        let len = u32::from_be_bytes(self.array()?) as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| LeafError::Utf8(field))
    }
}

/// Why an event could not be encoded, or leaf bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LeafError {
    /// The leaf starts with a version this code does not know.
    #[error("unknown leaf version {0:#04x}")]
    Version(u8),
    /// The leaf ends in the middle of a field.
    #[error("leaf is truncated")]
    Truncated,
    /// Bytes follow the last field.
    #[error("leaf has {0} trailing bytes")]
    TrailingBytes(usize),
    /// A text field is not valid UTF-8.
    #[error("leaf field {0} is not valid UTF-8")]
    Utf8(&'static str),
    /// The time field is out of range.
    #[error("leaf time is invalid: {0}")]
    Time(TimeError),
    /// The outcome code is unknown.
    #[error("unknown outcome code {0:#04x}")]
    Outcome(u8),
    /// Detail keys are not strictly increasing (unsorted or repeated).
    #[error("leaf detail keys are not in strictly increasing order")]
    DetailOrder,
    /// More detail entries than [`MAX_DETAILS`].
    #[error("event has {0} details, at most 256 are allowed")]
    TooManyDetails(usize),
    /// The encoding is longer than [`MAX_LEAF_LEN`].
    #[error("leaf is {0} bytes, at most 65536 are allowed")]
    TooLarge(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A kind named `name` as decoding would make it (known or not).
    fn kind(name: &str) -> EventKind {
        EventKind::from_leaf(name.to_owned())
    }

    fn sample() -> Event {
        Event::new(EventKind::CertIssued, "operator:alice")
            .at(Timestamp::new(1_700_000_000, 123_456_789).unwrap())
            .subject("device", "dev-42")
            .source("203.0.113.7:51234")
            .outcome(Outcome::Denied)
            .detail("serial", "01ab")
            .detail("profile", "device")
    }

    #[test]
    fn encoding_is_the_documented_byte_layout() {
        let e = Event::new(kind("t"), "a")
            .at(Timestamp::new(1, 2).unwrap())
            .subject("k", "i")
            .source("s")
            .detail("x", "y");
        let mut want = vec![0x01];
        want.extend_from_slice(&1i64.to_be_bytes());
        want.extend_from_slice(&2u32.to_be_bytes());
        for s in ["a", "t", "k", "i", "s"] {
            want.extend_from_slice(&[0, 0, 0, 1]);
            want.extend_from_slice(s.as_bytes());
        }
        want.push(0x01);
        want.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, b'x', 0, 0, 0, 1, b'y']);
        assert_eq!(e.encode().unwrap(), want);
    }

    #[test]
    fn round_trip_and_details_are_sorted() {
        let e = sample();
        let bytes = e.encode().unwrap();
        assert_eq!(Event::decode(&bytes).unwrap(), e);
        // "profile" < "serial": the encoding lists profile first whatever the insertion order.
        let p = bytes.windows(7).position(|w| w == b"profile").unwrap();
        let s = bytes.windows(6).position(|w| w == b"serial").unwrap();
        assert!(p < s);
    }

    #[test]
    fn rejects_malformed_leaves() {
        let bytes = sample().encode().unwrap();
        let mut v = bytes.clone();
        v[0] = 2;
        assert_eq!(Event::decode(&v), Err(LeafError::Version(2)));
        assert_eq!(
            Event::decode(&bytes[..bytes.len() - 1]),
            Err(LeafError::Truncated)
        );
        let mut v = bytes.clone();
        v.push(0);
        assert_eq!(Event::decode(&v), Err(LeafError::TrailingBytes(1)));
        let mut v = bytes.clone();
        v[9] = 0xff; // nanos high byte
        assert!(matches!(Event::decode(&v), Err(LeafError::Time(_))));
        // Swap the two detail entries (same lengths impossible here, so build by hand).
        let e = Event::new(kind("t"), "a").at(Timestamp::new(0, 0).unwrap());
        let mut v = e.encode().unwrap();
        v.truncate(v.len() - 4);
        v.extend_from_slice(&[0, 0, 0, 2]);
        for k in ["b", "a"] {
            v.extend_from_slice(&[0, 0, 0, 1]);
            v.extend_from_slice(k.as_bytes());
            v.extend_from_slice(&[0, 0, 0, 0]);
        }
        assert_eq!(Event::decode(&v), Err(LeafError::DetailOrder));
    }

    #[test]
    fn oversized_events_are_refused() {
        let e = sample().detail("blob", "x".repeat(MAX_LEAF_LEN));
        assert!(matches!(e.encode(), Err(LeafError::TooLarge(_))));
    }

    fn event_strategy() -> impl Strategy<Value = Event> {
        (
            (-62_167_219_200i64..=253_402_300_799, 0u32..1_000_000_000),
            ".{0,20}",
            ".{0,20}",
            (".{0,10}", ".{0,10}"),
            ".{0,20}",
            0u8..3,
            proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..6),
        )
            .prop_map(
                |((s, n), actor, ty, (kind, id), source, o, details)| Event {
                    time: Timestamp::new(s, n).unwrap(),
                    actor,
                    event_type: EventKind::from_leaf(ty),
                    subject: Subject { kind, id },
                    source,
                    outcome: [Outcome::Success, Outcome::Failure, Outcome::Denied][o as usize],
                    details,
                },
            )
    }

    proptest! {
        #[test]
        fn any_event_round_trips(e in event_strategy()) {
            prop_assert_eq!(Event::decode(&e.encode().unwrap()).unwrap(), e);
        }

        #[test]
        fn decoding_is_injective(e in event_strategy(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            // Whatever decodes must re-encode to exactly the same bytes (one encoding per event).
            if let Ok(d) = Event::decode(&bytes) {
                prop_assert_eq!(d.encode().unwrap(), bytes);
            }
            let enc = e.encode().unwrap();
            prop_assert_eq!(Event::decode(&enc).unwrap().encode().unwrap(), enc);
        }

        #[test]
        fn decoding_mutated_leaves_never_panics(e in event_strategy(), at in any::<usize>(), b in any::<u8>()) {
            let mut enc = e.encode().unwrap();
            let i = at % enc.len();
            enc[i] = b;
            if let Ok(d) = Event::decode(&enc) {
                prop_assert_eq!(d.encode().unwrap(), enc);
            }
        }
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;

    #[test]
    fn a_kind_this_build_does_not_know_decodes_and_re_encodes_byte_for_byte() {
        let known = Event::new(EventKind::DeviceAdded, "operator:alice")
            .at(Timestamp::new(5, 0).unwrap())
            .subject("device", "d-1");
        let bytes = known.encode().unwrap();
        // The same leaf with a name from a newer version (same length, so only the name moves).
        let newer = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("device.added", "device.moved");
        let back = Event::decode(newer.as_bytes()).unwrap();
        assert!(!back.event_type.is_known());
        assert_eq!(back.event_type.as_str(), "device.moved");
        assert_eq!(back.encode().unwrap(), newer.as_bytes());
        assert_eq!(
            Event::decode(&bytes).unwrap().event_type,
            EventKind::DeviceAdded
        );
    }
}
