//! securesystemslib 1.x (python-tuf 7's dependency) as the oracle: canonical JSON byte for
//! byte on tricky and random inputs, and key objects / key ids of Ed25519 and ECDSA keys.

use std::io::Write as _;
use std::process::{Command, Stdio};

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};

/// Canonical JSON of each input line according to securesystemslib (hex per line, or "ERR").
fn python_canonical(inputs: &[String]) -> Vec<String> {
    let script = r#"
import json, sys
from securesystemslib.formats import encode_canonical
for line in sys.stdin:
    try:
        print(encode_canonical(json.loads(line)).encode("utf-8").hex())
    except Exception:
        print("ERR")
"#;
    let mut child = Command::new(ironroot_testkit::python())
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python");
    let mut stdin = child.stdin.take().unwrap();
    for i in inputs {
        writeln!(stdin, "{i}").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn ours(input: &str) -> String {
    let v: Value = serde_json::from_str(input).unwrap();
    match ironroot_tuf::encode_canonical(&v) {
        Ok(b) => b.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => "ERR".into(),
    }
}

#[test]
fn canonical_json_matches_securesystemslib_on_tricky_inputs() {
    let inputs: Vec<String> = [
        r#"{"b":1,"a":{"d":[1,2,{"z":"y","é":"x","Z":null}],"c":true},"":false}"#,
        r#"{"s":"quote \" backslash \\ newline \n tab \t nul \u0000 bell \u0007"}"#,
        r#"{"unicode":"\u00e9\u4e2d\ud83d\ude00 \u2028","ключ":"значение","😀":"a","€":"b"}"#,
        r#"[-9223372036854775808, 9223372036854775807, 18446744073709551615, 0, -1]"#,
        r#"{"nested":{"deep":{"deeper":[[[]],{}]}},"empty":"","arr":[]}"#,
        r#"{"float":1.5}"#,
        r#"{"exp":1e3}"#,
        r#""/\/ solidus""#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let py = python_canonical(&inputs);
    for (i, input) in inputs.iter().enumerate() {
        assert_eq!(ours(input), py[i], "input {input}");
    }
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        "\\PC{0,12}".prop_map(Value::String),
        "[\\x00-\\x1f\"\\\\a-z]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn canonical_json_matches_securesystemslib_on_random_values() {
    let mut runner = TestRunner::deterministic();
    let inputs: Vec<String> = (0..300)
        .map(|_| {
            json_value()
                .new_tree(&mut runner)
                .unwrap()
                .current()
                .to_string()
        })
        .collect();
    let py = python_canonical(&inputs);
    assert_eq!(py.len(), inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        assert_eq!(ours(input), py[i], "input {input}");
    }
}

#[test]
fn key_objects_and_ids_match_securesystemslib() {
    let script = r#"
import json
from securesystemslib.signer import CryptoSigner
out = []
for s in (CryptoSigner.generate_ed25519(), CryptoSigner.generate_ecdsa()):
    k = s.public_key
    out.append({"keyid": k.keyid, "key": k.to_dict()})
print(json.dumps(out))
"#;
    let out =
        ironroot_testkit::run_ok(Command::new(ironroot_testkit::python()).args(["-c", script]));
    let keys: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    for k in keys {
        let parsed = ironroot_tuf::Key::from_json("py", &k["key"]).unwrap();
        assert_eq!(parsed.key_id(), k["keyid"].as_str().unwrap());
        // Re-created from the bare public key, the object (PEM layout included) is identical.
        let point = parsed.identity().unwrap();
        let again = match k["key"]["keytype"].as_str().unwrap() {
            "ed25519" => ironroot_tuf::Key::ed25519(&point.try_into().unwrap()).unwrap(),
            _ => ironroot_tuf::Key::ecdsa_p256(&point).unwrap(),
        };
        assert_eq!(again.to_json(), &k["key"]);
        assert_eq!(again.key_id(), k["keyid"].as_str().unwrap());
    }
}
