//! Test-only helpers shared by ironroot's test suites.
//!
//! Tests use real external programs as oracles (imgtool, espsecure, openssl, mosquitto clients,
//! paho-mqtt).
//! This crate finds them and, when one is missing, fails the test loudly with the command that
//! installs it — a test never skips silently because its oracle is absent.
//!
//! Feature `mqtt` adds [`mqtt`], the one driver for the real MQTT clients (mosquitto_pub/sub
//! and the scripted paho-mqtt client) used by the broker, control and CLI suites; feature `pg`
//! adds throwaway PostgreSQL databases; feature `tokens` adds real PKCS#11 tokens ([`softhsm`],
//! [`tpm`]) and [`child`], which re-runs a test in a child process with their environment.
//!
//! Lookup order for a tool: `$IRONROOT_VENV/bin`, then `<workspace>/.venv/bin` (the virtualenv
//! that `.ci/run` creates), then `$PATH`.
#![forbid(unsafe_code)]

#[cfg(feature = "tokens")]
pub mod child;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "pg")]
pub mod pg;
#[cfg(feature = "tokens")]
pub mod softhsm;
#[cfg(feature = "tokens")]
pub mod tpm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // CARGO_MANIFEST_DIR is crates/ironroot-testkit; the root is two levels up.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("testkit lives two levels below the workspace root")
        .to_path_buf()
}

/// The Python virtualenv used for Python oracles (imgtool, paho-mqtt).
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("IRONROOT_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join(".venv"),
    }
}

/// Finds an external program, or `None` when it is not installed.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let in_venv = venv_dir().join("bin").join(name);
    if in_venv.is_file() {
        return Some(in_venv);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Finds an external program, panicking with install instructions when it is absent.
///
/// Tests call this instead of skipping: a missing oracle is a broken test machine, and the
/// failure says how to fix it.
pub fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| {
        panic!(
            "required test tool `{name}` was not found in {} or on PATH; \
             run `bash .ci/run` once to install the test prerequisites",
            venv_dir().join("bin").display()
        )
    })
}

/// espsecure from esptool 5 (PyPI `esptool`): the ESP-IDF Secure Boot v2 oracle.
pub fn espsecure() -> PathBuf {
    tool("espsecure")
}

/// The sslyze executable (TLS-configuration oracle), from its own virtualenv:
/// `$IRONROOT_SSLYZE_VENV`, else the test venv's path with `-sslyze` appended. Panics with
/// install instructions when absent.
pub fn sslyze() -> PathBuf {
    let venv = match std::env::var_os("IRONROOT_SSLYZE_VENV") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let mut v = venv_dir().into_os_string();
            v.push("-sslyze");
            PathBuf::from(v)
        }
    };
    let exe = venv.join("bin").join("sslyze");
    assert!(
        exe.is_file(),
        "required test tool `sslyze` was not found at {}; run `bash .ci/run` once \
         (it installs .ci/requirements-sslyze.txt into that virtualenv)",
        exe.display()
    );
    exe
}

/// The Python interpreter of the test virtualenv (for paho-mqtt scripts and the like).
pub fn python() -> PathBuf {
    tool("python3")
}

/// Runs a command and returns its output, panicking with the full command line, exit status,
/// stdout and stderr when it cannot start. The exit status is left for the caller to assert.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("could not start {cmd:?}: {err}"))
}

/// Runs a command that must succeed; panics with its output otherwise.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "command failed: {cmd:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_workspace_manifest() {
        let manifest = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
        assert!(manifest.contains("[workspace]"));
    }

    #[test]
    fn missing_tool_is_reported_as_none() {
        assert_eq!(find_tool("ironroot-no-such-tool-7f3a"), None);
    }

    #[test]
    #[should_panic(expected = "run `bash .ci/run`")]
    fn missing_tool_panics_with_install_hint() {
        tool("ironroot-no-such-tool-7f3a");
    }
}
