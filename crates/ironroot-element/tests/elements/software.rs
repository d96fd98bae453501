//! The contract on the sealed software element (in memory and in a directory).

use ironroot_element::{Huk, KeyStorage, SoftwareElement};

use crate::contract::{Expect, contract};

#[test]
fn software_element_in_memory_meets_the_contract() {
    let el = SoftwareElement::ephemeral().unwrap();
    contract(&el, Expect { ecdh: true });
}

#[test]
fn software_element_on_disk_meets_the_contract() {
    let tmp = tempfile::tempdir().unwrap();
    let el = SoftwareElement::new(
        Huk::from_bytes(&[9u8; 32]).unwrap(),
        KeyStorage::Dir(tmp.path().join("keys")),
    );
    contract(&el, Expect { ecdh: true });
}
