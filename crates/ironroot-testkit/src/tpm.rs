//! A real software TPM 2.0 for tests: `swtpm` on free local ports, the `tpm2-abrmd` resource
//! manager in front of it (on a private D-Bus), and a tpm2-pkcs11 store with one token made by
//! `tpm2_ptool`. Everything is stopped and removed on drop.
//!
//! Why a resource manager: swtpm holds only 3 transient objects, and without a resource manager
//! nothing flushes them between commands — `tpm2_ptool addtoken` alone fails with
//! `TPM_RC_OBJECT_MEMORY` ("out of memory for object contexts"). On a real Linux device the
//! kernel's `/dev/tpmrm0` or tpm2-abrmd plays this part.

use std::ffi::OsString;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_tool, run, run_ok};

/// The tpm2-pkcs11 module installed by Debian's `libtpm2-pkcs11-1`.
pub const MODULE: &str = "/usr/lib/x86_64-linux-gnu/libtpm2_pkcs11.so.1";

const PACKAGES: &str = "swtpm swtpm-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 \
                        libtpm2-pkcs11-1 libtpm2-pkcs11-tools dbus";

/// A running software TPM with a tpm2-pkcs11 token.
#[derive(Debug)]
pub struct SwTpm {
    dir: tempfile::TempDir,
    port: u16,
    children: Vec<Child>,
}

fn need(name: &str) -> PathBuf {
    find_tool(name)
        .or_else(|| Some(Path::new("/usr/sbin").join(name)).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!("`{name}` is missing; run `bash .ci/run` once (installs {PACKAGES})")
        })
}

/// Two free adjacent ports: the swtpm TCTI finds the control channel at the command port + 1.
fn free_port_pair() -> (u16, u16) {
    for _ in 0..50 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
        let port = listener.local_addr().expect("local address").port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return (port, port + 1);
        }
    }
    panic!("no two adjacent free TCP ports on 127.0.0.1");
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("timed out waiting for {what}");
    false
}

impl SwTpm {
    /// Starts swtpm, tpm2-abrmd and a private D-Bus, then creates a tpm2-pkcs11 store with a
    /// token labelled `label` (SO PIN `so_pin`, user PIN `pin`). Panics with install
    /// instructions when a part is missing, and with the daemons' logs when one fails.
    pub fn start(label: &str, so_pin: &str, pin: &str) -> Self {
        assert!(
            Path::new(MODULE).exists(),
            "{MODULE} is missing; run `bash .ci/run` once (installs {PACKAGES})"
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut tpm = Self {
            port: 0,
            children: Vec::new(),
            dir,
        };
        tpm.start_swtpm();
        tpm.start_abrmd();
        let store = tpm.store();
        std::fs::create_dir(&store).expect("store directory");
        let ptool = need("tpm2_ptool");
        run_ok(
            tpm.tools_env(&mut Command::new(&ptool))
                .args(["init", "--path"])
                .arg(&store),
        );
        run_ok(
            tpm.tools_env(&mut Command::new(&ptool))
                .args(["addtoken", "--pid=1", "--label", label, "--sopin", so_pin])
                .args(["--userpin", pin, "--path"])
                .arg(&store),
        );
        tpm
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.dir.path().join(name)).expect("log file")
    }

    fn logs(&self) -> String {
        [
            "swtpm.log",
            "dbus.log",
            "dbus.err",
            "abrmd.log",
            "abrmd.err",
        ]
        .iter()
        .map(|n| {
            let text = std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
            format!("--- {n}\n{text}")
        })
        .collect()
    }

    fn start_swtpm(&mut self) {
        let swtpm = need("swtpm");
        let state = self.dir.path().join("state");
        std::fs::create_dir(&state).expect("TPM state directory");
        for _ in 0..5 {
            let (port, ctrl) = free_port_pair();
            let mut child = Command::new(&swtpm)
                .args(["socket", "--tpm2", "--server"])
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .args(["--flags", "not-need-init,startup-clear"])
                .stdout(self.log("swtpm.log"))
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting swtpm");
            let up = wait_for("swtpm", Duration::from_secs(5), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
                    || child.try_wait().ok().flatten().is_some()
            });
            if up && child.try_wait().ok().flatten().is_none() {
                self.port = port;
                self.children.push(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("swtpm did not start:\n{}", self.logs());
    }

    fn start_abrmd(&mut self) {
        let bus = self.dir.path().join("bus");
        let conf = self.dir.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                bus.display()
            ),
        )
        .expect("writing the D-Bus configuration");
        let dbus = Command::new(need("dbus-daemon"))
            .arg("--nofork")
            .arg(format!("--config-file={}", conf.display()))
            .stdout(self.log("dbus.log"))
            .stderr(self.log("dbus.err"))
            .spawn()
            .expect("starting dbus-daemon");
        self.children.push(dbus);
        if !wait_for("the D-Bus socket", Duration::from_secs(5), || bus.exists()) {
            panic!("dbus-daemon did not start:\n{}", self.logs());
        }
        let abrmd = Command::new(need("tpm2-abrmd"))
            .args(["--session", "--allow-root", "--logger=stdout"])
            .arg(format!("--tcti=swtpm:host=127.0.0.1,port={}", self.port))
            .env("DBUS_SESSION_BUS_ADDRESS", self.bus_address())
            .stdout(self.log("abrmd.log"))
            .stderr(self.log("abrmd.err"))
            .spawn()
            .expect("starting tpm2-abrmd");
        self.children.push(abrmd);
        let getrandom = need("tpm2_getrandom");
        let ready = wait_for("tpm2-abrmd", Duration::from_secs(10), || {
            run(self
                .tools_env(&mut Command::new(&getrandom))
                .args(["--hex", "8"]))
            .status
            .success()
        });
        if !ready {
            panic!(
                "tpm2-abrmd did not come up in front of swtpm:\n{}",
                self.logs()
            );
        }
    }

    fn bus_address(&self) -> String {
        format!("unix:path={}", self.dir.path().join("bus").display())
    }

    fn tools_env<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// The module path as a `PathBuf`.
    pub fn module() -> PathBuf {
        PathBuf::from(MODULE)
    }

    /// The TCP port of swtpm's TPM command channel.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The tpm2-pkcs11 store directory (its SQLite database of wrapped keys).
    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The TCTI configuration clients use: tpm2-abrmd on the private session bus.
    pub fn tcti(&self) -> String {
        "tabrmd:bus_type=session".to_owned()
    }

    /// The environment a process needs to use the token through tpm2-pkcs11 (and tpm2-tools).
    pub fn env(&self) -> Vec<(OsString, OsString)> {
        vec![
            ("TPM2_PKCS11_STORE".into(), self.store().into_os_string()),
            ("TPM2_PKCS11_TCTI".into(), self.tcti().into()),
            ("TPM2TOOLS_TCTI".into(), self.tcti().into()),
            ("TPM2_PKCS11_LOG_LEVEL".into(), "0".into()),
            ("DBUS_SESSION_BUS_ADDRESS".into(), self.bus_address().into()),
        ]
    }
}

impl Drop for SwTpm {
    fn drop(&mut self) {
        // Stop in reverse order: tpm2-abrmd, then D-Bus, then swtpm.
        while let Some(mut child) = self.children.pop() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
