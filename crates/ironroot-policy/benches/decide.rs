//! Policy decision time: the default device policy, and 10 attached policies of 10 statements.
//!
//! Anchor in the same run: a plain `HashSet<String>` lookup of the topic (what a static ACL
//! file costs), so the policy figures can be read against the cheapest possible check.
//!
//! Run: `cargo bench -p ironroot-policy --bench decide`
#![allow(missing_docs)]

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ironroot_policy::{
    Action, AttachedPolicy, Attachment, Authorizer, ConnectionContext, PolicyDocument, PolicyName,
    builtin,
};

fn ctx() -> ConnectionContext {
    ConnectionContext::new("sensor-000042")
        .with_thing("sensor-000042", [("site", "plant-7"), ("line", "3")])
        .with_certificate_common_name("sensor-000042")
}

/// Ten policies of ten statements each: mixed Allow/Deny, variables, wildcards, conditions.
fn ten_by_ten() -> Vec<AttachedPolicy> {
    (0..10)
        .map(|p| {
            let statements: Vec<String> = (0..10)
                .map(|s| match s % 5 {
                    0 => format!(
                        r#"{{"Effect":"Allow","Action":["iot:Publish","iot:Receive"],"Resource":["topic/devices/${{iot:Connection.Thing.ThingName}}/p{p}s{s}/*","topic/sites/${{iot:Connection.Thing.Attributes[site]}}/p{p}s{s}"]}}"#
                    ),
                    1 => format!(
                        r#"{{"Effect":"Allow","Action":"iot:Subscribe","Resource":["topicfilter/devices/${{iot:Connection.Thing.ThingName}}/p{p}s{s}/#","topicfilter/groups/${{ironroot:Group}}/p{p}s{s}"]}}"#
                    ),
                    2 => format!(
                        r#"{{"Effect":"Deny","Action":["iot:Publish","iot:Receive","iot:Subscribe"],"Resource":["topic/admin/p{p}s{s}/*","topicfilter/admin/p{p}s{s}/*"]}}"#
                    ),
                    3 => format!(
                        r#"{{"Effect":"Allow","Action":"iot:Publish","Resource":"topic/fleet/p{p}s{s}/*/status","Condition":{{"StringEquals":{{"iot:Connection.Thing.Attributes[line]":"3"}}}}}}"#
                    ),
                    _ => format!(
                        r#"{{"Effect":"Allow","Action":"iot:Receive","Resource":"topic/broadcast/p{p}s{s}/??/*"}}"#
                    ),
                })
                .collect();
            let json = format!(
                r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                statements.join(",")
            );
            AttachedPolicy {
                name: PolicyName::new(&format!("policy-{p}")).unwrap(),
                version: 1,
                document: Arc::new(PolicyDocument::parse(&json).expect("bench policy parses")),
                attachment: if p % 2 == 0 {
                    Attachment::Device
                } else {
                    Attachment::Group(format!("group-{p}"))
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ctx = ctx();
    let default = Authorizer::compile([&builtin::default_device_policy()], &ctx);
    let own_telemetry = "devices/sensor-000042/telemetry";
    let own_commands = "devices/sensor-000042/commands";
    assert!(default.publish(own_telemetry, false).is_ok());
    assert!(default.subscribe(own_commands).is_ok());
    assert!(default.receive(own_commands).is_ok());

    let acl: HashSet<String> = [own_telemetry, own_commands].map(String::from).into();
    let mut g = c.benchmark_group("default-device-policy");
    g.bench_function("anchor: HashSet topic lookup", |b| {
        b.iter(|| black_box(acl.contains(black_box(own_telemetry))))
    });
    g.bench_function("publish allowed", |b| {
        b.iter(|| black_box(default.publish(black_box(own_telemetry), false).is_ok()))
    });
    g.bench_function("publish denied (other device)", |b| {
        b.iter(|| {
            black_box(
                default
                    .publish(black_box("devices/sensor-000043/telemetry"), false)
                    .is_ok(),
            )
        })
    });
    g.bench_function("subscribe allowed", |b| {
        b.iter(|| black_box(default.subscribe(black_box(own_commands)).is_ok()))
    });
    g.bench_function("receive allowed", |b| {
        b.iter(|| black_box(default.receive(black_box(own_commands)).is_ok()))
    });
    g.bench_function("compile at connect", |b| {
        let p = builtin::default_device_policy();
        b.iter(|| black_box(Authorizer::compile([&p], black_box(&ctx))))
    });
    g.finish();

    let policies = ten_by_ten();
    let big = Authorizer::compile(&policies, &ctx);
    let deep = "devices/sensor-000042/p9s5/x/y";
    assert!(big.publish(deep, false).is_ok());
    let mut g = c.benchmark_group("10-policies-x-10-statements");
    g.bench_function("publish allowed (last policy)", |b| {
        b.iter(|| black_box(big.publish(black_box(deep), false).is_ok()))
    });
    g.bench_function("publish default-denied (scans everything)", |b| {
        b.iter(|| black_box(big.publish(black_box("nowhere/at/all"), false).is_ok()))
    });
    g.bench_function("receive allowed (wildcard glob)", |b| {
        b.iter(|| {
            black_box(
                big.authorize(Action::Receive, black_box("broadcast/p9s4/ab/cd"))
                    .is_ok(),
            )
        })
    });
    g.bench_function("subscribe allowed", |b| {
        b.iter(|| black_box(big.subscribe(black_box("groups/group-9/p9s6")).is_ok()))
    });
    g.bench_function("compile at connect", |b| {
        b.iter(|| black_box(Authorizer::compile(&policies, black_box(&ctx))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
