//! Entry points for the cargo-fuzz targets in `/fuzz` (feature `fuzzing`). Not a stable API.
//!
//! Each function takes arbitrary bytes, runs one parser of untrusted input and panics only when
//! an invariant of that parser breaks (the fuzzer reports panics as crashes).

use axum::http::{HeaderMap, HeaderValue, header::AUTHORIZATION};

/// The operator's CSV import (`POST /api/v1/devices/import`, `text/csv`): any text parses to
/// devices or a one-line error; parsed values never carry a separator, quote or line break.
pub fn csv_import(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    check_csv(text);
}

/// Checks the invariants of [`crate::operator::parse_csv`] on `text` (shared with the
/// property tests).
pub(crate) fn check_csv(text: &str) {
    let rows = text.lines().filter(|l| !l.trim().is_empty()).count();
    match crate::operator::parse_csv(text) {
        Ok(devices) => {
            assert!(devices.len() < rows.max(1), "more devices than data lines");
            for d in &devices {
                let mut values = vec![d.id.as_str()];
                values.extend(d.groups.iter().map(String::as_str));
                values.extend(d.owner.as_deref());
                for (k, v) in &d.attributes {
                    assert_eq!(k, &k.to_ascii_lowercase(), "attribute names are lowercased");
                    values.push(k);
                    values.push(v);
                }
                for v in values {
                    assert!(
                        !v.contains([',', '"']) && !v.chars().any(char::is_control),
                        "field {v:?} kept a separator"
                    );
                    assert_eq!(v, v.trim(), "fields are trimmed");
                }
                assert!(d.groups.iter().all(|g| !g.is_empty() && !g.contains(';')));
            }
        }
        Err(e) => assert!(!e.is_empty() && !e.contains('\n'), "error is one line"),
    }
}

/// `Authorization: Basic …` as a device sends it to `simpleenroll`: any header value gives
/// credentials or nothing; the user never contains `:`; credentials encoded by a client come
/// back unchanged.
pub fn basic_auth(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, value);
        if let Some(b) = crate::auth::basic(&headers) {
            assert!(!b.user.contains(':'));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let (user, password) = text.split_once(':').unwrap_or((text, ""));
        check_basic_round_trip(user, password);
    }
}

/// Encodes `user:password` as a client does and checks that [`crate::auth::basic`] returns
/// exactly them (a user with `:` cannot be sent in Basic auth and is skipped).
pub(crate) fn check_basic_round_trip(user: &str, password: &str) {
    use base64::Engine as _;
    if user.contains(':') {
        return;
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is ASCII");
    headers.insert(AUTHORIZATION, value);
    let b = crate::auth::basic(&headers).expect("a well-formed header parses");
    assert_eq!(b.user, user);
    assert_eq!(b.password.as_str(), password);
}

/// The operator client's HTTP/1.1 response parser (what `ironroot device ...` reads from the
/// server): any bytes give a response or a typed error; a body sent in chunks of any sizes
/// comes back whole.
#[cfg(feature = "fuzzing")]
pub fn operator_response(data: &[u8]) {
    ironroot_https_client::fuzzing::response(data);
}
