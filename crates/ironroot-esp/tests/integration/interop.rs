//! Both directions against espsecure for every scheme: ironroot signs → espsecure verifies,
//! espsecure signs → ironroot verifies, identical layout, identical eFuse digests.

use std::process::Command;

use ironroot_esp::{
    BLOCK_SIZE, EspPublicKey, ExternalSignature, SECTOR_SIZE, Scheme, SignatureSector, SigningKey,
    VerifyError, sign_image, sign_image_external, verify_signed_image,
};
use ironroot_testkit::{espsecure, run_ok};

use crate::support::{Fixture, assert_accepted, data, esp_sign, esp_verify, gen_key, key_digest};

fn ironroot_signs_espsecure_verifies(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let key = SigningKey::from_pem(&std::fs::read(&fx.key).unwrap()).unwrap();
    assert_eq!(key.scheme(), scheme);
    let signed = sign_image(&data(10_000, 1), &[&key], false).unwrap();
    assert_eq!(
        signed.bytes.len(),
        12_288 + SECTOR_SIZE,
        "padded to 4 KiB, then one sector"
    );
    let out = fx.write("ours.bin", &signed.bytes);
    assert_accepted(&esp_verify(&fx.key, &out), "an ironroot-signed image");
}

fn espsecure_signs_ironroot_verifies(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let input = fx.write("in.bin", &data(10_000, 2));
    let out = fx.path("theirs.bin");
    esp_sign(&[&fx.key], &[], &input, &out);
    let image = std::fs::read(&out).unwrap();
    let v = verify_signed_image(&image, &[fx.digest()]).unwrap();
    assert_eq!((v.block, v.scheme, v.body_len), (0, scheme, 12_288));
    // The same path refuses the image for a different trusted key.
    let other = key_digest(&gen_key(fx.dir.path(), scheme, "other"));
    assert_eq!(
        verify_signed_image(&image, &[other]),
        Err(VerifyError::NoTrustedKey { blocks: 1 })
    );
}

/// Everything but the (randomised) signature field and the CRC is byte-identical.
fn layout_matches_espsecure(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let payload = data(5_000, 3);
    let input = fx.write("in.bin", &payload);
    let theirs_path = fx.path("theirs.bin");
    esp_sign(&[&fx.key], &[], &input, &theirs_path);
    let theirs = std::fs::read(&theirs_path).unwrap();
    let key = SigningKey::from_pem(&std::fs::read(&fx.key).unwrap()).unwrap();
    let ours = sign_image(&payload, &[&key], false).unwrap().bytes;
    assert_eq!(ours.len(), theirs.len());
    let body = ours.len() - SECTOR_SIZE;
    assert_eq!(ours[..body], theirs[..body], "0xFF padding of the body");
    let sig_start = match scheme {
        Scheme::Rsa3072 => 812,
        Scheme::EcdsaP384 => 149,
        _ => 101,
    };
    let sig_end = sig_start + scheme.sig_len();
    for (i, (a, b)) in ours[body..].iter().zip(&theirs[body..]).enumerate() {
        let in_sig = (sig_start..sig_end).contains(&i) || (1196..1200).contains(&i);
        if !in_sig {
            assert_eq!(a, b, "{scheme}: sector byte {i} differs from espsecure's");
        }
    }
    assert!(
        ours[body + BLOCK_SIZE..].iter().all(|&b| b == 0xFF),
        "unused slots are 0xFF"
    );
}

/// ironroot's eFuse digest equals `espsecure digest-sbv2-public-key`, from the private key
/// and from the public key espsecure extracts.
fn digest_matches_espsecure(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let pubkey = fx.path("pub.pem");
    run_ok(
        Command::new(espsecure())
            .args(["extract-public-key", "--version", "2", "--keyfile"])
            .arg(&fx.key)
            .arg(&pubkey),
    );
    let digest_file = fx.path("digest.bin");
    run_ok(
        Command::new(espsecure())
            .args(["digest-sbv2-public-key", "--keyfile"])
            .arg(&fx.key)
            .arg("--output")
            .arg(&digest_file),
    );
    let theirs = std::fs::read(&digest_file).unwrap();
    assert_eq!(fx.digest().0.as_slice(), theirs.as_slice());
    assert_eq!(key_digest(&pubkey).0.as_slice(), theirs.as_slice());
}

/// A signature made outside (openssl, as an HSM would) goes in through `--pub-key` +
/// `--signature`: ironroot's sector is byte-identical to espsecure's for the same signature.
fn external_signature_matches_espsecure(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let aligned = data(8_192, 4);
    let input = fx.write("in.bin", &aligned);
    let pubkey = fx.path("pub.pem");
    run_ok(
        Command::new(espsecure())
            .args(["extract-public-key", "--version", "2", "--keyfile"])
            .arg(&fx.key)
            .arg(&pubkey),
    );
    let sig = fx.path("sig.bin");
    let mut openssl = Command::new("openssl");
    openssl.args([
        "dgst",
        if scheme == Scheme::EcdsaP384 {
            "-sha384"
        } else {
            "-sha256"
        },
    ]);
    if scheme == Scheme::Rsa3072 {
        openssl.args([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ]);
    }
    run_ok(
        openssl
            .arg("-sign")
            .arg(&fx.key)
            .arg("-out")
            .arg(&sig)
            .arg(&input),
    );
    let theirs_path = fx.path("theirs.bin");
    let sig_arg = sig.to_str().unwrap().to_owned();
    let pub_arg = pubkey.to_str().unwrap().to_owned();
    esp_sign(
        &[],
        &["--pub-key", &pub_arg, "--signature", &sig_arg],
        &input,
        &theirs_path,
    );
    let theirs = std::fs::read(&theirs_path).unwrap();

    let public = EspPublicKey::from_pem(&std::fs::read(&pubkey).unwrap()).unwrap();
    let ext = ExternalSignature::new(public.clone(), &std::fs::read(&sig).unwrap()).unwrap();
    let ours = sign_image_external(&aligned, &[ext], false).unwrap().bytes;
    assert_eq!(
        ours, theirs,
        "{scheme}: same signature, same bytes as espsecure"
    );

    // The same flow refuses a signature over other data.
    let wrong = ExternalSignature::new(public, &std::fs::read(&sig).unwrap()).unwrap();
    assert!(sign_image_external(&data(8_192, 5), &[wrong], false).is_err());
}

macro_rules! per_scheme {
    ($($name:ident => $scheme:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test]
            fn ironroot_signs_espsecure_verifies() { super::ironroot_signs_espsecure_verifies($scheme) }
            #[test]
            fn espsecure_signs_ironroot_verifies() { super::espsecure_signs_ironroot_verifies($scheme) }
            #[test]
            fn layout_matches_espsecure() { super::layout_matches_espsecure($scheme) }
            #[test]
            fn digest_matches_espsecure() { super::digest_matches_espsecure($scheme) }
            #[test]
            fn external_signature_matches_espsecure() { super::external_signature_matches_espsecure($scheme) }
        }
    )*};
}

per_scheme! {
    rsa3072 => Scheme::Rsa3072,
    ecdsa192 => Scheme::EcdsaP192,
    ecdsa256 => Scheme::EcdsaP256,
    ecdsa384 => Scheme::EcdsaP384,
}

/// Three blocks for key revocation: espsecure signs with three keys at once, ironroot
/// verifies each; ironroot appends to espsecure's block and espsecure verifies both.
/// One scheme per sector, as on the chip (espsecure 5.6 trips over a mixed sector: it reads
/// an RSA block with an ECDSA key's layout).
#[test]
fn three_blocks_and_append_interoperate() {
    let fx = Fixture::new(Scheme::EcdsaP256);
    let k2 = gen_key(fx.dir.path(), Scheme::EcdsaP256, "k2");
    let k3 = gen_key(fx.dir.path(), Scheme::EcdsaP256, "k3");
    let input = fx.write("in.bin", &data(6_000, 6));
    let three = fx.path("three.bin");
    esp_sign(&[&fx.key, &k2, &k3], &[], &input, &three);
    let image = std::fs::read(&three).unwrap();
    for (slot, key) in [&fx.key, &k2, &k3].into_iter().enumerate() {
        let v = verify_signed_image(&image, &[key_digest(key)]).unwrap();
        assert_eq!(v.block, slot);
    }
    assert_eq!(
        SignatureSector::parse(&image[image.len() - SECTOR_SIZE..])
            .blocks()
            .count(),
        3
    );

    // espsecure signs with one key; ironroot appends a second; espsecure verifies both.
    let one = fx.path("one.bin");
    esp_sign(&[&fx.key], &[], &input, &one);
    let k2_key = SigningKey::from_pem(&std::fs::read(&k2).unwrap()).unwrap();
    let appended = sign_image(&std::fs::read(&one).unwrap(), &[&k2_key], true).unwrap();
    assert_eq!((appended.kept, appended.added), (1, 1));
    let both = fx.write("both.bin", &appended.bytes);
    assert_accepted(
        &esp_verify(&fx.key, &both),
        "block 0 after an ironroot append",
    );
    assert_accepted(&esp_verify(&k2, &both), "the block ironroot appended");

    // espsecure appends to an ironroot-signed image; ironroot verifies both blocks.
    let key = SigningKey::from_pem(&std::fs::read(&fx.key).unwrap()).unwrap();
    let ours = fx.write(
        "ours.bin",
        &sign_image(&data(6_000, 6), &[&key], false).unwrap().bytes,
    );
    let theirs = fx.path("ours+theirs.bin");
    esp_sign(&[&k3], &["--append-signatures"], &ours, &theirs);
    let image = std::fs::read(&theirs).unwrap();
    assert_eq!(
        verify_signed_image(&image, &[fx.digest()]).unwrap().block,
        0
    );
    assert_eq!(
        verify_signed_image(&image, &[key_digest(&k3)])
            .unwrap()
            .block,
        1
    );
}
