//! Policy documents arrive from operators over the admin API and CLI: parsing, linting,
//! compiling and deciding must never panic or hang, whatever the bytes.
#![no_main]

use std::sync::Arc;

use ironroot_policy::{
    Action, AttachedPolicy, Attachment, Authorizer, ConnectionContext, PolicyDocument, PolicyName,
    lint,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = PolicyDocument::parse_bytes(data) else {
        return;
    };
    let _ = lint(&doc);
    // Requests built from the document's own resources hit the interesting matcher paths.
    let mut names: Vec<String> = vec![
        "dev*+#/".into(),
        "devices/dev/telemetry".into(),
        String::new(),
    ];
    for st in doc.statements() {
        for r in st.resources() {
            let text = r.as_str();
            names.push(text.rsplit_once('/').map_or(text, |(_, n)| n).to_owned());
            names.push(text.split_once('/').map_or(text, |(_, n)| n).to_owned());
        }
    }
    let policy = AttachedPolicy {
        name: PolicyName::new("fuzz").expect("valid name"),
        version: 1,
        document: Arc::new(doc),
        attachment: Attachment::Group("g/+#".into()),
    };
    for ctx in [
        ConnectionContext::new("dev").with_thing("dev", [("a", "*"), ("b", "x/y")]),
        ConnectionContext::new("dev*+#/").with_certificate_common_name("?"),
    ] {
        let auth = Authorizer::compile([&policy], &ctx);
        for action in Action::ALL {
            for name in &names {
                let _ = auth.authorize(action, name);
            }
        }
    }
});
