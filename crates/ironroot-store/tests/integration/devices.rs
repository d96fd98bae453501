//! Device registry: registration, validation, lifecycle, groups, attributes, listing.

use std::collections::BTreeMap;

use ironroot_store::{DeviceFilter, DeviceState, NewDevice, StoreError};

use crate::harness::{TestDb, both_backends};

both_backends!(
    add_and_read_back_a_device,
    invalid_ids_are_rejected_and_nothing_is_stored,
    injection_text_is_stored_as_data,
    lifecycle_follows_the_state_table,
    list_filters_and_pages,
    groups_attributes_and_owner_can_change,
    many_devices_read_at_once_match_one_by_one_reads,
);

fn sample(id: &str) -> NewDevice {
    let mut device = NewDevice::new(id);
    device.owner = Some("plant 7".to_owned());
    device.groups = vec!["line-b".to_owned(), "eu".to_owned()];
    device.attributes = BTreeMap::from([
        ("hw".to_owned(), "rev-c".to_owned()),
        ("site".to_owned(), "Lyon".to_owned()),
    ]);
    device
}

async fn add_and_read_back_a_device(db: TestDb) {
    let store = &db.store;
    let added = store.add_device(&sample("dev-001")).await.unwrap();
    assert_eq!(added.id, "dev-001");
    assert_eq!(added.state, DeviceState::Manufactured);
    assert_eq!(
        added.groups,
        vec!["eu", "line-b"],
        "groups come back sorted"
    );
    assert_eq!(added.attributes["site"], "Lyon");
    assert_eq!(added.owner.as_deref(), Some("plant 7"));
    assert!(added.created_at > 1_700_000_000);

    let read = store.device("dev-001").await.unwrap();
    assert_eq!(read, added);

    let dup = store
        .add_device(&NewDevice::new("dev-001"))
        .await
        .unwrap_err();
    assert!(
        matches!(dup, StoreError::DuplicateDevice(ref id) if id == "dev-001"),
        "{dup}"
    );
    assert!(matches!(
        store.device("dev-404").await.unwrap_err(),
        StoreError::UnknownDevice(_)
    ));
}

async fn invalid_ids_are_rejected_and_nothing_is_stored(db: TestDb) {
    let store = &db.store;
    for bad in [
        "", "a/b", "dev+1", "dev#", "$SYS", "dev*", "a b", "dev\0x", "dev\n", "é",
    ] {
        let err = store.add_device(&NewDevice::new(bad)).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    what: "device id",
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
    }
    let mut bad_group = NewDevice::new("ok-1");
    bad_group.groups = vec!["a/#".to_owned()];
    assert!(matches!(
        store.add_device(&bad_group).await.unwrap_err(),
        StoreError::InvalidInput {
            what: "group name",
            ..
        }
    ));
    let mut bad_attr = NewDevice::new("ok-2");
    bad_attr
        .attributes
        .insert("room".to_owned(), "+".to_owned());
    assert!(matches!(
        store.add_device(&bad_attr).await.unwrap_err(),
        StoreError::InvalidInput {
            what: "attribute value",
            ..
        }
    ));
    let all = store.list_devices(&DeviceFilter::default()).await.unwrap();
    assert!(all.is_empty(), "nothing may be stored: {all:?}");
}

async fn injection_text_is_stored_as_data(db: TestDb) {
    let store = &db.store;
    let payload = "x'); DELETE FROM devices; --";
    let mut device = NewDevice::new("dev-quote");
    device.owner = Some("O'Brien \"ops\"; DROP TABLE devices".to_owned());
    device
        .attributes
        .insert("note".to_owned(), payload.to_owned());
    store.add_device(&device).await.unwrap();
    store
        .add_device(&NewDevice::new("dev-other"))
        .await
        .unwrap();
    let read = store.device("dev-quote").await.unwrap();
    assert_eq!(read.attributes["note"], payload);
    assert_eq!(read.owner, device.owner);
    assert_eq!(
        store
            .list_devices(&DeviceFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    // A lookup with quote characters finds nothing and breaks nothing.
    assert!(matches!(
        store.device("' OR '1'='1").await.unwrap_err(),
        StoreError::UnknownDevice(_)
    ));
}

async fn lifecycle_follows_the_state_table(db: TestDb) {
    use DeviceState::*;
    let store = &db.store;
    store.add_device(&NewDevice::new("life")).await.unwrap();
    // Illegal first: manufactured cannot become active or decommissioned directly.
    for to in [Active, Quarantined, Decommissioned, Manufactured] {
        let err = store.set_device_state("life", to).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidTransition { from: Manufactured, to: t, .. } if t == to),
            "{err}"
        );
    }
    assert_eq!(store.device("life").await.unwrap().state, Manufactured);
    for to in [
        Provisioned,
        Active,
        Quarantined,
        Active,
        Quarantined,
        Revoked,
        Decommissioned,
    ] {
        let device = store.set_device_state("life", to).await.unwrap();
        assert_eq!(device.state, to);
        assert_eq!(store.device("life").await.unwrap().state, to);
    }
    for to in DeviceState::ALL {
        assert!(matches!(
            store.set_device_state("life", *to).await.unwrap_err(),
            StoreError::InvalidTransition {
                from: Decommissioned,
                ..
            }
        ));
    }
    assert!(matches!(
        store.set_device_state("nobody", Active).await.unwrap_err(),
        StoreError::UnknownDevice(_)
    ));
}

async fn list_filters_and_pages(db: TestDb) {
    let store = &db.store;
    for i in 0..25 {
        let mut device = NewDevice::new(format!("d{i:03}"));
        if i % 2 == 0 {
            device.groups.push("even".to_owned());
        }
        if i % 5 == 0 {
            device.owner = Some("fives".to_owned());
        }
        device.attributes.insert("n".to_owned(), i.to_string());
        store.add_device(&device).await.unwrap();
    }
    store
        .set_device_state("d003", DeviceState::Provisioned)
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_devices(&DeviceFilter {
                after: after.clone(),
                limit: Some(10),
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().map(|d| d.id.clone());
        seen.extend(page);
    }
    let ids: Vec<_> = seen.iter().map(|d| d.id.as_str()).collect();
    let expected: Vec<String> = (0..25).map(|i| format!("d{i:03}")).collect();
    assert_eq!(ids, expected);
    for d in &seen {
        let n: usize = d.attributes["n"].parse().unwrap();
        assert_eq!(
            d.groups.contains(&"even".to_owned()),
            n.is_multiple_of(2),
            "{d:?}"
        );
    }

    let even = store
        .list_devices(&DeviceFilter {
            group: Some("even".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(even.len(), 13);
    let fives_even = store
        .list_devices(&DeviceFilter {
            group: Some("even".into()),
            owner: Some("fives".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = fives_even.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d000", "d010", "d020"]);
    let provisioned = store
        .list_devices(&DeviceFilter {
            state: Some(DeviceState::Provisioned),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(provisioned.len(), 1);
    assert_eq!(provisioned[0].id, "d003");
    assert_eq!(
        provisioned[0].attributes["n"], "3",
        "attributes load for filtered pages"
    );
}

async fn groups_attributes_and_owner_can_change(db: TestDb) {
    let store = &db.store;
    store.add_device(&NewDevice::new("g1")).await.unwrap();
    store.add_device_to_group("g1", "fleet-a").await.unwrap();
    store.add_device_to_group("g1", "fleet-a").await.unwrap(); // idempotent
    store.add_device_to_group("g1", "fleet-b").await.unwrap();
    store.set_device_attribute("g1", "fw", "1.0").await.unwrap();
    store.set_device_attribute("g1", "fw", "1.1").await.unwrap();
    store.set_device_owner("g1", Some("team-x")).await.unwrap();
    let d = store.device("g1").await.unwrap();
    assert_eq!(d.groups, ["fleet-a", "fleet-b"]);
    assert_eq!(d.attributes["fw"], "1.1");
    assert_eq!(d.owner.as_deref(), Some("team-x"));

    assert!(
        store
            .remove_device_from_group("g1", "fleet-a")
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_device_from_group("g1", "fleet-a")
            .await
            .unwrap()
    );
    assert!(store.remove_device_attribute("g1", "fw").await.unwrap());
    assert!(!store.remove_device_attribute("g1", "fw").await.unwrap());
    store.set_device_owner("g1", None).await.unwrap();
    let d = store.device("g1").await.unwrap();
    assert_eq!(d.groups, ["fleet-b"]);
    assert!(d.attributes.is_empty());
    assert_eq!(d.owner, None);

    for err in [
        store.add_device_to_group("ghost", "g").await.unwrap_err(),
        store
            .set_device_attribute("ghost", "k", "v")
            .await
            .unwrap_err(),
        store
            .set_device_owner("ghost", Some("o"))
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::UnknownDevice(_)), "{err}");
    }
    // The failed group add must not have left an orphan membership or group for "ghost".
    let ghosts = store
        .list_devices(&DeviceFilter {
            group: Some("g".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(ghosts.is_empty());
}

/// `Store::devices` (three queries for any number of ids) returns exactly what `Store::device`
/// returns one by one, leaves out unknown ids, and treats quotes and JSON syntax in an id as
/// data (the ids travel as one parameter).
async fn many_devices_read_at_once_match_one_by_one_reads(db: TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for n in 0..300 {
        let id = format!("many-{n:03}");
        let mut new = sample(&id);
        if n % 2 == 0 {
            new.groups = vec![format!("g{}", n % 7)];
            new.attributes.clear();
        }
        store.add_device(&new).await.unwrap();
        ids.push(id);
    }
    let mut asked = ids.clone();
    asked.extend([
        "ghost".to_owned(),
        "\"]), x".to_owned(),
        "') OR 1=1 --".to_owned(),
    ]);
    let many = store.devices(&asked).await.unwrap();
    assert_eq!(many.len(), 300);
    for (d, id) in many.iter().zip(&ids) {
        assert_eq!(&d.id, id);
        assert_eq!(d, &store.device(id).await.unwrap());
    }
    assert!(store.devices(&[]).await.unwrap().is_empty());
}
