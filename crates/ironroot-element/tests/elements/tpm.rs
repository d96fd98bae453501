//! The contract on a TPM 2.0: a real swtpm behind tpm2-abrmd, used through tpm2-pkcs11
//! (`libtpm2_pkcs11.so.1`) with a token made by `tpm2_ptool`. The test body runs in a child
//! process that sees the token through `TPM2_PKCS11_STORE` / `TPM2_PKCS11_TCTI`.

use ironroot_element::{ElementError, Pin, Pkcs11Element, SecureElement};
use ironroot_testkit::child::{in_child, run_in_child};
use ironroot_testkit::tpm::SwTpm;

use crate::contract::{Expect, assert_key_stays_in_token, contract};

const TOKEN: &str = "device";
const PIN: &str = "4711";

#[test]
fn tpm_token_meets_the_contract() {
    if !in_child() {
        let tpm = SwTpm::start(TOKEN, "so-secret", PIN);
        run_in_child("tpm::tpm_token_meets_the_contract", &tpm.env());
        return;
    }
    let wrong = Pkcs11Element::open(&SwTpm::module(), TOKEN, &Pin::new("0000".into()));
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
    let el = Pkcs11Element::open(&SwTpm::module(), TOKEN, &Pin::new(PIN.into())).unwrap();
    println!(
        "TPM element: {} (ECDH: {})",
        el.describe(),
        el.token().has_ecdh()
    );
    let ecdh = el.token().has_ecdh();
    contract(&el, Expect { ecdh });
    let refusal = assert_key_stays_in_token(&el, "stays-in");
    println!("TPM refuses CKA_VALUE of a private key with {refusal:?}");
    // tpm2-pkcs11 1.9 does not offer CKM_ECDH1_DERIVE: the contract saw ECDH refused as
    // unsupported. If a later version offers it, the contract checks it agrees with aws-lc.
    if !ecdh {
        assert!(matches!(
            el.ecdh("any", &[4; 65]),
            Err(ElementError::Unsupported(_))
        ));
    }
}
