//! Test helper: changes the registry from a separate process, as the offline CLI or another
//! server replica would. Prints the wall-clock time of the commit (Unix nanoseconds) so the
//! caller can measure how long the change takes to reach a running broker.
//!
//! Usage: ironroot-control-store-writer URL revoke SERIAL
//!        ironroot-control-store-writer URL state DEVICE STATE
//!        ironroot-control-store-writer URL put-policy NAME JSON
//!        ironroot-control-store-writer URL attach-device NAME DEVICE
//!        ironroot-control-store-writer URL contain DEVICE   (quarantine + session cut, as `incident contain`)
#![forbid(unsafe_code)]

use ironroot_pki::Serial;
use ironroot_store::{DeviceState, PolicyTarget, RevocationReason, Store};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result: Result<(), String> = runtime.block_on(async {
        let store = Store::open(&args[0]).await.map_err(|e| e.to_string())?;
        let r = match args[1].as_str() {
            "revoke" => {
                let serial = Serial::from_hex(&args[2]).map_err(|e| e.to_string())?;
                store
                    .revoke_certificate(&serial, RevocationReason::KeyCompromise)
                    .await
                    .map(|_| ())
            }
            "state" => {
                let to = DeviceState::from_name(&args[3]).ok_or("unknown state")?;
                store.set_device_state(&args[2], to).await.map(|_| ())
            }
            "put-policy" => store.put_policy(&args[2], &args[3]).await.map(|_| ()),
            "attach-device" => store
                .attach_policy(&args[2], &PolicyTarget::Device(args[3].clone()))
                .await
                .map(|_| ()),
            "contain" => {
                async {
                    let mut tx = store.begin().await?;
                    tx.contain_device(&args[2], None).await?;
                    tx.commit().await
                }
                .await
            }
            other => return Err(format!("unknown command {other}")),
        };
        let at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        store.close().await;
        r.map_err(|e| e.to_string())?;
        println!("{at}");
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
