//! Integration tests of ironroot-policy through its public API only.
//!
//! The oracle for decisions is the AWS IoT Core developer guide: cases cite the documented
//! behaviour they pin (wildcards, variables, Subscribe vs Receive, explicit Deny).

mod builtin;
mod evaluation;
mod lint;
mod properties;
mod support;
mod validation;
