//! [`Scanner`]: runs every detector over the input and collects a [`Report`].
//!
//! Bounds: each detector is one linear pass (literal anchors through one Aho-Corasick
//! automaton or `memmem`) plus bounded work per anchor: a PEM body at most
//! [`crate::keys::MAX_PEM`] bytes, a DER candidate at most [`crate::keys::MAX_DER`], a text
//! anchor at most a few hundred bytes of look-ahead. Structural parse attempts have a budget
//! proportional to the input, and findings are capped, so memory and time stay linear in the
//! input whatever its contents.

use crate::container::Container;
use crate::finding::{Finding, FindingKind, Report, Severity};
use crate::keys::KeyMaterial;
use crate::{ec, keys, text, weak};

/// Default cap on the findings of one report.
pub const DEFAULT_MAX_FINDINGS: usize = 10_000;

/// The scanner. Build it with [`Scanner::new`], adjust with the builder methods, then call
/// [`Scanner::scan`] on the bytes of an image.
#[derive(Debug, Clone)]
pub struct Scanner {
    min_severity: Severity,
    max_findings: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// A scanner reporting every severity, capped at [`DEFAULT_MAX_FINDINGS`] findings.
    pub fn new() -> Self {
        Self {
            min_severity: Severity::Info,
            max_findings: DEFAULT_MAX_FINDINGS,
        }
    }

    /// Reports only findings at or above `min` (the cap then counts only those).
    pub fn min_severity(mut self, min: Severity) -> Self {
        self.min_severity = min;
        self
    }

    /// Caps the number of findings; [`Report::truncated`] says when the cap dropped some.
    pub fn max_findings(mut self, max: usize) -> Self {
        self.max_findings = max;
        self
    }

    /// The cap on findings.
    pub fn findings_cap(&self) -> usize {
        self.max_findings
    }

    /// Scans `data` (a whole file: raw, MCUboot or ESP image). Never fails and never panics;
    /// offsets in the report are offsets in `data`.
    pub fn scan(&self, data: &[u8]) -> Report {
        let container = Container::detect(data);
        let mut ctx = Ctx::new(data, self.min_severity, self.max_findings);
        if let Container::Mcuboot {
            payload,
            encrypted: true,
        } = &container
        {
            ctx.push(
                FindingKind::Container,
                Severity::Info,
                payload.offset as usize,
                payload.len as usize,
                "MCUboot payload is encrypted: only header and TLVs were scannable; scan the \
                 plaintext build output too"
                    .into(),
            );
        }
        // Order matters: key and certificate structures are found first so that the raw
        // scalar detector does not report bytes inside a key it already parsed.
        keys::scan_pem(&mut ctx);
        keys::scan_der(&mut ctx);
        keys::match_identities(&mut ctx);
        ec::scan(&mut ctx);
        text::scan(&mut ctx);
        weak::scan(&mut ctx);
        if ctx.budget_exhausted {
            ctx.push(
                FindingKind::Container,
                Severity::Info,
                0,
                data.len(),
                "structure parse budget exhausted: some DER candidates were not examined".into(),
            );
        }
        let mut findings = ctx.findings;
        findings.sort_by(|a, b| {
            a.offset
                .cmp(&b.offset)
                .then(b.severity.cmp(&a.severity))
                .then(a.length.cmp(&b.length))
        });
        Report {
            container,
            scanned_len: data.len() as u64,
            findings,
            truncated: ctx.truncated,
        }
    }
}

/// A private key or certificate found so far, with the public key it holds or implies.
#[derive(Debug)]
pub(crate) struct KeyHit {
    pub offset: usize,
    pub material: KeyMaterial,
}

/// A certificate found so far.
#[derive(Debug)]
pub(crate) struct CertHit {
    pub offset: usize,
    pub length: usize,
    pub material: KeyMaterial,
    pub subject: String,
}

/// The state shared by the detectors of one scan.
pub(crate) struct Ctx<'a> {
    pub data: &'a [u8],
    findings: Vec<Finding>,
    min: Severity,
    max: usize,
    truncated: bool,
    /// Byte ranges of parsed structures (keys, certificates), half-open.
    covered: Vec<(usize, usize)>,
    pub keys: Vec<KeyHit>,
    pub certs: Vec<CertHit>,
    /// Remaining structural parse attempts (DER candidates).
    pub budget: usize,
    pub budget_exhausted: bool,
}

/// Most parsed structures remembered for overlap checks and key matching.
const MAX_STRUCTURES: usize = 4096;

impl<'a> Ctx<'a> {
    fn new(data: &'a [u8], min: Severity, max: usize) -> Self {
        Self {
            data,
            findings: Vec::new(),
            min,
            max,
            truncated: false,
            covered: Vec::new(),
            keys: Vec::new(),
            certs: Vec::new(),
            // One attempt per 16 input bytes plus a floor: real images have far fewer
            // candidates; hostile ones (repeated `02 01 00`) stay linear.
            budget: data.len() / 16 + 1024,
            budget_exhausted: false,
        }
    }

    /// Records a finding unless below the minimum severity or over the cap.
    pub fn push(
        &mut self,
        kind: FindingKind,
        severity: Severity,
        offset: usize,
        length: usize,
        detail: String,
    ) {
        if severity < self.min {
            return;
        }
        if self.findings.len() >= self.max {
            self.truncated = true;
            return;
        }
        self.findings.push(Finding {
            kind,
            severity,
            offset: offset as u64,
            length: length as u64,
            detail,
        });
    }

    /// Takes one structural parse attempt from the budget; `false` when it is spent.
    pub fn take_attempt(&mut self) -> bool {
        if self.budget == 0 {
            self.budget_exhausted = true;
            return false;
        }
        self.budget -= 1;
        true
    }

    /// Marks `start..end` as a parsed structure.
    pub fn cover(&mut self, start: usize, end: usize) {
        if self.covered.len() < MAX_STRUCTURES {
            self.covered.push((start, end));
        }
    }

    /// Whether `start..end` overlaps a parsed structure.
    pub fn is_covered(&self, start: usize, end: usize) -> bool {
        self.covered.iter().any(|&(s, e)| start < e && s < end)
    }

    /// Remembers a private key for identity matching.
    pub fn add_key(&mut self, offset: usize, material: KeyMaterial) {
        if self.keys.len() < MAX_STRUCTURES {
            self.keys.push(KeyHit { offset, material });
        }
    }

    /// Remembers a certificate for identity matching.
    pub fn add_cert(&mut self, hit: CertHit) {
        if self.certs.len() < MAX_STRUCTURES {
            self.certs.push(hit);
        }
    }
}
