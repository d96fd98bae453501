//! ESP-IDF Secure Boot v2 signature blocks: parsing never panics, a parsed block re-encodes to
//! a block that parses to the same value, and verification under the block's own key (which
//! drives the RSA / ECDSA key and signature decoding) never panics either.
#![no_main]

use ironroot_esp::{BLOCK_SIZE, SECTOR_SIZE, SignatureBlock, SignatureSector, verify_signed_image};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = SignatureSector::parse(data);
    if let Ok(block) = SignatureBlock::parse(data) {
        let again = SignatureBlock::parse(&block.to_bytes()).expect("encoded blocks parse");
        assert_eq!(again, block);
        let mut image = vec![0xFF; 2 * SECTOR_SIZE];
        image[SECTOR_SIZE..SECTOR_SIZE + BLOCK_SIZE].copy_from_slice(&data[..BLOCK_SIZE]);
        let _ = verify_signed_image(&image, &[block.public_key().digest()]);
    }
});
