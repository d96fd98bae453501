//! A fresh SoftHSM2 token in a temporary directory.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_ok, tool};

/// The SoftHSM2 PKCS#11 module installed by Debian's `softhsm2`.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// A SoftHSM2 configuration and token directory with one initialised token; removed on drop.
#[derive(Debug)]
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// Creates a token labelled `label` with SO PIN `so_pin` and user PIN `pin`. Panics with
    /// install instructions when SoftHSM2 is missing.
    pub fn new(label: &str, so_pin: &str, pin: &str) -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing; run `bash .ci/run` once (installs softhsm2)"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token directory");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("writing softhsm2.conf");
        run_ok(
            Command::new(tool("softhsm2-util"))
                .env("SOFTHSM2_CONF", &conf)
                .args([
                    "--init-token",
                    "--free",
                    "--label",
                    label,
                    "--so-pin",
                    so_pin,
                    "--pin",
                    pin,
                ]),
        );
        Self { dir, conf }
    }

    /// The module path as a `PathBuf`.
    pub fn module() -> PathBuf {
        PathBuf::from(MODULE)
    }

    /// The directory holding the configuration and tokens.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The environment a process needs to see this token (`SOFTHSM2_CONF`).
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![("SOFTHSM2_CONF".into(), self.conf.clone().into_os_string())]
    }
}
