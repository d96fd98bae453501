//! Checkpoints (<https://c2sp.org/tlog-checkpoint>): a signed note whose text is the log's
//! origin, tree size and root hash.
//!
//! ```text
//! ironroot.example/audit        <- origin (also the signing key's name)
//! 1234                          <- tree size, decimal, no leading zeros
//! 9qTg…3s=                      <- base64 RFC 6962 root hash
//!
//! — ironroot.example/audit q2Xc…==
//! ```

use crate::hash::Hash;
use crate::note::{NoteError, NoteSigner, NoteVerifier};

/// The unsigned content of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity; equal to the signing key's name.
    pub origin: String,
    /// Number of leaves.
    pub size: u64,
    /// RFC 6962 root hash of the first `size` leaves.
    pub root: Hash,
}

/// Why a checkpoint was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The signed-note layer rejected it (format or signature).
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The text does not have the origin / size / root lines.
    #[error("checkpoint text is malformed: {0}")]
    Malformed(&'static str),
    /// The origin line differs from the expected log identity.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    Origin {
        /// The origin the verifier expected.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        )
    }

    /// Parses checkpoint note text (extension lines, if any, are ignored; this log writes none).
    pub fn parse_text(text: &str) -> Result<Self, CheckpointError> {
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::Malformed("text must end in a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(CheckpointError::Malformed("missing origin"))?;
        let size = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing tree size"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(CheckpointError::Malformed(
                "tree size is not a canonical decimal",
            ));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| CheckpointError::Malformed("tree size is too large"))?;
        let root = lines
            .next()
            .ok_or(CheckpointError::Malformed("missing root hash"))?;
        let root = Hash::from_base64(root)
            .map_err(|_| CheckpointError::Malformed("root hash is not base64 of 32 bytes"))?;
        if lines.any(str::is_empty) {
            return Err(CheckpointError::Malformed("empty extension line"));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// Signs the checkpoint with the log key; the key's name must be the origin.
    pub fn sign(&self, signer: &NoteSigner) -> Result<SignedCheckpoint, CheckpointError> {
        if signer.name() != self.origin {
            return Err(CheckpointError::Origin {
                expected: signer.name().to_owned(),
                found: self.origin.clone(),
            });
        }
        Ok(SignedCheckpoint {
            checkpoint: self.clone(),
            note: signer.sign(&self.to_text())?,
        })
    }
}

/// A checkpoint together with its signed-note text (what storage and witnesses keep).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed content (not trusted until [`SignedCheckpoint::verify`] succeeds).
    pub checkpoint: Checkpoint,
    /// The complete signed note.
    pub note: String,
}

/// A checkpoint whose signature by the log key verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    /// The verified content.
    pub checkpoint: Checkpoint,
    /// The signed note it came from.
    pub note: String,
}

impl SignedCheckpoint {
    /// Verifies a checkpoint note with the log's key. The origin must equal the key name.
    pub fn verify_note(
        note: &str,
        verifier: &NoteVerifier,
    ) -> Result<VerifiedCheckpoint, CheckpointError> {
        let verified = verifier.verify(note)?;
        let checkpoint = Checkpoint::parse_text(verified.text)?;
        if checkpoint.origin != verifier.name() {
            return Err(CheckpointError::Origin {
                expected: verifier.name().to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(VerifiedCheckpoint {
            checkpoint,
            note: note.to_owned(),
        })
    }

    /// Verifies this checkpoint's note and that it says what [`SignedCheckpoint::checkpoint`]
    /// claims.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<VerifiedCheckpoint, CheckpointError> {
        let v = Self::verify_note(&self.note, verifier)?;
        if v.checkpoint != self.checkpoint {
            return Err(CheckpointError::Malformed(
                "stored size or root differs from the signed text",
            ));
        }
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;

    fn signer() -> NoteSigner {
        NoteSigner::from_seed("ironroot.test/audit", &[3u8; 32]).unwrap()
    }

    #[test]
    fn signed_checkpoint_round_trips() {
        let cp = Checkpoint {
            origin: "ironroot.test/audit".into(),
            size: 42,
            root: leaf_hash(b"x"),
        };
        let signed = cp.sign(&signer()).unwrap();
        let text = cp.to_text();
        assert!(signed.note.starts_with(&text));
        assert_eq!(text.lines().count(), 3);
        let v = signed.verify(signer().verifier()).unwrap();
        assert_eq!(v.checkpoint, cp);
    }

    #[test]
    fn rejects_bad_text_and_foreign_origins() {
        for bad in [
            "o\n012\nAAAA\n",
            "o\n12\n",
            "\n1\nAAAA\n",
            "o\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
            "o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "o\n99999999999999999999\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        ] {
            assert!(Checkpoint::parse_text(bad).is_err(), "{bad:?}");
        }
        let cp = Checkpoint {
            origin: "someone.else/log".into(),
            size: 0,
            root: leaf_hash(b""),
        };
        assert!(matches!(
            cp.sign(&signer()),
            Err(CheckpointError::Origin { .. })
        ));
        // Same key material, different name: the verifier rejects the origin.
        let other = NoteSigner::from_seed("someone.else/log", &[3u8; 32]).unwrap();
        let signed = cp.sign(&other).unwrap();
        assert!(SignedCheckpoint::verify_note(&signed.note, signer().verifier()).is_err());
    }

    #[test]
    fn a_checkpoint_claiming_other_content_than_its_note_is_rejected() {
        let cp = Checkpoint {
            origin: "ironroot.test/audit".into(),
            size: 5,
            root: leaf_hash(b"a"),
        };
        let mut signed = cp.sign(&signer()).unwrap();
        signed.checkpoint.size = 6;
        assert!(signed.verify(signer().verifier()).is_err());
    }

    proptest! {
        #[test]
        fn parse_text_never_panics(s in "(.|\n){0,200}") {
            let _ = Checkpoint::parse_text(&s);
        }
    }
}
