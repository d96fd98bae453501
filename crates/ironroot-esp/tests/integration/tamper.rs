//! Tampered images and signature blocks are refused by ironroot and by espsecure alike; the
//! untampered original is accepted by both in the same test.

use ironroot_esp::{SECTOR_SIZE, Scheme, SigningKey, VerifyError, sign_image, verify_signed_image};

use crate::support::{Fixture, assert_accepted, assert_refused, crc32, data, esp_sign, esp_verify};

fn tampering_is_refused_by_both(scheme: Scheme) {
    let fx = Fixture::new(scheme);
    let key = SigningKey::from_pem(&std::fs::read(&fx.key).unwrap()).unwrap();
    let ours = sign_image(&data(9_000, 7), &[&key], false).unwrap().bytes;
    let input = fx.write("in.bin", &data(9_000, 7));
    let theirs_path = fx.path("theirs.bin");
    esp_sign(&[&fx.key], &[], &input, &theirs_path);
    let theirs = std::fs::read(&theirs_path).unwrap();
    let efuse = [fx.digest()];

    for (who, image) in [("ironroot", &ours), ("espsecure", &theirs)] {
        let path = fx.write(&format!("{who}.bin"), image);
        assert_accepted(
            &esp_verify(&fx.key, &path),
            &format!("the untampered {who} image"),
        );
        assert!(verify_signed_image(image, &efuse).is_ok());

        let body = image.len() - SECTOR_SIZE;
        let sig_at = body
            + match scheme {
                Scheme::Rsa3072 => 812,
                Scheme::EcdsaP384 => 149,
                _ => 101,
            };
        // (what, offset, expected ironroot error)
        let cases = [
            (
                "a body byte",
                100,
                VerifyError::ImageDigestMismatch { block: 0 },
            ),
            (
                "the last padding byte",
                body - 1,
                VerifyError::ImageDigestMismatch { block: 0 },
            ),
            (
                "the recorded digest",
                body + 10,
                VerifyError::ImageDigestMismatch { block: 0 },
            ),
            (
                "a signature byte",
                sig_at + 5,
                VerifyError::BadSignature { block: 0, scheme },
            ),
        ];
        for (what, at, expected) in cases {
            let mut bad = image.clone();
            bad[at] ^= 0x01;
            // Keep the CRC valid so the check reaches the digest and the signature.
            fix_crc(&mut bad[body..body + 1216]);
            let path = fx.write("bad.bin", &bad);
            assert_refused(
                &esp_verify(&fx.key, &path),
                &format!("{who} image with {what} flipped"),
            );
            assert_eq!(
                verify_signed_image(&bad, &efuse),
                Err(expected),
                "{who}: {what}"
            );
        }
        // A broken CRC makes the block invisible to both.
        let mut bad = image.clone();
        bad[body + 1197] ^= 0xFF;
        let path = fx.write("bad.bin", &bad);
        assert_refused(&esp_verify(&fx.key, &path), "a block with a bad CRC");
        assert!(matches!(
            verify_signed_image(&bad, &efuse),
            Err(VerifyError::NoSignatureBlock { .. })
        ));
    }
}

fn fix_crc(block: &mut [u8]) {
    let crc = crc32(&block[..1196]);
    block[1196..1200].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn tampering_is_refused_by_both_rsa3072() {
    tampering_is_refused_by_both(Scheme::Rsa3072);
}

#[test]
fn tampering_is_refused_by_both_ecdsa192() {
    tampering_is_refused_by_both(Scheme::EcdsaP192);
}

#[test]
fn tampering_is_refused_by_both_ecdsa256() {
    tampering_is_refused_by_both(Scheme::EcdsaP256);
}

#[test]
fn tampering_is_refused_by_both_ecdsa384() {
    tampering_is_refused_by_both(Scheme::EcdsaP384);
}

/// An RSA block whose Montgomery constants (`rinv`, `m'`) do not belong to its modulus is
/// refused even when the digest of that (altered) key field is trusted: the ROM would compute
/// with the wrong constants. The unaltered block verifies on the same path.
#[test]
fn rsa_block_with_foreign_montgomery_constants_is_refused() {
    use ironroot_esp::{BlockSigner, SignatureBlock};

    let key = SigningKey::generate(Scheme::Rsa3072).unwrap();
    let good = sign_image(&data(5_000, 9), &[&key], false).unwrap().bytes;
    let body = good.len() - SECTOR_SIZE;
    assert!(verify_signed_image(&good, &[key.public_key().digest()]).is_ok());

    // Offsets in the block: m' at 808..812, rinv at 424..808.
    for (what, at) in [("m'", 808), ("rinv", 500)] {
        let mut bad = good.clone();
        bad[body + at] ^= 0x02;
        fix_crc(&mut bad[body..body + 1216]);
        let altered = SignatureBlock::parse(&bad[body..])
            .unwrap()
            .public_key()
            .digest();
        assert_eq!(
            verify_signed_image(&bad, &[altered]),
            Err(VerifyError::BadKey {
                block: 0,
                scheme: Scheme::Rsa3072
            }),
            "{what}"
        );
    }
}
