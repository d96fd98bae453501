//! Factory credentials end to end against a real `ironroot up`: the factory key is made inside
//! the device's element (`agent --factory-csr`), the operator issues the factory certificate
//! (`ca issue --factory`, recorded and audited, verified by openssl against the factory chain
//! and CRL), the agent bootstraps with it (`agent --factory-cert`), sends telemetry, and after
//! its operational certificate expired while it was offline re-enrolls with the same factory
//! certificate. A factory certificate revoked with `ca revoke --serial` no longer enrolls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ironroot_testkit::{run, run_ok, tool};

use crate::support::{Proc, ironroot, spawn_lines, up_on_free_ports, wait_for};

/// Where the running server is.
struct Server {
    dir: PathBuf,
    url: String,
    mqtt: String,
}

impl Server {
    /// `ironroot agent --device-id ID ...` for this server with `extra`; stderr lines arrive
    /// on the channel.
    fn agent(&self, tmp: &Path, id: &str, extra: &[&str]) -> (Proc, mpsc::Receiver<String>) {
        let mut cmd = ironroot(
            &self.dir,
            &[
                "agent",
                "--device-id",
                id,
                "--server",
                &self.url,
                "--mqtt",
                &self.mqtt,
                "--ca-file",
                self.dir.join("pki/chain.pem").to_str().unwrap(),
                "--state-dir",
                tmp.join(id).to_str().unwrap(),
                "--telemetry-interval",
                "1s",
            ],
        );
        cmd.args(extra);
        spawn_lines(&mut cmd)
    }

    /// The audit entries about `id` of kind `kind`, as JSON.
    fn audit(&self, id: &str, kind: &str) -> Vec<serde_json::Value> {
        let out = run_ok(&mut ironroot(
            &self.dir,
            &["audit", "show", "--device", id, "--type", kind, "--json"],
        ));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `agent --factory-csr` then `ca issue --factory`: the factory certificate's path.
    fn factory_credential(&self, tmp: &Path, id: &str) -> PathBuf {
        let csr = tmp.join(format!("{id}.factory.csr"));
        let (mut p, lines) = self.agent(tmp, id, &["--factory-csr", csr.to_str().unwrap()]);
        let status = p.0.wait().unwrap();
        let seen: Vec<String> = lines.try_iter().collect();
        assert!(status.success(), "{seen:#?}");
        let cert = tmp.join(format!("{id}.factory.pem"));
        let out = run_ok(&mut ironroot(
            &self.dir,
            &[
                "ca",
                "issue",
                "--factory",
                "--device",
                id,
                "--csr",
                csr.to_str().unwrap(),
                "--out",
                cert.to_str().unwrap(),
                "--chain-out",
                tmp.join("factory-chain.pem").to_str().unwrap(),
            ],
        ));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!(
                "factory certificate for device {id} (now manufactured)"
            )),
            "{text}"
        );
        cert
    }
}

fn openssl(args: &[&str]) -> (bool, String) {
    let out = run(Command::new(tool("openssl")).args(args));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The certificate's serial as lowercase hex without leading zeros (openssl pads it).
fn serial_of(cert: &Path) -> String {
    let (ok, text) = openssl(&["x509", "-noout", "-serial", "-in", cert.to_str().unwrap()]);
    assert!(ok, "{text}");
    normal(text.trim().trim_start_matches("serial="))
}

fn normal(serial: &str) -> String {
    serial
        .to_lowercase()
        .replace(':', "")
        .trim_start_matches('0')
        .to_owned()
}

fn detail<'a>(event: &'a serde_json::Value, key: &str) -> &'a str {
    event["details"][key].as_str().unwrap_or_default()
}

#[test]
fn factory_credential_bootstraps_re_enrolls_after_expiry_and_stops_when_revoked() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    // The operator creates the CA first (root passphrase from a file), then starts the
    // server on it; operational certificates last 60 s (the minimum) so expiry fits in the
    // test.
    let pass = tmp.join("root.pass");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    run_ok(&mut ironroot(
        &tmp.join("data"),
        &[
            "ca",
            "init",
            "--root-passphrase-file",
            pass.to_str().unwrap(),
        ],
    ));
    let config = tmp.join("ironroot.toml");
    std::fs::write(&config, "[api.enrollment]\ndevice_validity = \"60s\"\n").unwrap();
    let (_up, dir) = up_on_free_ports(tmp, &["--config", config.to_str().unwrap()]);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .unwrap()
            .trim()
            .to_owned()
    };
    let server = Server {
        url: read("server.url"),
        mqtt: read(ironroot_node::MQTT_ADDR_FILE),
        dir: dir.clone(),
    };
    run_ok(&mut ironroot(&dir, &["device", "add", "fa-1"]));
    run_ok(&mut ironroot(&dir, &["device", "add", "fa-2"]));

    // Manufacturing: the factory key is made in the element (sealed under the HUK, nothing
    // key-shaped on disk), the CSR names the device, the factory certificate is issued.
    let cert = server.factory_credential(tmp, "fa-1");
    let sealed = std::fs::read(tmp.join("fa-1/element/factory.sealed")).unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains("PRIVATE KEY"));
    let (ok, text) = openssl(&[
        "req",
        "-noout",
        "-subject",
        "-verify",
        "-in",
        tmp.join("fa-1.factory.csr").to_str().unwrap(),
    ]);
    assert!(
        ok && (text.contains("CN = fa-1") || text.contains("CN=fa-1")),
        "{text}"
    );
    let factory_serial = serial_of(&cert);

    // openssl: the factory certificate chains to the root through the factory CA, passes
    // the CRL check (the factory CA publishes a CRL too), and is a TLS client certificate
    // naming the device as a bootstrap identity.
    let crl = tmp.join("crl.pem");
    run_ok(&mut ironroot(
        &dir,
        &["ca", "crl", "--out", crl.to_str().unwrap()],
    ));
    let chain = tmp.join("factory-chain.pem");
    let verify = |leaf: &Path| {
        openssl(&[
            "verify",
            "-CAfile",
            chain.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            "-crl_check_all",
            "-purpose",
            "sslclient",
            leaf.to_str().unwrap(),
        ])
    };
    let (ok, text) = verify(&cert);
    assert!(ok, "{text}");
    let (_, text) = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(text.contains("URI:urn:ironroot:bootstrap:fa-1"), "{text}");
    assert!(text.contains("ironroot Factory CA"), "{text}");
    let issued = server.audit("fa-1", "cert.issued");
    assert_eq!(issued.len(), 1, "{issued:#?}");
    assert_eq!(detail(&issued[0], "purpose"), "factory");
    assert_eq!(normal(detail(&issued[0], "serial")), factory_serial);

    // The device bootstraps with it (no claim token), connects and sends telemetry.
    let (mut agent, lines) = server.agent(tmp, "fa-1", &["--factory-cert", cert.to_str().unwrap()]);
    wait_for(&lines, "enrolled", Duration::from_secs(30));
    let enrolled_at = Instant::now();
    wait_for(&lines, "telemetry accepted", Duration::from_secs(15));
    let provisioned = server.audit("fa-1", "device.provisioned");
    assert_eq!(provisioned.len(), 1, "{provisioned:#?}");
    assert_eq!(provisioned[0]["actor"], "device:fa-1");
    assert_eq!(detail(&provisioned[0], "method"), "factory_certificate");
    assert_eq!(
        normal(detail(&provisioned[0], "factory_serial")),
        factory_serial
    );

    agent.stop();

    // While fa-1 is offline: a second device's factory certificate, revoked by serial before
    // it was used. The agent is refused (it keeps retrying), nothing is issued, the device stays
    // manufactured, and openssl's CRL check fails it too.
    let cert2 = server.factory_credential(tmp, "fa-2");
    let serial2 = serial_of(&cert2);
    run_ok(&mut ironroot(&dir, &["ca", "revoke", "--serial", &serial2]));
    let (mut agent2, lines) =
        server.agent(tmp, "fa-2", &["--factory-cert", cert2.to_str().unwrap()]);
    let seen = wait_for(&lines, "enroll failed", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    agent2.stop();
    let seen: Vec<String> = seen.into_iter().chain(lines.try_iter()).collect();
    assert!(!seen.iter().any(|l| l.contains("enrolled")), "{seen:#?}");
    assert!(server.audit("fa-2", "device.provisioned").is_empty());
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "fa-2"]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("manufactured"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let revoked = server.audit("fa-2", "cert.revoked");
    assert_eq!(revoked.len(), 1, "{revoked:#?}");
    // The refused handshake is in the audit log under the device the certificate claims.
    let rejected = server.audit("fa-2", "https.certificate_rejected");
    assert!(
        !rejected.is_empty(),
        "no https.certificate_rejected for fa-2"
    );
    assert_eq!(rejected[0]["outcome"], "denied");
    assert_eq!(detail(&rejected[0], "claimed_kind"), "bootstrap");
    assert_eq!(normal(detail(&rejected[0], "serial")), serial2);
    run_ok(&mut ironroot(
        &dir,
        &["ca", "crl", "--out", crl.to_str().unwrap()],
    ));
    let (ok, text) = verify(&cert2);
    assert!(!ok && text.contains("certificate revoked"), "{text}");

    // Offline past the operational certificate's expiry (60 s; renewal would be at 40 s):
    // restarted without flags it re-enrolls with the factory certificate it kept.
    let expired = enrolled_at + Duration::from_secs(63);
    std::thread::sleep(expired.saturating_duration_since(Instant::now()));
    let (_agent, lines) = server.agent(tmp, "fa-1", &[]);
    wait_for(&lines, "renewed", Duration::from_secs(30));
    wait_for(&lines, "telemetry accepted", Duration::from_secs(15));
    let renewed = server.audit("fa-1", "cert.renewed");
    let by_factory: Vec<_> = renewed
        .iter()
        .filter(|e| e["outcome"] == "success" && detail(e, "method") == "factory_certificate")
        .collect();
    assert_eq!(by_factory.len(), 1, "{renewed:#?}");
    assert_eq!(detail(by_factory[0], "expired"), "true");
    assert_eq!(
        normal(detail(by_factory[0], "factory_serial")),
        factory_serial
    );
}
