//! Issuance and revocation come from the `ironroot-identity` crate (the one place where device
//! certificates are issued and revoked together with their registry change and audit entry);
//! this module re-exports what the server uses.

pub use ironroot_identity::{
    IdentityError, IdentityOptions, IdentityService, IssuePurpose, IssueRequest, Issued,
};
