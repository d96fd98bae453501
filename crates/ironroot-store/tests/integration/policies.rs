//! Policies: validated uploads, versions, attachments, and the change-feed entries brokers follow.

use ironroot_store::{ChangeKind, NewDevice, PolicyTarget, StoreError};

use crate::harness::{TestDb, both_backends};

both_backends!(
    versions_attachments_and_changes,
    invalid_documents_are_refused_with_the_reason,
    attachments_need_a_policy_and_a_device,
);

const TELEMETRY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/devices/${iot:ClientId}/telemetry"}]}"#;
const BACKEND: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Subscribe","Resource":"topicfilter/devices/+/telemetry"}]}"#;

async fn versions_attachments_and_changes(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("dev-1")).await.unwrap();
    let start = store.change_cursor_now().await.unwrap();

    let v1 = store.put_policy("fleet", TELEMETRY).await.unwrap();
    assert_eq!(v1.version, 1);
    let v2 = store.put_policy("fleet", BACKEND).await.unwrap();
    assert_eq!(v2.version, 2, "uploading again makes a new version");
    assert!(
        store
            .attach_policy("fleet", &PolicyTarget::Group("lab".into()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .attach_policy("fleet", &PolicyTarget::Group("lab".into()))
            .await
            .unwrap(),
        "attaching twice is a no-op"
    );
    assert!(
        store
            .attach_policy("fleet", &PolicyTarget::Device("dev-1".into()))
            .await
            .unwrap()
    );

    let p = store.policy("fleet").await.unwrap();
    assert_eq!(p.versions, vec![1, 2]);
    assert_eq!(p.latest.version, 2);
    assert_eq!(p.latest.document, BACKEND);
    assert!(p.latest.parse().is_ok());
    assert_eq!(
        p.attachments,
        vec![
            PolicyTarget::Device("dev-1".into()),
            PolicyTarget::Group("lab".into())
        ]
    );

    let in_force = store.policy_attachments().await.unwrap();
    assert_eq!(in_force.len(), 2);
    assert!(
        in_force.iter().all(|a| a.policy.version == 2),
        "only the latest version is in force"
    );

    assert!(
        store
            .detach_policy("fleet", &PolicyTarget::Device("dev-1".into()))
            .await
            .unwrap()
    );
    assert!(
        !store
            .detach_policy("fleet", &PolicyTarget::Device("dev-1".into()))
            .await
            .unwrap()
    );
    assert_eq!(store.policy_attachments().await.unwrap().len(), 1);
    assert_eq!(store.list_policies().await.unwrap().len(), 1);

    let changes: Vec<(ChangeKind, String)> = store
        .changes_since(start, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.kind, c.item))
        .collect();
    assert_eq!(
        changes,
        vec![
            (ChangeKind::Policy, "fleet".into()),
            (ChangeKind::Policy, "fleet".into()),
            (ChangeKind::Policy, "fleet".into()),
            (ChangeKind::Group, "lab".into()),
            (ChangeKind::Policy, "fleet".into()),
            (ChangeKind::Device, "dev-1".into()),
            (ChangeKind::Policy, "fleet".into()),
            (ChangeKind::Device, "dev-1".into()),
        ],
        "no-op attach/detach announce nothing"
    );
}

async fn invalid_documents_are_refused_with_the_reason(db: TestDb) {
    let store = &db.store;
    let too_big = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/{}"}}]}}"#,
        "a".repeat(3000)
    );
    let cases = [
        (too_big.as_str(), "limit"),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Pubilsh","Resource":"topic/a"}]}"#,
            "iot:Pubilsh",
        ),
        (
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/${iot:Nope}"}]}"#,
            "iot:Nope",
        ),
        ("{not json", "JSON"),
    ];
    for (doc, expect) in cases {
        let err = store.put_policy("bad", doc).await.unwrap_err();
        assert!(matches!(err, StoreError::InvalidPolicy { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(expect), "{text:?} should mention {expect:?}");
    }
    assert!(matches!(
        store.put_policy("no/slash", TELEMETRY).await.unwrap_err(),
        StoreError::InvalidInput {
            what: "policy name",
            ..
        }
    ));
    assert!(
        matches!(
            store.policy("bad").await.unwrap_err(),
            StoreError::UnknownPolicy(_)
        ),
        "nothing stored"
    );
}

async fn attachments_need_a_policy_and_a_device(db: TestDb) {
    let store = &db.store;
    assert!(matches!(
        store
            .attach_policy("ghost", &PolicyTarget::Group("g".into()))
            .await
            .unwrap_err(),
        StoreError::UnknownPolicy(_)
    ));
    store.put_policy("p", TELEMETRY).await.unwrap();
    assert!(matches!(
        store
            .attach_policy("p", &PolicyTarget::Device("nobody".into()))
            .await
            .unwrap_err(),
        StoreError::UnknownDevice(_)
    ));
    assert!(matches!(
        store
            .attach_policy("p", &PolicyTarget::Group("a/#".into()))
            .await
            .unwrap_err(),
        StoreError::InvalidInput {
            what: "group name",
            ..
        }
    ));
    assert!(store.policy_attachments().await.unwrap().is_empty());
}
