//! Who is calling: the TLS client certificate of the connection, HTTP Basic (device id + claim
//! token) and the operator's bearer token.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ironroot_pki::{ClientIdentity, PeerKind};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// What the TLS layer established about a connection; attached to every request on it.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The verified client certificate, if one was presented.
    pub client: Option<Arc<PeerCert>>,
}

/// A client certificate the verifier accepted (chain, validity, not revoked).
#[derive(Debug)]
pub struct PeerCert {
    /// Its ironroot identity (device, bootstrap or operator).
    pub identity: ClientIdentity,
}

impl Conn {
    /// The identity if it is of `kind`.
    pub fn identity_of(&self, kind: PeerKind) -> Option<&ClientIdentity> {
        self.client
            .as_ref()
            .map(|c| &c.identity)
            .filter(|i| i.kind() == kind)
    }
}

/// HTTP Basic credentials: user (device id) and password (claim token, wiped on drop).
pub struct Basic {
    /// The user name as sent.
    pub user: String,
    /// The password.
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Reads `Authorization: Basic …`; `None` when absent or malformed.
pub fn basic(headers: &HeaderMap) -> Option<Basic> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = Zeroizing::new(STANDARD.decode(rest.trim()).ok()?);
    let text = std::str::from_utf8(&decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(Basic {
        user: user.to_owned(),
        password: Zeroizing::new(password.to_owned()),
    })
}

/// Reads `Authorization: Bearer …`.
pub fn bearer(headers: &HeaderMap) -> Option<Zeroizing<String>> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| Zeroizing::new(rest.trim().to_owned()))
}

/// The operator token, held as its SHA-256: comparisons hash the candidate and compare the
/// digests in constant time (no early exit, no length leak).
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// From the token text.
    pub fn new(token: &str) -> Self {
        Self(Sha256::digest(token.trim().as_bytes()).into())
    }

    /// Whether `candidate` is the token.
    pub fn matches(&self, candidate: &str) -> bool {
        let h: [u8; 32] = Sha256::digest(candidate.as_bytes()).into();
        h.ct_eq(&self.0).into()
    }
}

/// Who an operator request came from, for the audit log.
pub fn operator_actor(conn: &Conn, headers: &HeaderMap, token: &AdminToken) -> Option<String> {
    if let Some(op) = conn.identity_of(PeerKind::Operator) {
        return Some(format!("operator:{}", op.id()));
    }
    let t = bearer(headers)?;
    token.matches(&t).then(|| "operator:admin-token".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn basic_credentials_round_trip(user in "[^:]{0,40}", password in ".{0,80}") {
            crate::fuzzing::check_basic_round_trip(&user, &password);
        }

        #[test]
        fn any_header_value_gives_credentials_or_nothing(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
            crate::fuzzing::basic_auth(&raw);
        }
    }

    #[test]
    fn admin_token_compares_exactly() {
        let t = AdminToken::new("s3cret-token\n");
        assert!(t.matches("s3cret-token"));
        assert!(!t.matches("s3cret-toke"));
        assert!(!t.matches(""));
    }

    #[test]
    fn basic_parses_and_rejects_garbage() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Basic ZGV2LTE6dG9r".parse().unwrap(),
        );
        let b = basic(&h).unwrap();
        assert_eq!(b.user, "dev-1");
        assert_eq!(b.password.as_str(), "tok");
        h.insert(
            axum::http::header::AUTHORIZATION,
            "Basic !!!".parse().unwrap(),
        );
        assert!(basic(&h).is_none());
    }
}
