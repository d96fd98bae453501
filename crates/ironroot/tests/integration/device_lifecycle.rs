//! The device lifecycle against a real `ironroot up`: a device whose clock is six hours slow
//! enrolls with a claim token (key made in its sealed element), connects over mutual TLS,
//! renews at two thirds of a one-minute certificate with a fresh key, reconnects with the new
//! certificate, and the old key is destroyed in the element.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ironroot_device::core::{Backoff, Phase};
use ironroot_device::{Agent, AgentConfig, Bootstrap, EstClient, MqttTarget, Quiet, TrustAnchor};
use ironroot_element::{ElementError, Huk, KeyStorage, SecureElement, SoftwareElement};
use ironroot_testkit::run_ok;

use crate::support::{ironroot, up_on_free_ports};

#[test]
fn a_device_with_a_slow_clock_enrolls_renews_with_a_fresh_key_and_reconnects() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("ironroot.toml");
    std::fs::write(&config, "[api.enrollment]\ndevice_validity = \"60s\"\n").unwrap();
    let (_up, dir) = up_on_free_ports(tmp.path(), &["--config", config.to_str().unwrap()]);
    let mqtt_file = dir.join(ironroot_node::MQTT_ADDR_FILE);
    let url = std::fs::read_to_string(dir.join("server.url"))
        .unwrap()
        .trim()
        .to_owned();
    let mqtt: std::net::SocketAddr = std::fs::read_to_string(&mqtt_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    run_ok(&mut ironroot(&dir, &["device", "add", "lc-1"]));
    let token = String::from_utf8(run_ok(&mut ironroot(&dir, &["device", "claim", "lc-1"])).stdout)
        .unwrap()
        .trim()
        .to_owned();

    let trust = TrustAnchor::from_pem(&std::fs::read(dir.join("pki/chain.pem")).unwrap()).unwrap();
    let element = Arc::new(SoftwareElement::new(
        Huk::create(&tmp.path().join("huk")).unwrap(),
        KeyStorage::Dir(tmp.path().join("element")),
    ));
    let six_hours_slow = -6 * 3600;
    let cfg = AgentConfig {
        device_id: "lc-1".into(),
        est: EstClient::new(&url, trust.clone()).unwrap(),
        trust,
        mqtt: MqttTarget {
            host: mqtt.ip().to_string(),
            port: mqtt.port(),
        },
        bootstrap: Bootstrap::ClaimToken(zeroize::Zeroizing::new(token)),
        telemetry_interval: Some(Duration::from_secs(2)),
        backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(2)),
        clock_skew: six_hours_slow,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut agent = Agent::new(cfg, element.clone(), Arc::new(Quiet));
        assert!(
            agent.run_until_connected(Duration::from_secs(30)).await,
            "{agent:?}"
        );
        let first = agent.certificate().unwrap();
        assert_eq!(first.not_after - first.issued_at, 60, "{first:?}");
        // The device learned the CA's clock from the EST answer: its estimate is within a few
        // seconds of the real time although its own clock is six hours slow.
        let real = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(
            (agent.ca_now() - real).abs() <= 3,
            "{} vs {real}",
            agent.ca_now()
        );
        element
            .open("identity-1")
            .expect("the first key is in the element");

        // Run the lifecycle until it renewed (due 40 s after issuance) and is connected again.
        let deadline = Instant::now() + Duration::from_secs(75);
        while agent.certificate().unwrap() == first || agent.session().is_none() {
            assert!(Instant::now() < deadline, "no renewal: {agent:?}");
            agent.step().await;
        }
        let second = agent.certificate().unwrap();
        let real = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(real >= first.renew_at() - 2, "renewed too early");
        assert!(real < first.not_after, "renewed only after expiry");
        assert!(second.not_after > first.not_after);
        assert_eq!(agent.phase(), Phase::Operational);
        // A fresh key: the old one is destroyed in the element, the new one is there.
        assert!(matches!(
            element.open("identity-1"),
            Err(ElementError::NoSuchKey(_))
        ));
        let new_key = element.open("identity-2").unwrap();
        assert_eq!(new_key.public_key().len(), 65);
        // The renewed session is live: telemetry is accepted.
        let session = agent.session().unwrap();
        let answer = session
            .publish("devices/lc-1/telemetry", b"{\"after\":\"renewal\"}")
            .await
            .unwrap();
        assert_eq!(answer, ironroot_device::Answer::Accepted);
        agent.disconnect().await;
    });

    // The registry saw two certificates for the device.
    let out = run_ok(&mut ironroot(&dir, &["device", "show", "lc-1"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("serial").count() >= 2 || text.matches("operational").count() >= 2,
        "{text}"
    );
}
