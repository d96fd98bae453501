//! Test helper: revokes a certificate in the registry from a separate process, as the offline
//! CLI or another server replica would (the node's follower must notice it).
//!
//! Usage: ironroot-node-registry-writer URL revoke SERIAL
#![forbid(unsafe_code)]

use ironroot_store::{RevocationReason, Store};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, command, serial] = args.as_slice() else {
        eprintln!("usage: ironroot-node-registry-writer URL revoke SERIAL");
        std::process::exit(2);
    };
    if command != "revoke" {
        eprintln!("error: unknown command {command}");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = runtime.block_on(async {
        let serial = ironroot_pki::Serial::from_hex(serial).map_err(|e| e.to_string())?;
        let store = Store::open(url).await.map_err(|e| e.to_string())?;
        let r = store
            .revoke_certificate(&serial, RevocationReason::KeyCompromise)
            .await;
        store.close().await;
        r.map(|_| ()).map_err(|e| e.to_string())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
