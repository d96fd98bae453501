//! The contract on a SoftHSM2 token (created in a temporary directory; the test body runs in a
//! child process that sees it through `SOFTHSM2_CONF`).

use ironroot_element::{AttributeInfo, ElementError, Pin, Pkcs11Element, SecureElement};
use ironroot_testkit::child::{in_child, run_in_child};
use ironroot_testkit::softhsm::SoftHsm;

use crate::contract::{Expect, assert_key_stays_in_token, contract};

const TOKEN: &str = "device";
const PIN: &str = "4711";

fn open(pin: &str) -> Result<Pkcs11Element, ElementError> {
    Pkcs11Element::open(&SoftHsm::module(), TOKEN, &Pin::new(pin.into()))
}

#[test]
fn softhsm_token_meets_the_contract() {
    if !in_child() {
        let hsm = SoftHsm::new(TOKEN, "12345678", PIN);
        run_in_child("softhsm::softhsm_token_meets_the_contract", &hsm.env());
        return;
    }
    // A wrong PIN is refused first (login state is per process and token: once logged in,
    // C_Login answers "already logged in").
    let wrong = open("0000");
    assert!(
        matches!(
            wrong,
            Err(ElementError::Backend {
                operation: "C_Login",
                ..
            })
        ),
        "{wrong:?}"
    );
    let el = open(PIN).unwrap();
    assert!(el.describe().contains("SoftHSM"), "{}", el.describe());
    assert!(!format!("{el:?}").contains(PIN));
    contract(&el, Expect { ecdh: true });
    let refusal = assert_key_stays_in_token(&el, "stays-in");
    assert!(matches!(refusal, AttributeInfo::Sensitive), "{refusal:?}");
    // A token that is not there: a typed error naming it.
    let missing = Pkcs11Element::open(&SoftHsm::module(), "no-such-token", &Pin::new(PIN.into()));
    assert!(
        matches!(&missing, Err(ElementError::Backend { detail, .. }) if detail.contains("no-such-token")),
        "{missing:?}"
    );
}
