//! Ownership transfer and re-commissioning against a real `ironroot up`: a connected device of
//! alice's is transferred to bob. Its session is cut, its certificate revoked, alice's unused
//! claim token dies with the binding, alice's group policy no longer applies, and the device
//! comes back only by enrolling a fresh key with bob's claim token, under bob's policy.
//! A device sent for repair is cut off the same way and comes back only when re-commissioned,
//! with a fresh key. A decommissioned id is refused by `device add` until it is re-commissioned.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironroot_device::core::Backoff;
use ironroot_device::{
    Agent, AgentConfig, AgentObserver, Answer, Bootstrap, EstClient, MqttTarget, Resume,
    TrustAnchor,
};
use ironroot_element::{Huk, KeyStorage, SoftwareElement};
use ironroot_testkit::{run, run_ok};

use crate::support::{ironroot, up_on_free_ports};

/// Keeps every certificate the agent receives (leaf, PEM).
#[derive(Default)]
struct Certificates(Mutex<Vec<String>>);

impl AgentObserver for Certificates {
    fn certificate(&self, _device: &str, state: &Resume) {
        let pem = ironroot_device::certificates_pem(&state.chain[..1]);
        self.0.lock().unwrap().push(pem);
    }
}

/// The certificate's public key as `openssl x509 -pubkey` prints it.
fn public_key(dir: &std::path::Path, pem: &str) -> String {
    let file = dir.join("leaf.pem");
    std::fs::write(&file, pem).unwrap();
    let out = run_ok(
        std::process::Command::new("openssl")
            .args(["x509", "-noout", "-pubkey", "-in"])
            .arg(&file),
    );
    String::from_utf8(out.stdout).unwrap()
}

fn policy(dir: &std::path::Path, tmp: &std::path::Path, name: &str, prefix: &str, group: &str) {
    let file = tmp.join(format!("{name}.json"));
    std::fs::write(
        &file,
        format!(
            r#"{{"Version":"2012-10-17","Statement":[
              {{"Effect":"Allow","Action":"iot:Connect","Resource":"client/${{iot:Connection.Thing.ThingName}}"}},
              {{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/{prefix}/*"}}]}}"#
        ),
    )
    .unwrap();
    run_ok(&mut ironroot(
        dir,
        &["policy", "create", name, "--file", file.to_str().unwrap()],
    ));
    run_ok(&mut ironroot(
        dir,
        &["policy", "attach", name, "--group", group],
    ));
}

/// Runs a command that must fail; its output.
fn run_fail(cmd: &mut std::process::Command) -> std::process::Output {
    let out = run(cmd);
    assert!(!out.status.success(), "expected a refusal: {cmd:?}");
    out
}

fn claim(dir: &std::path::Path, id: &str) -> String {
    String::from_utf8(run_ok(&mut ironroot(dir, &["device", "claim", id])).stdout)
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn a_transferred_device_loses_the_old_owners_access_and_enrolls_a_fresh_key_for_the_new_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let (_up, dir) = up_on_free_ports(tmp, &[]);
    let url = std::fs::read_to_string(dir.join("server.url"))
        .unwrap()
        .trim()
        .to_owned();
    let mqtt: std::net::SocketAddr =
        std::fs::read_to_string(dir.join(ironroot_node::MQTT_ADDR_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    policy(&dir, tmp, "alice-fleet", "alice", "alice-line");
    policy(&dir, tmp, "bob-fleet", "bob", "bob-pumps");
    run_ok(&mut ironroot(
        &dir,
        &[
            "device",
            "add",
            "tr-1",
            "--group",
            "alice-line",
            "--owner",
            "alice",
        ],
    ));
    let alices_token = claim(&dir, "tr-1");
    let alices_spare_token = claim(&dir, "tr-1");

    let trust = TrustAnchor::from_pem(&std::fs::read(dir.join("pki/chain.pem")).unwrap()).unwrap();
    let element = Arc::new(SoftwareElement::new(
        Huk::create(&tmp.join("huk")).unwrap(),
        KeyStorage::Dir(tmp.join("element")),
    ));
    let config = |token: String| AgentConfig {
        device_id: "tr-1".into(),
        est: EstClient::new(&url, trust.clone()).unwrap(),
        trust: trust.clone(),
        mqtt: MqttTarget {
            host: mqtt.ip().to_string(),
            port: mqtt.port(),
        },
        bootstrap: Bootstrap::ClaimToken(zeroize::Zeroizing::new(token)),
        telemetry_interval: None,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(1)),
        clock_skew: 0,
    };
    let certs = Arc::new(Certificates::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut alices = rt.block_on(async {
        let mut agent = Agent::new(config(alices_token), element.clone(), certs.clone());
        assert!(
            agent.run_until_connected(Duration::from_secs(30)).await,
            "{agent:?}"
        );
        let session = agent.session().unwrap();
        assert_eq!(
            session.publish("alice/telemetry", b"{}").await.unwrap(),
            Answer::Accepted
        );
        assert!(matches!(
            session.publish("bob/telemetry", b"{}").await.unwrap(),
            Answer::Refused(_)
        ));
        agent
    });

    // The transfer, through the server's API.
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "device",
            "transfer",
            "tr-1",
            "--to",
            "bob",
            "--group",
            "bob-pumps",
            "--json",
        ],
    ));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["previous_owner"], "alice", "{answer}");
    assert_eq!(answer["owner"], "bob");
    assert_eq!(answer["state"], "manufactured");
    // Provisioned until its first boot report makes it active; either is a device in service.
    assert!(
        ["provisioned", "active"].contains(&answer["from_state"].as_str().unwrap()),
        "{answer}"
    );
    assert_eq!(answer["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(answer["groups_removed"], serde_json::json!(["alice-line"]));
    assert_eq!(answer["claims_voided"], 1, "alice's spare token dies");

    rt.block_on(async {
        // Alice's live session is cut within seconds, and her identity never connects again.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let session = alices.session().expect("the session was open");
            if session.publish("alice/telemetry", b"{}").await.is_err() {
                break;
            }
            assert!(Instant::now() < deadline, "the session was not cut");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(500), alices.step()).await;
            assert!(alices.session().is_none(), "a revoked identity reconnected");
        }
        drop(alices);

        // Alice's spare claim token is void: no enrollment with it.
        let mut spare = Agent::new(
            config(alices_spare_token),
            element.clone(),
            Arc::new(ironroot_device::Quiet),
        );
        assert!(!spare.run_until_connected(Duration::from_secs(4)).await);
    });

    // Bob mints a claim token; the device enrolls a fresh key and lives under bob's policy.
    let bobs_token = claim(&dir, "tr-1");
    rt.block_on(async {
        let mut agent = Agent::new(config(bobs_token), element.clone(), certs.clone());
        assert!(
            agent.run_until_connected(Duration::from_secs(30)).await,
            "{agent:?}"
        );
        let session = agent.session().unwrap();
        assert_eq!(
            session.publish("bob/telemetry", b"{}").await.unwrap(),
            Answer::Accepted
        );
        assert!(
            matches!(
                session.publish("alice/telemetry", b"{}").await.unwrap(),
                Answer::Refused(_)
            ),
            "alice's policy still applies"
        );
        agent.disconnect().await;
    });
    let pems = certs.0.lock().unwrap().clone();
    assert_eq!(pems.len(), 2, "one certificate per owner");
    assert_ne!(
        public_key(tmp, &pems[0]),
        public_key(tmp, &pems[1]),
        "the new owner's certificate certifies a fresh key"
    );

    // Both owners are named in the audit log, written ahead of the change.
    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "audit",
            "show",
            "--device",
            "tr-1",
            "--type",
            "device.transferred",
            "--json",
        ],
    ));
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let text = entries[0].to_string();
    assert!(text.contains("alice") && text.contains("bob"), "{text}");
}

#[test]
fn a_decommissioned_id_is_refused_until_it_is_recommissioned() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let (_up, dir) = up_on_free_ports(tmp, &[]);
    run_ok(&mut ironroot(
        &dir,
        &["device", "add", "old-1", "--owner", "alice"],
    ));
    run_ok(&mut ironroot(&dir, &["device", "decommission", "old-1"]));
    let refused = run_fail(&mut ironroot(&dir, &["device", "add", "old-1"]));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("decommissioned"), "{stderr}");
    // A transfer is no way around the tombstone either.
    let refused = run_fail(&mut ironroot(
        &dir,
        &["device", "transfer", "old-1", "--to", "bob"],
    ));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("decommissioned"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let out = run_ok(&mut ironroot(
        &dir,
        &[
            "device",
            "recommission",
            "old-1",
            "--owner",
            "refurb",
            "--group",
            "refurbished",
        ],
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("re-commissioned device old-1"), "{text}");
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "old-1"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("manufactured"), "{text}");
    assert!(text.contains("refurbished"), "{text}");
    // Usable again: a claim token can be minted for it.
    assert!(!claim(&dir, "old-1").is_empty());
}

#[test]
fn a_device_sent_for_repair_is_cut_off_and_comes_back_only_with_a_fresh_key() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let (_up, dir) = up_on_free_ports(tmp, &[]);
    let url = std::fs::read_to_string(dir.join("server.url"))
        .unwrap()
        .trim()
        .to_owned();
    let mqtt: std::net::SocketAddr =
        std::fs::read_to_string(dir.join(ironroot_node::MQTT_ADDR_FILE))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
    policy(&dir, tmp, "line-fleet", "line", "line-a");
    run_ok(&mut ironroot(
        &dir,
        &["device", "add", "rp-1", "--group", "line-a"],
    ));
    let token = claim(&dir, "rp-1");
    let trust = TrustAnchor::from_pem(&std::fs::read(dir.join("pki/chain.pem")).unwrap()).unwrap();
    let element = Arc::new(SoftwareElement::new(
        Huk::create(&tmp.join("huk")).unwrap(),
        KeyStorage::Dir(tmp.join("element")),
    ));
    let config = |token: String| AgentConfig {
        device_id: "rp-1".into(),
        est: EstClient::new(&url, trust.clone()).unwrap(),
        trust: trust.clone(),
        mqtt: MqttTarget {
            host: mqtt.ip().to_string(),
            port: mqtt.port(),
        },
        bootstrap: Bootstrap::ClaimToken(zeroize::Zeroizing::new(token)),
        telemetry_interval: None,
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(1)),
        clock_skew: 0,
    };
    let certs = Arc::new(Certificates::default());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut first = rt.block_on(async {
        let mut agent = Agent::new(config(token), element.clone(), certs.clone());
        assert!(agent.run_until_connected(Duration::from_secs(30)).await);
        assert_eq!(
            agent
                .session()
                .unwrap()
                .publish("line/telemetry", b"{}")
                .await
                .unwrap(),
            Answer::Accepted
        );
        agent
    });

    let out = run_ok(&mut ironroot(&dir, &["device", "repair", "rp-1", "--json"]));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["revoked"].as_array().unwrap().len(), 1, "{answer}");
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while first
            .session()
            .unwrap()
            .publish("line/telemetry", b"{}")
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "the session was not cut");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    drop(first);
    // In repair: no claim token can be minted, so nothing can enroll.
    let refused = run_fail(&mut ironroot(&dir, &["device", "claim", "rp-1"]));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in_repair"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "rp-1"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("in_repair"));

    // Back from repair: re-commissioned into its group, a new token, a fresh key.
    run_ok(&mut ironroot(
        &dir,
        &["device", "recommission", "rp-1", "--group", "line-a"],
    ));
    let token = claim(&dir, "rp-1");
    rt.block_on(async {
        let mut agent = Agent::new(config(token), element.clone(), certs.clone());
        assert!(agent.run_until_connected(Duration::from_secs(30)).await);
        assert_eq!(
            agent
                .session()
                .unwrap()
                .publish("line/telemetry", b"{}")
                .await
                .unwrap(),
            Answer::Accepted
        );
        agent.disconnect().await;
    });
    let pems = certs.0.lock().unwrap().clone();
    assert_eq!(pems.len(), 2);
    assert_ne!(public_key(tmp, &pems[0]), public_key(tmp, &pems[1]));
}
