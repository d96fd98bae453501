//! Re-running one test in a child process with extra environment variables.
//!
//! PKCS#11 modules read their configuration from the environment when they are initialised
//! (`SOFTHSM2_CONF`, `TPM2_PKCS11_STORE`, `TPM2_PKCS11_TCTI`), and a test cannot change its own
//! environment safely (`set_var` is unsafe, and unsafe code is forbidden). So the test starts
//! itself again as a child with the variables set and asserts that the child passed.

use std::ffi::OsString;
use std::process::Command;

/// Set in the child: the test body runs there.
pub const CHILD_MARKER: &str = "IRONROOT_TESTKIT_CHILD";

/// Whether this process is the child started by [`run_in_child`].
pub fn in_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}

/// Runs the test `name` (its full path in this test binary, e.g. `"softhsm::contract"`) in a
/// child process of the current test executable with `env` added, and panics with the child's
/// output unless exactly that one test ran and passed. Returns the child's output.
pub fn run_in_child(name: &str, env: &[(OsString, OsString)]) -> String {
    let out = Command::new(std::env::current_exe().expect("current test executable"))
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(CHILD_MARKER, "1")
        .output()
        .expect("starting the child test process");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child test {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child ran no test named {name}:\n{text}"
    );
    text
}
