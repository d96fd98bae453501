//! Allowed and refused paths with mosquitto clients and paho-mqtt, MQTT 3.1.1 and 5, against a
//! plane whose policies come from the registry; refusals are checked in the audit log.

use std::process::Command;
use std::time::Duration;

use ironroot_store::PolicyTarget;
use serde_json::json;

use crate::harness::{Db, Node, Paho, both_backends, evs, mosquitto, paho_spec, run};

both_backends!(allowed_paths_and_refusals_are_enforced_and_audited);

const BACKEND: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"iot:Connect","Resource":"client/${iot:Connection.Thing.ThingName}"},
  {"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/telemetry"},
  {"Effect":"Allow","Action":"iot:Receive","Resource":"topic/devices/*/telemetry"}]}"#;

async fn allowed_paths_and_refusals_are_enforced_and_audited(db: Db) {
    let node = Node::start(db).await;
    let a = node.device("dev-a").await;
    let b = node.device("dev-b").await;
    let backend = node.device("backend").await;
    node.store
        .put_policy("telemetry-reader", BACKEND)
        .await
        .unwrap();
    node.store
        .attach_policy("telemetry-reader", &PolicyTarget::Device("backend".into()))
        .await
        .unwrap();
    // The plane follows the feed; give it a moment (the registry-change tests measure this).
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (node_ref, a_ref, b_ref, backend_ref) = (&node, &a, &b, &backend);
    tokio::task::block_in_place(|| {
        // Allowed: a backend service with its own certificate and a stored policy reads the
        // device's telemetry (v3.1.1 subscriber, v5 and v3.1.1 publishers).
        for v5 in [false, true] {
            let mut sub = mosquitto("mosquitto_sub", node_ref, backend_ref, "backend", v5);
            sub.args(["-t", "devices/+/telemetry", "-C", "1", "-W", "10", "-v"]);
            let sub = std::thread::spawn(move || run(sub));
            std::thread::sleep(Duration::from_millis(700));
            let mut pubc = mosquitto("mosquitto_pub", node_ref, a_ref, "dev-a", v5);
            pubc.args(["-t", "devices/dev-a/telemetry", "-m", "21.5C", "-q", "1"]);
            let p = run(pubc);
            assert_eq!(
                p.code,
                Some(0),
                "publish own telemetry (v5={v5}): {}",
                p.text
            );
            let s = sub.join().unwrap();
            assert_eq!(s.code, Some(0), "backend receives (v5={v5}): {}", s.text);
            assert!(
                s.text.contains("devices/dev-a/telemetry 21.5C"),
                "{}",
                s.text
            );
        }

        // paho v5: own topics granted, everything else refused with 0x87.
        let log = Paho::run(&paho_spec(
            node_ref,
            a_ref,
            "dev-a",
            5,
            json!([
                ["subscribe", "devices/dev-a/commands", 1],
                ["subscribe", "#", 1],
                ["subscribe", "+/+/telemetry", 1],
                ["subscribe", "$SYS/#", 1],
                ["subscribe", "devices/dev-b/commands", 1],
                ["publish", "devices/dev-a/telemetry", "ok", 1, false],
                ["publish", "devices/dev-b/telemetry", "spoof", 1, false],
                ["disconnect"]
            ]),
        ));
        assert_eq!(evs(&log, "connack")[0]["rc"], 0, "{log:?}");
        let codes: Vec<_> = evs(&log, "suback")
            .iter()
            .map(|s| s["codes"][0].clone())
            .collect();
        assert_eq!(
            codes,
            vec![json!(1), json!(135), json!(135), json!(135), json!(135)],
            "{log:?}"
        );
        let pubacks: Vec<_> = evs(&log, "puback")
            .iter()
            .map(|p| p["rc"].clone())
            .collect();
        assert_eq!(pubacks, vec![json!(0), json!(135)], "{log:?}");

        // paho v3.1.1: a refused subscription is 0x80.
        let log = Paho::run(&paho_spec(
            node_ref,
            a_ref,
            "dev-a",
            4,
            json!([
                ["subscribe", "#", 1],
                ["subscribe", "devices/dev-a/commands", 1],
                ["disconnect"]
            ]),
        ));
        let codes: Vec<_> = evs(&log, "suback")
            .iter()
            .map(|s| s["codes"][0].clone())
            .collect();
        assert_eq!(codes, vec![json!(128), json!(1)], "{log:?}");

        // A will aimed at another device's topic: CONNECT refused (v5 0x87, v3.1.1 rc 5).
        for v5 in [true, false] {
            let mut c = mosquitto("mosquitto_pub", node_ref, a_ref, "dev-a", v5);
            c.args([
                "--will-topic",
                "devices/dev-b/telemetry",
                "--will-payload",
                "gone",
            ])
            .args(["-t", "devices/dev-a/telemetry", "-m", "x"]);
            let o = run(c);
            assert_ne!(o.code, Some(0), "will at another device accepted (v5={v5})");
            assert!(o.text.to_lowercase().contains("not authori"), "{}", o.text);
        }

        // Client id must equal the certificate CN, and wildcards are refused.
        for (id, v5) in [
            ("dev-b", true),
            ("dev-b", false),
            ("+", true),
            ("dev-a/#", false),
        ] {
            let mut c = mosquitto("mosquitto_pub", node_ref, a_ref, id, v5);
            c.args(["-t", "devices/dev-a/telemetry", "-m", "x"]);
            let o = run(c);
            assert_ne!(
                o.code,
                Some(0),
                "client id {id:?} with dev-a's certificate accepted"
            );
        }
        // dev-b's own certificate still works.
        let mut c = mosquitto("mosquitto_pub", node_ref, b_ref, "dev-b", true);
        c.args(["-t", "devices/dev-b/telemetry", "-m", "x"]);
        assert_eq!(run(c).code, Some(0));

        // A certificate from another CA (self-signed, same CN): the TLS handshake fails.
        let foreign = node_ref.dir.path().join("clients/foreign");
        ironroot_testkit::run_ok(
            Command::new(ironroot_testkit::tool("openssl"))
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                ])
                .args(["-nodes", "-days", "2", "-subj", "/CN=dev-a"])
                .arg("-keyout")
                .arg(foreign.with_extension("key"))
                .arg("-out")
                .arg(foreign.with_extension("pem")),
        );
        let f = crate::harness::DeviceFiles {
            id: "dev-a".into(),
            cert: foreign.with_extension("pem"),
            key: foreign.with_extension("key"),
            serial: String::new(),
        };
        let mut c = mosquitto("mosquitto_pub", node_ref, &f, &f.id, true);
        c.args(["-t", "devices/dev-a/telemetry", "-m", "x"]);
        assert_ne!(run(c).code, Some(0), "foreign CA accepted");
    });

    // Every refusal is in the audit log.
    node.wait_audit(|e| {
        e.event_type == "mqtt.denied"
            && e.subject.id == "dev-a"
            && e.details.get("topic").map(String::as_str) == Some("#")
    })
    .await;
    node.wait_audit(|e| {
        e.event_type == "mqtt.denied"
            && e.details.get("topic").map(String::as_str) == Some("devices/dev-b/telemetry")
            && e.details.get("action").map(String::as_str) == Some("publish")
    })
    .await;
    node.wait_audit(|e| {
        e.event_type == "mqtt.connect_refused"
            && e.details.get("client_id").map(String::as_str) == Some("dev-b")
            && e.subject.id == "dev-a"
    })
    .await;
    node.wait_audit(|e| {
        e.event_type == "mqtt.connect_refused"
            && e.details.get("reason").is_some_and(|r| r.contains("Will"))
    })
    .await;
    node.wait_audit(|e| {
        e.event_type == "mqtt.tls_failed" || e.event_type == "mqtt.certificate_rejected"
    })
    .await;
    node.wait_audit(|e| e.event_type == "mqtt.connect" && e.subject.id == "backend")
        .await;
    node.stop().await;
}
