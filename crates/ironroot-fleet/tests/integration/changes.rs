//! Every change is audited before it is committed, refusals are audited and change nothing,
//! and a change whose audit entry cannot be written does not happen.

use ironroot_audit::{EventKind, Outcome};
use ironroot_fleet::FleetError;
use ironroot_store::{NewDevice, PolicyTarget, StoreError};

use crate::harness::{Env, alice, on_both};

const POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:*:*:topic/devices/${iot:ClientId}/telemetry"}]}"#;

#[tokio::test]
async fn device_add_is_audited_with_its_subject_and_refusals_change_nothing() {
    on_both(|env: Env| async move {
        let mut new = NewDevice::new("sensor-1");
        new.groups = vec!["line-b".into()];
        let d = env.fleet.add_device(&alice(), &new).await.unwrap();
        assert_eq!(d.id, "sensor-1");
        let again = env.fleet.add_device(&alice(), &new).await.unwrap_err();
        assert!(
            matches!(again, FleetError::Refused(StoreError::DuplicateDevice(_))),
            "{again}"
        );
        let bad = env
            .fleet
            .add_device(&alice(), &NewDevice::new("bad id"))
            .await;
        assert!(matches!(
            bad,
            Err(FleetError::Refused(StoreError::InvalidInput { .. }))
        ));
        assert!(env.store.device("bad id").await.is_err());
        let events = env.events().await;
        let added: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == EventKind::DeviceAdded)
            .collect();
        assert_eq!(added.len(), 3, "{events:#?}");
        assert_eq!(added[0].outcome, Outcome::Success);
        assert_eq!(
            (added[0].subject.kind.as_str(), added[0].subject.id.as_str()),
            ("device", "sensor-1")
        );
        assert_eq!(
            (added[0].actor.as_str(), added[0].source.as_str()),
            ("operator:alice", "cli")
        );
        assert_eq!(
            added[0].details.get("groups").map(String::as_str),
            Some("line-b")
        );
        assert_eq!(added[1].outcome, Outcome::Denied);
        assert_eq!(
            added[1].details.get("reason").map(String::as_str),
            Some("duplicate_device")
        );
        assert_eq!(
            added[2].details.get("reason").map(String::as_str),
            Some("invalid_input")
        );
    })
    .await;
}

#[tokio::test]
async fn policy_create_attach_detach_are_audited_before_the_commit() {
    on_both(|env: Env| async move {
        env.store.add_device(&NewDevice::new("d-1")).await.unwrap();
        let v = env
            .fleet
            .put_policy(&alice(), "telemetry", POLICY)
            .await
            .unwrap();
        let target = PolicyTarget::Device("d-1".into());
        assert!(
            env.fleet
                .attach_policy(&alice(), "telemetry", &target)
                .await
                .unwrap()
        );
        assert!(
            !env.fleet
                .attach_policy(&alice(), "telemetry", &target)
                .await
                .unwrap()
        );
        assert!(
            env.fleet
                .detach_policy(&alice(), "telemetry", &target)
                .await
                .unwrap()
        );
        let unknown = env
            .fleet
            .attach_policy(&alice(), "nope", &target)
            .await
            .unwrap_err();
        assert!(
            matches!(unknown, FleetError::Refused(StoreError::UnknownPolicy(_))),
            "{unknown}"
        );
        let events = env.events().await;
        let kinds: Vec<_> = events
            .iter()
            .map(|e| (e.event_type.as_str(), e.outcome))
            .collect();
        assert_eq!(
            kinds,
            [
                ("policy.create", Outcome::Success),
                ("policy.attach", Outcome::Success),
                ("policy.attach", Outcome::Success),
                ("policy.detach", Outcome::Success),
                ("policy.attach", Outcome::Denied),
            ]
        );
        assert_eq!(events[0].details["version"], v.version.to_string());
        assert_eq!(events[1].details["changed"], "true");
        assert_eq!(events[2].details["changed"], "false");
        assert_eq!(events[1].details["target"], "d-1");
        assert_eq!(events[1].details["target_kind"], "device");
    })
    .await;
}

#[tokio::test]
async fn an_unwritable_audit_log_means_no_change() {
    on_both(|env: Env| async move {
        // Accepted while the log works...
        env.fleet
            .put_policy(&alice(), "before", POLICY)
            .await
            .unwrap();
        env.fleet
            .add_device(&alice(), &NewDevice::new("before"))
            .await
            .unwrap();
        env.break_audit_log().await;
        // ...refused, and absent from the registry, once it does not.
        let err = env
            .fleet
            .put_policy(&alice(), "after", POLICY)
            .await
            .unwrap_err();
        assert!(matches!(err, FleetError::Audit(_)), "{err}");
        assert!(matches!(
            env.store.policy("after").await,
            Err(StoreError::UnknownPolicy(_))
        ));
        let err = env
            .fleet
            .add_device(&alice(), &NewDevice::new("after"))
            .await
            .unwrap_err();
        assert!(matches!(err, FleetError::Audit(_)), "{err}");
        assert!(matches!(
            env.store.device("after").await,
            Err(StoreError::UnknownDevice(_))
        ));
        let target = PolicyTarget::Device("before".into());
        let err = env
            .fleet
            .attach_policy(&alice(), "before", &target)
            .await
            .unwrap_err();
        assert!(matches!(err, FleetError::Audit(_)), "{err}");
        assert!(
            env.store
                .policy("before")
                .await
                .unwrap()
                .attachments
                .is_empty()
        );
        assert!(env.store.policy("before").await.is_ok());
    })
    .await;
}
