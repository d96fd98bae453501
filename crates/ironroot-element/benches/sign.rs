//! Signing cost per TLS handshake for each element: one ECDSA P-256 signature over a TLS 1.3
//! CertificateVerify-sized message (64 spaces, the context string, a SHA-256 transcript hash:
//! 130 bytes), side by side for the sealed software element, a SoftHSM2 token and a TPM 2.0
//! (swtpm behind tpm2-abrmd, through tpm2-pkcs11).
//!
//! The PKCS#11 modules read their configuration from the environment at initialisation, so the
//! bench sets up the tokens, then re-runs itself as a child with that environment.
//!
//! `cargo bench -p ironroot-element --bench sign`

use std::process::Command;
use std::sync::Arc;

use criterion::Criterion;
use ironroot_element::{DeviceSigner, Pin, Pkcs11Element, SecureElement, SoftwareElement};
use ironroot_testkit::child::{CHILD_MARKER, in_child};
use ironroot_testkit::softhsm::SoftHsm;
use ironroot_testkit::tpm::SwTpm;

const TOKEN: &str = "bench";
const PIN: &str = "4711";

fn main() {
    if !in_child() {
        let hsm = SoftHsm::new(TOKEN, "12345678", PIN);
        let tpm = SwTpm::start(TOKEN, "so-secret", PIN);
        let status = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .envs(hsm.env())
            .envs(tpm.env())
            .env(CHILD_MARKER, "1")
            .status()
            .unwrap();
        drop(tpm);
        drop(hsm);
        std::process::exit(status.code().unwrap_or(1));
    }
    let mut c = Criterion::default().configure_from_args();
    let elements: Vec<(&str, Box<dyn SecureElement>)> = vec![
        ("software", Box::new(SoftwareElement::ephemeral().unwrap())),
        (
            "softhsm2",
            Box::new(
                Pkcs11Element::open(&SoftHsm::module(), TOKEN, &Pin::new(PIN.into())).unwrap(),
            ),
        ),
        (
            "tpm2-swtpm",
            Box::new(Pkcs11Element::open(&SwTpm::module(), TOKEN, &Pin::new(PIN.into())).unwrap()),
        ),
    ];
    let message = [0x20u8; 130];
    let mut group = c.benchmark_group("element_sign_p256");
    for (name, el) in &elements {
        let key: Arc<dyn DeviceSigner> = el.generate("bench-key").unwrap();
        group.bench_function(*name, |b| b.iter(|| key.sign(&message).unwrap()));
    }
    group.finish();
    c.final_summary();
}
