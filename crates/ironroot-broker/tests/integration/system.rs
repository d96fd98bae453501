//! `BrokerHandle::publish`: the broker publishes as itself (the server's command path) to a
//! real mosquitto_sub subscriber; bounded (topic, size) and counted.

use std::time::Duration;

use ironroot_broker::{PublishError, SystemQos};

use crate::harness::*;

#[test]
fn a_system_publish_reaches_the_device_on_its_commands_topic() {
    let b = TestBroker::start();
    let dev = b.client("dev-1");
    let sub = Background::spawn({
        let mut c = mosquitto("mosquitto_sub", &b, &dev, "dev-1", true);
        c.args([
            "-t",
            "devices/dev-1/commands",
            "-q",
            "1",
            "-C",
            "1",
            "-W",
            "10",
            "-v",
        ]);
        c
    });
    assert!(
        b.wait_subscriptions(1, Duration::from_secs(10)),
        "no SUBACK: {:?}",
        b.events()
    );
    // Refused: wildcard topic, over the packet limit; neither reaches anyone.
    assert_eq!(
        b.handle
            .publish("devices/+/commands", b"x", SystemQos::AtLeastOnce),
        Err(PublishError::InvalidTopic)
    );
    let big = vec![b'x'; 200 * 1024];
    assert!(matches!(
        b.handle
            .publish("devices/dev-1/commands", &big, SystemQos::AtLeastOnce),
        Err(PublishError::TooLarge { .. })
    ));
    // Accepted: one matching subscription, delivered.
    let published = b
        .handle
        .publish("devices/dev-1/commands", b"hello", SystemQos::AtLeastOnce)
        .unwrap();
    assert_eq!(published.matched, 1);
    let (code, lines) = sub.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "subscriber: {lines:?}");
    assert!(
        lines.iter().any(|l| l == "devices/dev-1/commands hello"),
        "{lines:?}"
    );
    let stats = b.handle.stats();
    assert_eq!((stats.system_published, stats.system_refused), (1, 2));
    // Nobody subscribed: accepted, nothing matched.
    let publisher = b.handle.system_publisher();
    assert_eq!(
        publisher
            .publish("devices/dev-2/commands", b"x", SystemQos::AtMostOnce)
            .unwrap()
            .matched,
        0
    );
    assert!(!publisher.is_connected("dev-2"));
}
