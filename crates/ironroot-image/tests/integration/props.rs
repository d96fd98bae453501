//! Property tests: parsing and verifying untrusted bytes never panics, and every change to a
//! signed image is caught.

use std::sync::OnceLock;

use ironroot_image::tools::{ImageDump, KeyType, PrivateKey, SecurityCounter, sign};
use ironroot_image::{
    ChunkedOnly, ImageKey, ImageLayout, ImageVersion, PayloadDecryptor, TrustedKey, VerifyError,
    verify, verify_with_buffer,
};
use proptest::prelude::*;

struct Fixture {
    image: Vec<u8>,
    keys: Vec<TrustedKey>,
}

/// One Ed25519- and one P-256-signed image with a security counter and a dependency, padded.
fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        [KeyType::Ed25519, KeyType::EcdsaP256]
            .into_iter()
            .map(|kind| {
                let key = PrivateKey::generate(kind);
                let mut o = ironroot_image::tools::SignOptions::new(
                    ImageVersion::new(3, 1, 4, 1),
                    0x40,
                    0x2000,
                );
                o.pad_header = true;
                o.pad = true;
                o.security_counter = Some(SecurityCounter::Value(9));
                o.dependencies = vec![ironroot_image::Dependency::default()];
                let fw: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
                let mut image = Vec::new();
                sign(std::io::Cursor::new(fw), &mut image, Some(&key), None, &o).unwrap();
                Fixture {
                    image,
                    keys: vec![key.public_key().trusted_key().unwrap()],
                }
            })
            .collect()
    })
}

/// A header with the given sizes followed by arbitrary bytes: exercises the TLV parser.
fn with_header(hdr_size: u16, prot: u16, img_size: u32, rest: &[u8]) -> Vec<u8> {
    let h = ironroot_image::ImageHeader {
        load_addr: 0,
        hdr_size,
        protect_tlv_size: prot,
        img_size,
        flags: ironroot_image::ImageFlags(0),
        version: ImageVersion::default(),
    };
    let mut v = h.to_bytes().to_vec();
    v.extend_from_slice(rest);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = &fixtures()[0];
        let _ = verify(&bytes[..], &f.keys);
        let _ = ImageLayout::parse(&mut &bytes[..]);
        let _ = ImageDump::read(&bytes[..]);
    }

    #[test]
    fn arbitrary_tlv_areas_never_panic(
        hdr in 32u16..64,
        prot in prop_oneof![Just(0u16), any::<u16>()],
        img_size in 0u32..64,
        body in proptest::collection::vec(any::<u8>(), 0..512),
        magic_at in any::<u8>(),
    ) {
        let mut rest = body;
        // Often plant a valid area magic where the parser will look, to get past it.
        let tlv_off = usize::from(hdr) + img_size as usize - 32;
        if magic_at % 2 == 0 && rest.len() >= tlv_off + 2 {
            let m: u16 = if prot == 0 { 0x6907 } else { 0x6908 };
            rest[tlv_off..tlv_off + 2].copy_from_slice(&m.to_le_bytes());
        }
        let img = with_header(hdr, prot, img_size, &rest);
        let f = &fixtures()[1];
        let r = verify(&img[..], &f.keys);
        prop_assert!(r.is_err());
        let _ = ImageDump::read(&img[..]);
    }

    #[test]
    fn any_change_inside_the_image_is_caught(which in 0usize..2, pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let f = &fixtures()[which];
        let good = verify(&f.image[..], &f.keys).unwrap();
        let total = good.total_len as usize;
        let off = pos.index(total);
        let mut bad = f.image.clone();
        bad[off] ^= xor;
        prop_assert!(verify(&bad[..], &f.keys).is_err(), "change at {} of {} accepted", off, total);
    }

    #[test]
    fn changes_after_the_image_do_not_matter(which in 0usize..2, pos in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let f = &fixtures()[which];
        let good = verify(&f.image[..], &f.keys).unwrap();
        let total = good.total_len as usize;
        let off = total + pos.index(f.image.len() - total);
        let mut padded = f.image.clone();
        padded[off] ^= xor;
        prop_assert_eq!(verify(&padded[..], &f.keys).unwrap(), good);
    }

    #[test]
    fn truncation_is_a_format_error(which in 0usize..2, pos in any::<prop::sample::Index>()) {
        let f = &fixtures()[which];
        let total = verify(&f.image[..], &f.keys).unwrap().total_len as usize;
        let cut = pos.index(total);
        let r = verify(&f.image[..cut], &f.keys);
        prop_assert!(matches!(r, Err(VerifyError::Format(_))), "cut at {}: {:?}", cut, r);
    }

    #[test]
    fn chunk_size_does_not_change_the_result(which in 0usize..2, chunk in 1usize..5000) {
        let f = &fixtures()[which];
        let whole = verify(&f.image[..], &f.keys).unwrap();
        let mut buf = vec![0u8; chunk];
        let chunked = verify_with_buffer(ChunkedOnly(&f.image[..]), &f.keys, &mut buf).unwrap();
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn versions_round_trip(major: u8, minor: u8, revision: u16, build: u32) {
        let v = ImageVersion::new(major, minor, revision, build);
        prop_assert_eq!(v.to_string().parse::<ImageVersion>().unwrap(), v);
        prop_assert_eq!(ImageVersion::from_le_bytes(v.to_le_bytes()), v);
    }

    #[test]
    fn version_parser_never_panics(s in "\\PC{0,24}") {
        let _ = s.parse::<ImageVersion>();
    }

    #[test]
    fn decryption_at_any_offset_matches_one_pass(
        key in any::<[u8; 16]>(),
        data in proptest::collection::vec(any::<u8>(), 1..600),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let k = ImageKey::aes128(key);
        let mut whole = data.clone();
        PayloadDecryptor::new(&k).apply(0, &mut whole);
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len())).collect();
        points.extend([0, data.len()]);
        points.sort_unstable();
        points.dedup();
        let mut pieces = data.clone();
        let mut dec = PayloadDecryptor::new(&k);
        // Decrypt the pieces in reverse order: seeking backwards must work too.
        for w in points.windows(2).rev() {
            dec.apply(w[0] as u32, &mut pieces[w[0]..w[1]]);
        }
        prop_assert_eq!(pieces, whole);
    }
}
