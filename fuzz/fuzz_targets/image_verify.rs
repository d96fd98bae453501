//! Fuzzes everything that reads an untrusted MCUboot image: the structural parser, verification
//! (in place and chunked), key unwrapping, and the dump.
//!
//! Two modes, chosen by the first byte: raw (the input is the image) and mutate (the input is
//! XORed over a valid signed, encrypted image, so the fuzzer reaches the hash, key, signature
//! and unwrap paths instead of stopping at the magic).
#![no_main]

use std::sync::OnceLock;

use ironroot_image::tools::{ImageDump, KeyType, PrivateKey, SecurityCounter, SignOptions, sign};
use ironroot_image::{
    ChunkedOnly, DecryptionKey, ImageLayout, ImageVersion, TrustedKey, unwrap_image_key, verify,
    verify_encrypted, verify_with_buffer,
};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    keys: Vec<TrustedKey>,
    device: DecryptionKey,
    images: Vec<Vec<u8>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let ed = PrivateKey::generate(KeyType::Ed25519);
        let p256 = PrivateKey::generate(KeyType::EcdsaP256);
        let device = PrivateKey::generate(KeyType::EcdsaP256);
        let fw: Vec<u8> = (0..300u32).map(|i| (i * 13) as u8).collect();
        let mut images = Vec::new();
        for (key, enc, pure) in [
            (&ed, false, false),
            (&ed, false, true),
            (&p256, true, false),
        ] {
            let mut o = SignOptions::new(ImageVersion::new(1, 0, 0, 0), 0x20, 0);
            o.pad_header = true;
            o.pure = pure;
            o.security_counter = Some(SecurityCounter::Auto);
            let enc_to = enc.then(|| device.public_key());
            let mut img = Vec::new();
            sign(
                std::io::Cursor::new(&fw),
                &mut img,
                Some(key),
                enc_to.as_ref(),
                &o,
            )
            .expect("fixture signs");
            images.push(img);
        }
        Fixture {
            keys: vec![
                ed.public_key().trusted_key().unwrap(),
                p256.public_key().trusted_key().unwrap(),
            ],
            device: device.decryption_key().unwrap(),
            images,
        }
    })
}

fn exercise(image: &[u8], f: &Fixture) {
    let _ = ImageLayout::parse(&mut &image[..]);
    let ok = verify(image, &f.keys);
    let mut small = [0u8; 7];
    let chunked = verify_with_buffer(ChunkedOnly(image), &f.keys, &mut small);
    assert_eq!(ok, chunked, "in-place and chunked verification disagree");
    if let Ok(k) = unwrap_image_key(image, &f.device) {
        let _ = verify_encrypted(image, &f.keys, &k);
    }
    let _ = ImageDump::read(image);
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 1 && !rest.is_empty() => {
            let mut img = f.images[usize::from(mode >> 1) % f.images.len()].clone();
            // rest = (offset u16, xor byte)*: sparse mutations of a valid image.
            for m in rest.chunks_exact(3) {
                let off = usize::from(u16::from_le_bytes([m[0], m[1]])) % img.len();
                img[off] ^= m[2];
            }
            if rest.len() % 3 != 0 {
                // A trailing odd byte also truncates, to reach the bounds checks.
                let cut = usize::from(rest[rest.len() - 1]) * img.len() / 256;
                img.truncate(img.len() - cut / 4);
            }
            exercise(&img, f);
        }
        Some((_, rest)) => exercise(rest, f),
        None => {}
    }
});
