//! Ownership transfer and re-commissioning through the fleet service: audited ahead with both
//! owners named, one `cert.revoked` per serial after the commit; refusals are audited and
//! change nothing; an unwritable audit log means no transfer.

use ironroot_audit::{EventKind, Outcome};
use ironroot_fleet::FleetError;
use ironroot_pki::Serial;
use ironroot_store::{
    CertificateKind, DeviceState, NewCertificate, NewDevice, Rebind, RebindKind, StoreError,
};

use crate::harness::{Env, alice, on_both};

fn to(kind: RebindKind, owner: &str) -> Rebind {
    Rebind {
        kind,
        owner: Some(owner.into()),
        groups: vec![format!("{owner}-fleet")],
        attributes: Default::default(),
    }
}

/// An active device owned by `owner`, with one operational certificate.
async fn device(env: &Env, id: &str, owner: &str, serial: &str) {
    let mut new = NewDevice::new(id);
    new.owner = Some(owner.into());
    new.groups = vec![format!("{owner}-fleet")];
    env.fleet.add_device(&alice(), &new).await.unwrap();
    env.store
        .record_issued_certificate(&NewCertificate {
            serial: Serial::from_hex(serial).unwrap(),
            der: format!("DER {serial}").into_bytes(),
            device_id: Some(id.into()),
            kind: CertificateKind::Operational,
            issuer: "intermediate-1".into(),
            subject: format!("CN={id}"),
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
        })
        .await
        .unwrap();
    env.store
        .set_device_state(id, DeviceState::Provisioned)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_transfer_is_audited_with_both_owners_and_refusals_change_nothing() {
    on_both(|env: Env| async move {
        device(&env, "pump-1", "alice", "0a01").await;
        let done = env
            .fleet
            .rebind_device(&alice(), "pump-1", &to(RebindKind::Transfer, "bob"))
            .await
            .unwrap();
        assert_eq!(done.revoked.len(), 1);
        let d = env.store.device("pump-1").await.unwrap();
        assert_eq!(
            (d.state, d.owner.as_deref()),
            (DeviceState::Manufactured, Some("bob"))
        );
        assert_eq!(d.groups, ["bob-fleet"]);

        let events = env.events().await;
        let transferred: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == EventKind::DeviceTransferred)
            .collect();
        assert_eq!(transferred.len(), 1, "{events:#?}");
        let t = transferred[0];
        assert_eq!(t.outcome, Outcome::Success);
        assert_eq!(t.subject.id, "pump-1");
        let detail = |k: &str| t.details.get(k).map(String::as_str);
        assert_eq!(detail("from_owner"), Some("alice"));
        assert_eq!(detail("to_owner"), Some("bob"));
        assert_eq!(detail("groups_removed"), Some("alice-fleet"));
        assert_eq!(detail("revoked_certificates"), Some("1"));
        // Written ahead: the transfer entry comes before the serial's cert.revoked entry.
        let at = |kind: EventKind| events.iter().position(|e| e.event_type == kind).unwrap();
        assert!(at(EventKind::DeviceTransferred) < at(EventKind::CertRevoked));
        let revoked = &events[at(EventKind::CertRevoked)];
        assert_eq!(
            revoked.details.get("reason").map(String::as_str),
            Some("affiliation_changed")
        );

        // A decommissioned device is refused (audited `denied`), and stays as it was.
        device(&env, "pump-2", "alice", "0a02").await;
        env.store
            .set_device_state("pump-2", DeviceState::Revoked)
            .await
            .unwrap();
        env.store
            .set_device_state("pump-2", DeviceState::Decommissioned)
            .await
            .unwrap();
        let err = env
            .fleet
            .rebind_device(&alice(), "pump-2", &to(RebindKind::Transfer, "bob"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FleetError::Refused(StoreError::InvalidTransition { .. })
            ),
            "{err}"
        );
        let d = env.store.device("pump-2").await.unwrap();
        assert_eq!(
            (d.state, d.owner.as_deref()),
            (DeviceState::Decommissioned, Some("alice"))
        );
        // ...and its id is not registered again...
        let err = env
            .fleet
            .add_device(&alice(), &NewDevice::new("pump-2"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                FleetError::Refused(StoreError::DecommissionedDevice(_))
            ),
            "{err}"
        );
        let events = env.events().await;
        let denied: Vec<_> = events
            .iter()
            .filter(|e| e.subject.id == "pump-2" && e.outcome == Outcome::Denied)
            .map(|e| (e.event_type.clone(), e.details.get("reason").cloned()))
            .collect();
        assert_eq!(
            denied,
            [
                (
                    EventKind::DeviceTransferred,
                    Some("invalid_transition".to_owned())
                ),
                (
                    EventKind::DeviceAdded,
                    Some("decommissioned_device".to_owned())
                ),
            ]
        );
        // ...until it is re-commissioned, explicitly.
        env.fleet
            .rebind_device(&alice(), "pump-2", &to(RebindKind::Recommission, "lab"))
            .await
            .unwrap();
        let d = env.store.device("pump-2").await.unwrap();
        assert_eq!(
            (d.state, d.owner.as_deref()),
            (DeviceState::Manufactured, Some("lab"))
        );
        let events = env.events().await;
        let last = events
            .iter()
            .rev()
            .find(|e| e.event_type == EventKind::DeviceStateChanged)
            .unwrap();
        assert_eq!(last.subject.id, "pump-2");
        assert_eq!(
            last.details.get("op").map(String::as_str),
            Some("recommission")
        );
    })
    .await;
}

#[tokio::test]
async fn an_unwritable_audit_log_means_no_transfer() {
    on_both(|env: Env| async move {
        device(&env, "pump-3", "alice", "0a03").await;
        env.break_audit_log().await;
        let err = env
            .fleet
            .rebind_device(&alice(), "pump-3", &to(RebindKind::Transfer, "bob"))
            .await
            .unwrap_err();
        assert!(matches!(err, FleetError::Audit(_)), "{err}");
        let d = env.store.device("pump-3").await.unwrap();
        assert_eq!(
            (d.state, d.owner.as_deref()),
            (DeviceState::Provisioned, Some("alice"))
        );
        assert!(env.store.revoked_certificates().await.unwrap().is_empty());
    })
    .await;
}
