//! Properties: the parser never panics; sign → parse → encode round-trips.

use std::sync::OnceLock;

use ironroot_esp::{
    BLOCK_SIZE, SECTOR_SIZE, Scheme, SignatureBlock, SignatureSector, SigningKey, sign_image,
    verify_signed_image,
};
use proptest::prelude::*;

use crate::support::crc32;

fn keys() -> &'static [SigningKey] {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [Scheme::EcdsaP192, Scheme::EcdsaP256, Scheme::EcdsaP384]
            .into_iter()
            .map(|s| SigningKey::generate(s).unwrap())
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
        if let Ok(block) = SignatureBlock::parse(&bytes) {
            prop_assert_eq!(SignatureBlock::parse(&block.to_bytes()).unwrap(), block);
        }
        let _ = SignatureSector::parse(&bytes);
        let _ = verify_signed_image(&bytes, &[]);
    }

    /// Mutations of a valid block with a repaired CRC still never panic the verifier.
    #[test]
    fn mutated_blocks_never_panic(at in 0usize..1196, byte in any::<u8>(), k in 0usize..3) {
        let key = &keys()[k];
        let mut image = sign_image(b"x", &[key], false).unwrap().bytes;
        let body = image.len() - SECTOR_SIZE;
        image[body + at] = byte;
        let crc = crc32(&image[body..body + 1196]);
        image[body + 1196..body + 1200].copy_from_slice(&crc.to_le_bytes());
        let _ = verify_signed_image(&image, &[ironroot_esp::BlockSigner::public_key(key).digest()]);
    }

    #[test]
    fn sign_parse_round_trip(data in proptest::collection::vec(any::<u8>(), 0..9000), k in 0usize..3) {
        let key = &keys()[k];
        let signed = sign_image(&data, &[key], false).unwrap();
        let body = signed.bytes.len() - SECTOR_SIZE;
        prop_assert_eq!(body, data.len().next_multiple_of(SECTOR_SIZE));
        let raw = &signed.bytes[body..body + BLOCK_SIZE];
        let block = SignatureBlock::parse(raw).unwrap();
        prop_assert_eq!(block.scheme(), key.scheme());
        prop_assert_eq!(&block.to_bytes()[..], raw);
        let v = verify_signed_image(&signed.bytes, &[block.public_key().digest()]).unwrap();
        prop_assert_eq!(v.body_len, body);
    }
}
