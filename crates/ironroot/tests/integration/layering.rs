//! The crate layering, checked from `cargo metadata`: no workspace crate depends on a crate
//! above it in the declared chain (normal, build or dev dependencies; a dev-dependency on the
//! test kit, or on the crate itself, is always allowed). A workspace crate missing from the
//! chain fails the test with a message saying where to declare it.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// The chain, bottom first. A crate may depend only on crates of a lower rank; crates on one
/// rank are peers and may not depend on each other.
const CHAIN: &[&[&str]] = &[
    &[
        "ironroot-testkit",
        "ironroot-fs",
        "ironroot-https-client",
        "ironroot-tlscheck",
        // The one PKCS#11 token path (CA keys in pki, device keys in element).
        "ironroot-pkcs11",
    ],
    // The secure element is device-side: it sits beside the image formats, below the PKI.
    &["ironroot-image", "ironroot-esp", "ironroot-element"],
    // The scanner may read images (to find the payload) but nothing boot-side depends on it.
    // The TUF core verifies release metadata (and, with std, reads image keys); it sits below
    // the device side, whose update client will use it.
    &["ironroot-boot", "ironroot-scan", "ironroot-tuf"],
    // The device side sits this low so it can never pull in a server crate; it reports what
    // ironroot-boot decided.
    &["ironroot-device"],
    &["ironroot-pki"],
    &["ironroot-policy"],
    &["ironroot-store"],
    &["ironroot-audit"],
    &["ironroot-identity"],
    &["ironroot-fleet"],
    // Fleet defense reads the registry, CA files and audit log, and reuses the fleet's Origin;
    // the broker and server will feed it (sessions, metrics) from above.
    &["ironroot-defender"],
    &["ironroot-broker"],
    &["ironroot-control"],
    &["ironroot-server"],
    &["ironroot-node"],
    // The simulator sits above every server crate: no server crate may depend on it.
    &["ironroot-sim"],
    &["ironroot"],
];

fn rank(name: &str) -> Option<usize> {
    CHAIN.iter().position(|level| level.contains(&name))
}

/// Workspace crates and their workspace dependencies: name → [(dependency, kind)].
fn workspace_deps() -> BTreeMap<String, Vec<(String, String)>> {
    let out = ironroot_testkit::run_ok(
        Command::new(env!("CARGO"))
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--offline",
            ])
            .current_dir(ironroot_testkit::workspace_root()),
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| members.iter().any(|m| m == d["name"].as_str().unwrap()))
                .map(|d| {
                    let kind = d["kind"].as_str().unwrap_or("normal").to_owned();
                    (d["name"].as_str().unwrap().to_owned(), kind)
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

/// The layering violations of `deps` (empty when clean), one readable line each.
fn violations(deps: &BTreeMap<String, Vec<(String, String)>>) -> Vec<String> {
    let mut found = Vec::new();
    for (krate, list) in deps {
        let Some(own) = rank(krate) else {
            found.push(format!(
                "workspace crate `{krate}` is not in the layering chain: add it to CHAIN in \
                 crates/ironroot/tests/integration/layering.rs at the rank above everything it \
                 depends on and below everything that depends on it"
            ));
            continue;
        };
        for (dep, kind) in list {
            if dep == krate || (kind == "dev" && dep == "ironroot-testkit") {
                continue;
            }
            match rank(dep) {
                Some(r) if r < own => {}
                Some(_) => found.push(format!(
                    "`{krate}` has a {kind} dependency on `{dep}`, which is not below it in the chain"
                )),
                // Reported once as a crate of its own.
                None => {}
            }
        }
    }
    found
}

#[test]
fn no_crate_depends_on_a_crate_above_it() {
    let deps = workspace_deps();
    assert!(
        deps.contains_key("ironroot") && deps.contains_key("ironroot-image"),
        "cargo metadata lists the workspace: {:?}",
        deps.keys()
    );
    let found = violations(&deps);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn an_upward_dependency_and_an_unknown_crate_are_reported() {
    let mut deps = workspace_deps();
    assert!(violations(&deps).is_empty());
    deps.get_mut("ironroot-pki")
        .unwrap()
        .push(("ironroot-server".into(), "normal".into()));
    deps.get_mut("ironroot-store")
        .unwrap()
        .push(("ironroot-audit".into(), "dev".into()));
    deps.insert("ironroot-newcomer".into(), Vec::new());
    let found = violations(&deps);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].contains("`ironroot-newcomer` is not in the layering chain"));
    assert!(found[1].contains("`ironroot-pki` has a normal dependency on `ironroot-server`"));
    assert!(found[2].contains("`ironroot-store` has a dev dependency on `ironroot-audit`"));
}
