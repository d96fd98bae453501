//! `Fleet::contain` and `Fleet::incident_report`: one transaction, write-ahead audit entries,
//! skipped devices reported, refusals audited, and a report whose every proof verifies.

use ironroot_audit::{EventKind, Outcome, ProofBundle};
use ironroot_fleet::incident::{
    ContainAction, ContainRequest, DeviceQuery, IncidentError, Targets,
};
use ironroot_pki::Serial;
use ironroot_store::{
    CertificateKind, CertificateStatus, ChangeCursor, ChangeKind, DeviceState, NewCertificate,
    NewDevice,
};

use crate::harness::{Env, alice, on_both};

/// Registers `id` in `state` (through provisioned) in `groups`, with one certificate.
async fn device(env: &Env, id: &str, state: DeviceState, groups: &[&str], serial: u64) {
    let mut new = NewDevice::new(id);
    new.groups = groups.iter().map(|g| g.to_string()).collect();
    new.state = DeviceState::Provisioned;
    env.store.add_device(&new).await.unwrap();
    if state != DeviceState::Provisioned {
        env.store.set_device_state(id, state).await.unwrap();
    }
    env.store
        .record_issued_certificate(&NewCertificate {
            serial: Serial::from_hex(&format!("{serial:016x}")).unwrap(),
            der: format!("not a real certificate {serial}").into_bytes(),
            device_id: Some(id.to_owned()),
            kind: CertificateKind::Operational,
            issuer: "ironroot Intermediate CA G1".into(),
            subject: format!("CN={id}"),
            not_before: 0,
            not_after: 4_000_000_000,
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_a_group_in_one_incident_and_report_it_with_proofs() {
    on_both(|env: Env| async move {
        for n in 0..20 {
            let group = if n < 15 { "line-7" } else { "line-8" };
            device(
                &env,
                &format!("d-{n:02}"),
                DeviceState::Active,
                &[group],
                n + 1,
            )
            .await;
        }
        // Already revoked: cannot be quarantined, reported as skipped.
        env.store
            .set_device_state("d-14", DeviceState::Revoked)
            .await
            .unwrap();
        let cursor = env
            .store
            .changes_since(ChangeCursor::default(), 100_000)
            .await
            .unwrap();
        let before = cursor.last().map(|c| c.cursor).unwrap_or_default();

        let mut req =
            ContainRequest::new(Targets::Group("line-7".into()), ContainAction::Quarantine);
        req.reason = "beaconing to 198.51.100.7".into();
        req.evidence = vec!["alarm-42".into()];
        let done = env.fleet.contain(&alice(), &req).await.unwrap();
        assert_eq!(done.contained.len(), 14, "{done:?}");
        assert_eq!(done.skipped.len(), 1);
        assert_eq!(done.skipped[0].device, "d-14");
        assert_eq!(done.skipped[0].reason, "invalid_transition");
        for n in 0..20 {
            let d = env.store.device(&format!("d-{n:02}")).await.unwrap();
            let want = match n {
                14 => DeviceState::Revoked,
                0..14 => DeviceState::Quarantined,
                _ => DeviceState::Active,
            };
            assert_eq!(d.state, want, "d-{n:02}");
        }
        // Every contained device gets a session cut on the change feed; the others do not.
        let changes = env.store.changes_since(before, 100_000).await.unwrap();
        let cuts: Vec<_> = changes
            .iter()
            .filter(|c| c.kind == ChangeKind::SessionCut)
            .map(|c| c.item.clone())
            .collect();
        assert_eq!(cuts.len(), 14);
        assert!(cuts.iter().all(|d| d.as_str() < "d-14"), "{cuts:?}");

        let report = env.fleet.incident_report(&done.incident).await.unwrap();
        assert_eq!(report.status, "contained");
        assert_eq!(report.action, "quarantine");
        assert_eq!(report.target, "group=line-7");
        assert_eq!(report.evidence, vec!["alarm-42".to_string()]);
        assert_eq!(report.devices.len(), 14);
        assert!(report.devices.values().all(|s| s == "quarantined"));
        // opened + 14 device entries + contained.
        assert_eq!(report.timeline.len(), 16, "{:#?}", report.timeline);
        assert_eq!(report.timeline[0].kind, "incident.opened");
        assert_eq!(report.timeline.last().unwrap().kind, "incident.contained");
        let verifier = ironroot_audit::NoteVerifier::parse(&report.log_key).unwrap();
        for entry in &report.timeline {
            let bundle = ProofBundle::parse(&entry.proof).unwrap();
            let verified = bundle.verify(&verifier).unwrap();
            assert_eq!(verified.index, entry.index);
        }
        // A tampered proof is refused by the same check that accepted the real ones.
        let mut bundle = ProofBundle::parse(&report.timeline[1].proof).unwrap();
        bundle.leaf[10] ^= 1;
        assert!(bundle.verify(&verifier).is_err());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_by_query_revokes_certificates_and_names_them_in_the_report() {
    on_both(|env: Env| async move {
        device(&env, "cam-1", DeviceState::Active, &["cams"], 101).await;
        device(&env, "cam-2", DeviceState::Quarantined, &["cams"], 102).await;
        device(&env, "lock-1", DeviceState::Active, &["cams"], 103).await;
        env.store
            .set_device_attribute("cam-1", "fw", "1.2.0")
            .await
            .unwrap();
        env.store
            .set_device_attribute("cam-2", "fw", "1.2.0")
            .await
            .unwrap();
        env.store
            .set_device_attribute("lock-1", "fw", "1.2.0")
            .await
            .unwrap();

        let q = DeviceQuery::parse("group=cams id=cam-* attr.fw=1.2.0").unwrap();
        let mut req = ContainRequest::new(Targets::Query(q), ContainAction::Revoke);
        req.query_text = "group=cams id=cam-* attr.fw=1.2.0".into();
        let done = env.fleet.contain(&alice(), &req).await.unwrap();
        let mut ids: Vec<_> = done.contained.iter().map(|c| c.device.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["cam-1", "cam-2"]);
        for (id, serial) in [("cam-1", 101u64), ("cam-2", 102)] {
            assert_eq!(
                env.store.device(id).await.unwrap().state,
                DeviceState::Revoked
            );
            let cert = env
                .store
                .certificate(&Serial::from_hex(&format!("{serial:016x}")).unwrap())
                .await
                .unwrap();
            assert_eq!(cert.status, CertificateStatus::Revoked, "{id}");
        }
        assert_eq!(
            env.store.device("lock-1").await.unwrap().state,
            DeviceState::Active
        );

        let report = env.fleet.incident_report(&done.incident).await.unwrap();
        let mut serials = report.revoked_certificates.clone();
        serials.sort();
        let want: Vec<String> = [101u64, 102]
            .iter()
            .map(|n| Serial::from_hex(&format!("{n:016x}")).unwrap().to_string())
            .collect();
        assert_eq!(serials, want);
        assert_eq!(report.target, "query=group=cams id=cam-* attr.fw=1.2.0");
        let revoked: Vec<_> = env
            .events()
            .await
            .into_iter()
            .filter(|e| e.event_type == EventKind::CertRevoked)
            .collect();
        assert_eq!(revoked.len(), 2);
        assert!(
            revoked
                .iter()
                .all(|e| e.details.get("incident") == Some(&done.incident))
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_contain_is_refused_and_audited_while_a_named_device_is_contained() {
    on_both(|env: Env| async move {
        device(&env, "ok-1", DeviceState::Active, &[], 7).await;
        let none = ContainRequest::new(Targets::Group("empty".into()), ContainAction::Quarantine);
        let err = env.fleet.contain(&alice(), &none).await.unwrap_err();
        assert!(matches!(err, IncidentError::NoTargets(_)), "{err}");
        let unknown = ContainRequest::new(
            Targets::Devices(vec!["ghost".into()]),
            ContainAction::Quarantine,
        );
        assert!(matches!(
            env.fleet.contain(&alice(), &unknown).await,
            Err(IncidentError::NoTargets(_))
        ));
        let refused: Vec<_> = env
            .events()
            .await
            .into_iter()
            .filter(|e| e.event_type == EventKind::IncidentOpened)
            .collect();
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|e| e.outcome == Outcome::Denied));
        assert_eq!(
            env.store.device("ok-1").await.unwrap().state,
            DeviceState::Active
        );

        // The same path with a device that exists contains it, ghosts listed as skipped.
        let named = ContainRequest::new(
            Targets::Devices(vec!["ok-1".into(), "ghost".into()]),
            ContainAction::Quarantine,
        );
        let done = env.fleet.contain(&alice(), &named).await.unwrap();
        assert_eq!(done.contained.len(), 1);
        assert_eq!(done.skipped[0].reason, "unknown_device");
        assert_eq!(
            env.store.device("ok-1").await.unwrap().state,
            DeviceState::Quarantined
        );
        // Quarantining again keeps it quarantined and cuts its sessions again.
        let again = env.fleet.contain(&alice(), &named).await.unwrap();
        assert_eq!(again.contained[0].from, "quarantined");
        assert!(matches!(
            env.fleet.incident_report("inc-0000000000000000").await,
            Err(IncidentError::UnknownIncident(_))
        ));
        assert!(matches!(
            env.fleet.incident_report("../etc").await,
            Err(IncidentError::BadIncidentId(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_containment_whose_audit_entry_cannot_be_written_changes_nothing() {
    on_both(|env: Env| async move {
        device(&env, "x-1", DeviceState::Active, &["g"], 9).await;
        env.break_audit_log().await;
        let req = ContainRequest::new(Targets::Group("g".into()), ContainAction::Revoke);
        let err = env.fleet.contain(&alice(), &req).await.unwrap_err();
        assert!(matches!(err, IncidentError::Audit(_)), "{err}");
        assert_eq!(
            env.store.device("x-1").await.unwrap().state,
            DeviceState::Active
        );
    })
    .await;
}

#[test]
fn queries_parse_strictly() {
    let q = DeviceQuery::parse("group=a state=active attr.fw=2 id=x*").unwrap();
    assert_eq!(q.group.as_deref(), Some("a"));
    assert_eq!(q.state, Some(DeviceState::Active));
    assert_eq!(q.attributes.get("fw").map(String::as_str), Some("2"));
    for bad in [
        "",
        "   ",
        "group",
        "group=",
        "colour=red",
        "state=sleepy",
        "group=a group=b",
        "attr.=1",
    ] {
        assert!(
            matches!(DeviceQuery::parse(bad), Err(IncidentError::BadQuery(_))),
            "{bad:?}"
        );
    }
}

proptest::proptest! {
    /// Any text (an operator's, or an API caller's) parses or is refused with a typed error;
    /// a parsed query always names at least one term, so it never means "every device".
    #[test]
    fn any_query_text_parses_or_is_refused_and_never_matches_everything(text in "[ -~]{0,80}") {
        match DeviceQuery::parse(&text) {
            Ok(q) => proptest::prop_assert!(q != DeviceQuery::default()),
            Err(e) => proptest::prop_assert!(matches!(e, IncidentError::BadQuery(_))),
        }
    }
}
