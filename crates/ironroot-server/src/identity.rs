//! Issuance and revocation come from the `ironroot-identity` crate (the one place where device
//! certificates are issued and revoked together with their registry change and audit entry);
//! this module re-exports what the server uses and adds the registry's serial spelling.

pub use ironroot_identity::{
    IdentityError, IdentityOptions, IdentityService, IssuePurpose, IssueRequest, Issued,
};
use ironroot_pki::Serial;

/// The registry's canonical serial text (lowercase hex without leading zero nibbles).
pub(crate) fn serial_key(serial: &Serial) -> String {
    let text = serial.to_string();
    let trimmed = text.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}
