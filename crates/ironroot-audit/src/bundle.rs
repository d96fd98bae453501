//! Self-contained inclusion proofs for third parties: the entry, its audit path and the signed
//! checkpoint it is proven against, in one text document.
//!
//! ```text
//! ironroot-audit-proof/v1
//! index: 5
//! leaf: <base64 of the canonical leaf bytes>
//! path: <base64 hash>            (zero or more, leaf upwards, RFC 9162 inclusion_path)
//! checkpoint:
//! <the signed checkpoint note, verbatim>
//! ```
//!
//! A checker needs only this text and the log's verifier key (obtained out of band): it checks
//! the checkpoint signature, recomputes the leaf hash from the leaf bytes and runs RFC 9162
//! §2.1.3.2 against the checkpoint's root and size.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{CheckpointError, SignedCheckpoint, VerifiedCheckpoint};
use crate::event::{Event, LeafError, MAX_LEAF_LEN};
use crate::hash::{Hash, leaf_hash};
use crate::note::NoteVerifier;
use crate::proof::{InclusionProof, ProofError};

const HEADER: &str = "ironroot-audit-proof/v1";
/// Longest path accepted (a tree of 2^64 leaves needs 64 hashes).
const MAX_PATH: usize = 64;

/// An inclusion proof bundle as produced by the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofBundle {
    /// Index of the entry.
    pub index: u64,
    /// Canonical leaf bytes of the entry.
    pub leaf: Vec<u8>,
    /// Audit path (sibling hashes from the leaf upwards).
    pub path: Vec<Hash>,
    /// The signed checkpoint note the proof is for.
    pub checkpoint_note: String,
}

/// Why a bundle could not be parsed or did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The text is not a bundle of this format.
    #[error("malformed proof: {0}")]
    Malformed(&'static str),
    /// The checkpoint is not validly signed by the given key.
    #[error("proof checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The leaf bytes are not a valid event.
    #[error("proof entry: {0}")]
    Leaf(#[from] LeafError),
    /// The audit path does not lead from the entry to the checkpoint's root.
    #[error("inclusion proof does not verify: {0}")]
    Proof(#[from] ProofError),
}

/// A bundle whose checkpoint signature and inclusion proof verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEntry {
    /// Index of the entry in the log.
    pub index: u64,
    /// The decoded event.
    pub event: Event,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The checkpoint it is included under.
    pub checkpoint: VerifiedCheckpoint,
}

impl ProofBundle {
    /// The text form.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "{HEADER}\nindex: {}\nleaf: {}\n",
            self.index,
            BASE64.encode(&self.leaf)
        );
        for h in &self.path {
            out.push_str("path: ");
            out.push_str(&h.to_base64());
            out.push('\n');
        }
        out.push_str("checkpoint:\n");
        out.push_str(&self.checkpoint_note);
        out
    }

    /// Parses the text form (untrusted input; nothing is verified yet).
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let (head, note) = text
            .split_once("\ncheckpoint:\n")
            .ok_or(BundleError::Malformed("missing checkpoint section"))?;
        let mut lines = head.split('\n');
        if lines.next().map(|l| l.trim_end_matches('\r')) != Some(HEADER) {
            return Err(BundleError::Malformed(
                "missing ironroot-audit-proof/v1 header",
            ));
        }
        let index = lines
            .next()
            .and_then(|l| l.strip_prefix("index: "))
            .ok_or(BundleError::Malformed("missing index line"))?;
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BundleError::Malformed("index is not a decimal number"));
        }
        let index = index
            .parse()
            .map_err(|_| BundleError::Malformed("index is too large"))?;
        let leaf = lines
            .next()
            .and_then(|l| l.strip_prefix("leaf: "))
            .ok_or(BundleError::Malformed("missing leaf line"))?;
        if leaf.len() > MAX_LEAF_LEN * 4 / 3 + 4 {
            return Err(BundleError::Malformed("leaf is too large"));
        }
        let leaf = BASE64
            .decode(leaf)
            .map_err(|_| BundleError::Malformed("leaf is not base64"))?;
        let mut path = Vec::new();
        for line in lines {
            let h = line
                .strip_prefix("path: ")
                .ok_or(BundleError::Malformed("unexpected line before checkpoint"))?;
            if path.len() == MAX_PATH {
                return Err(BundleError::Malformed("audit path is too long"));
            }
            path.push(
                Hash::from_base64(h)
                    .map_err(|_| BundleError::Malformed("path element is not a base64 hash"))?,
            );
        }
        Ok(Self {
            index,
            leaf,
            path,
            checkpoint_note: note.to_owned(),
        })
    }

    /// Checks the checkpoint signature with the log key, decodes the entry and verifies the
    /// inclusion proof against the checkpoint.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<VerifiedEntry, BundleError> {
        let checkpoint = SignedCheckpoint::verify_note(&self.checkpoint_note, verifier)?;
        let event = Event::decode(&self.leaf)?;
        let hash = leaf_hash(&self.leaf);
        InclusionProof {
            index: self.index,
            size: checkpoint.checkpoint.size,
            path: self.path.clone(),
        }
        .verify(&hash, &checkpoint.checkpoint.root)?;
        Ok(VerifiedEntry {
            index: self.index,
            event,
            leaf_hash: hash,
            checkpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Checkpoint;
    use crate::note::NoteSigner;
    use crate::time::Timestamp;
    use crate::tree::{inclusion_plan, reference_root};
    use proptest::prelude::*;

    fn bundle(n: u64, index: u64) -> (ProofBundle, NoteSigner) {
        let signer = NoteSigner::from_seed("ironroot.test/audit", &[5; 32]).unwrap();
        let leaves: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                Event::new(crate::EventKind::OperatorNote, "a")
                    .at(Timestamp::new(i as i64, 0).unwrap())
                    .encode()
                    .unwrap()
            })
            .collect();
        let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l)).collect();
        let path = inclusion_plan(index, n)
            .resolve::<()>(|nd| {
                let s = (nd.index << nd.level) as usize;
                Ok(reference_root(&hashes[s..s + (1 << nd.level)]))
            })
            .unwrap();
        let cp = Checkpoint {
            origin: "ironroot.test/audit".into(),
            size: n,
            root: reference_root(&hashes),
        }
        .sign(&signer)
        .unwrap();
        (
            ProofBundle {
                index,
                leaf: leaves[index as usize].clone(),
                path,
                checkpoint_note: cp.note,
            },
            signer,
        )
    }

    #[test]
    fn bundle_round_trips_and_verifies() {
        let (b, signer) = bundle(13, 6);
        let text = b.to_text();
        let parsed = ProofBundle::parse(&text).unwrap();
        assert_eq!(parsed, b);
        let v = parsed.verify(signer.verifier()).unwrap();
        assert_eq!(v.index, 6);
        assert_eq!(v.event.time.secs(), 6);
    }

    #[test]
    fn tampered_bundles_are_rejected() {
        let (b, signer) = bundle(13, 6);
        let mut wrong_index = b.clone();
        wrong_index.index = 7;
        assert!(matches!(
            wrong_index.verify(signer.verifier()),
            Err(BundleError::Proof(_))
        ));
        let (other, _) = bundle(13, 7);
        let mut wrong_leaf = b.clone();
        wrong_leaf.leaf = other.leaf;
        assert!(matches!(
            wrong_leaf.verify(signer.verifier()),
            Err(BundleError::Proof(_))
        ));
        let stranger = NoteSigner::from_seed("ironroot.test/audit", &[6; 32]).unwrap();
        assert!(matches!(
            b.verify(stranger.verifier()),
            Err(BundleError::Checkpoint(_))
        ));
        assert!(ProofBundle::parse("nonsense").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "(.|\n){0,400}") {
            let _ = ProofBundle::parse(&s);
        }

        #[test]
        fn any_single_byte_change_is_rejected_or_harmless(at in any::<usize>(), b in 0x20u8..0x7f) {
            let (bundle, signer) = bundle(9, 4);
            let mut text = bundle.to_text().into_bytes();
            let i = at % text.len();
            if text[i] == b || text[i] == b'\n' {
                return Ok(());
            }
            text[i] = b;
            if let Ok(s) = String::from_utf8(text)
                && let Ok(p) = ProofBundle::parse(&s)
                && let Ok(v) = p.verify(signer.verifier())
            {
                // Only changes that keep the meaning can still verify (for instance in an
                // ignored foreign signature line): what is proven is the original statement.
                prop_assert_eq!(v.index, 4);
                prop_assert_eq!(p.leaf, bundle.leaf);
            }
        }
    }
}
