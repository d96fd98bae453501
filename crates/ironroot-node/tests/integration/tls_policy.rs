//! Both listeners of a node are built by the one hardened builder
//! (`ironroot_pki::hardened_server_config`): openssl s_client gets TLS 1.3 and TLS 1.2
//! ECDHE-AEAD on the HTTPS and the MQTT port, and is refused TLS 1.1 and a CBC suite on both.

use std::process::Command;

use crate::harness::{Db, DeviceFiles, TestNode};

fn s_client(t: &TestNode, port: u16, d: &DeviceFiles, args: &[&str]) -> (bool, String) {
    let out = ironroot_testkit::run(
        Command::new(ironroot_testkit::tool("openssl"))
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-brief", "-CAfile"])
            .arg(t.root_ca())
            .arg("-cert")
            .arg(&d.cert)
            .arg("-key")
            .arg(&d.key)
            .args(args)
            .stdin(std::process::Stdio::null()),
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.success() && text.contains("CONNECTION ESTABLISHED"),
        text,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_listeners_accept_tls13_and_ecdhe_aead_and_refuse_tls11_and_cbc() {
    let t = TestNode::start(Db::Sqlite).await;
    let d = t.device("dev-tls").await;
    t.caught_up().await;
    let https = t.node().server().local_addr().port();
    let mqtt = t.node().mqtt_addr().port();
    tokio::task::block_in_place(|| {
        for (name, port) in [("https", https), ("mqtt", mqtt)] {
            let (ok, text) = s_client(&t, port, &d, &["-tls1_3"]);
            assert!(ok, "{name}: TLS 1.3 refused: {text}");
            let (ok, text) = s_client(
                &t,
                port,
                &d,
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            );
            assert!(ok, "{name}: TLS 1.2 ECDHE-AEAD refused: {text}");
            let (ok, text) = s_client(
                &t,
                port,
                &d,
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
            );
            assert!(!ok, "{name}: TLS 1.2 CBC accepted: {text}");
            let (ok, text) = s_client(&t, port, &d, &["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"]);
            assert!(!ok, "{name}: TLS 1.1 accepted: {text}");
        }
    });
    t.stop().await;
}
