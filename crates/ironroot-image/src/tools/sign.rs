//! Signing (and encrypting) images exactly as imgtool 2.5 `sign` does.
//!
//! The input is streamed twice (hash pass, write pass) and never held in memory, so images of
//! any size sign in constant memory. Byte layout, TLV order, padding and trailer follow
//! imgtool's `Image.create()` / `Image.save()`; Ed25519 output is byte-identical to imgtool's
//! for the same key, input and options (Ed25519 is deterministic; ECDSA and encryption use
//! fresh randomness in both tools).

use std::cell::RefCell;
use std::io::{self, Read, Seek, SeekFrom, Write};

use p256::ecdsa::signature::hazmat::PrehashSigner;
use sha2::{Digest, Sha256, Sha512};

use crate::encrypted::PayloadDecryptor;
use crate::header::{IMAGE_HEADER_SIZE, ImageFlags, ImageHeader};
use crate::tlv::{TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC, TlvType};
use crate::tools::keyfile::{KeyType, PrivateKey, PublicKey};
use crate::tools::trailer::TrailerLayout;
use crate::tools::wrap::{random_image_key, wrap_image_key};

mod options;

pub use options::{
    HashChoice, PublicKeyFormat, SecurityCounter, SignError, SignOptions, SignedImage,
};

/// Adds one TLV entry (type, length, value) to an area body.
fn push_tlv(area: &mut Vec<u8>, kind: u16, value: &[u8]) -> Result<(), SignError> {
    let len = u16::try_from(value.len()).map_err(|_| SignError::TlvTooLarge(value.len()))?;
    area.extend_from_slice(&kind.to_le_bytes());
    area.extend_from_slice(&len.to_le_bytes());
    area.extend_from_slice(value);
    Ok(())
}

/// Wraps an area body with its info header; an empty body gives an empty area, as in imgtool.
fn finish_area(magic: u16, body: Vec<u8>) -> Result<Vec<u8>, SignError> {
    if body.is_empty() {
        return Ok(body);
    }
    let tot = u16::try_from(body.len() + 4).map_err(|_| SignError::ProtectedTlvsTooLarge)?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&magic.to_le_bytes());
    out.extend_from_slice(&tot.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    fn update(&mut self, d: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(d),
            Self::Sha512(h) => h.update(d),
        }
    }
    fn finalize(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

const IO_CHUNK: usize = 64 * 1024;

/// The hashed region of the image being built, replayable from the input.
struct Region<'a, R> {
    input: RefCell<R>,
    header: &'a [u8],
    body_start: u64,
    body_len: u64,
    enc_pad: usize,
    protected: &'a [u8],
}

impl<R: Read + Seek> Region<'_, R> {
    /// Calls `f` with the hashed region in order: header, input body, zero padding,
    /// protected TLVs. With `dec`, body and padding pass through the payload cipher.
    fn replay(
        &self,
        mut dec: Option<&mut PayloadDecryptor>,
        f: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        f(self.header)?;
        let mut input = self.input.borrow_mut();
        input.seek(SeekFrom::Start(self.body_start))?;
        let mut buf = vec![0u8; IO_CHUNK];
        let mut left = self.body_len;
        // Payload offsets count from the first byte after the header.
        let mut payload_off = 0u64;
        while left > 0 {
            let n = (buf.len() as u64).min(left) as usize;
            input.read_exact(&mut buf[..n])?;
            if let Some(d) = dec.as_deref_mut() {
                d.apply(payload_off as u32, &mut buf[..n]);
            }
            f(&buf[..n])?;
            left -= n as u64;
            payload_off += n as u64;
        }
        let mut pad = vec![0u8; self.enc_pad];
        if let Some(d) = dec {
            d.apply(payload_off as u32, &mut pad);
        }
        f(&pad)?;
        f(self.protected)
    }
}

/// Checks the key/hash/pure combination as imgtool's `key_and_user_sha_to_alg_and_tlv`.
fn choose_hash(key: Option<&PrivateKey>, opts: &SignOptions) -> Result<TlvType, SignError> {
    if opts.pure {
        if opts.hash != HashChoice::Auto {
            return Err(SignError::PureWithSha);
        }
        return match key.map(PrivateKey::key_type) {
            Some(KeyType::Ed25519) => Ok(TlvType::Sha512),
            _ => Err(SignError::PureRequiresEd25519),
        };
    }
    match (key.map(PrivateKey::key_type), opts.hash) {
        (Some(KeyType::X25519), _) => Err(SignError::CannotSign),
        (_, HashChoice::Auto | HashChoice::Sha256) => Ok(TlvType::Sha256),
        (None | Some(KeyType::Ed25519), HashChoice::Sha512) => Ok(TlvType::Sha512),
        (Some(key), HashChoice::Sha512) => Err(SignError::HashNotAllowed {
            key,
            sha: "512",
            allowed: "256",
        }),
    }
}

fn custom_tlv_ok(tag: u16) -> bool {
    (0x00a0..=0xfffe).contains(&tag) && matches!(TlvType::from_u16(tag), TlvType::Other(_))
}

/// Signs (and with `encrypt_to`, encrypts) the firmware read from `input`, writing the image
/// to `output`. `key` `None` makes an unsigned image with only a hash TLV, as imgtool does.
pub fn sign<R: Read + Seek, W: Write>(
    mut input: R,
    mut output: W,
    key: Option<&PrivateKey>,
    encrypt_to: Option<&PublicKey>,
    opts: &SignOptions,
) -> Result<SignedImage, SignError> {
    // --- options, as imgtool validates them ---
    if usize::from(opts.header_size) < IMAGE_HEADER_SIZE {
        return Err(SignError::HeaderTooSmall(opts.header_size));
    }
    if opts.load_addr.is_some_and(|a| a != 0) && opts.rom_fixed.is_some_and(|a| a != 0) {
        return Err(SignError::LoadAddrAndRomFixed);
    }
    let hash_tlv = choose_hash(key, opts)?;
    if let (Some(PrivateKey::EcdsaP256(_)), Some(enc)) = (key, encrypt_to)
        && enc.key_type() != KeyType::EcdsaP256
    {
        return Err(SignError::EncryptionKeyMismatch);
    }
    let mut seen = Vec::new();
    for (tag, _) in &opts.custom_tlvs {
        if seen.contains(tag) {
            return Err(SignError::DuplicateCustomTlv(*tag));
        }
        if !custom_tlv_ok(*tag) {
            return Err(SignError::BadCustomTlv(*tag));
        }
        seen.push(*tag);
    }
    let pad = opts.pad || opts.confirm || opts.test;

    // --- input geometry ---
    let input_len = input.seek(SeekFrom::End(0))?;
    let header_size = u64::from(opts.header_size);
    let (body_start, header_fill) = if opts.pad_header {
        (0, opts.erased_val)
    } else {
        if input_len < header_size {
            return Err(SignError::InputShorterThanHeader {
                len: input_len,
                header_size: opts.header_size,
            });
        }
        let mut head = vec![0u8; opts.header_size.into()];
        input.seek(SeekFrom::Start(0))?;
        input.read_exact(&mut head)?;
        if head.iter().any(|&b| b != 0) {
            return Err(SignError::HeaderNotZero(opts.header_size));
        }
        (header_size, 0)
    };
    let body_len = input_len - body_start;
    let unpadded = header_size + body_len;
    // imgtool pads header + payload to a multiple of 16 when encrypting.
    let enc_pad = if encrypt_to.is_some() {
        ((16 - unpadded % 16) % 16) as usize
    } else {
        0
    };
    let img_size = u32::try_from(body_len + enc_pad as u64).map_err(|_| SignError::TooLarge)?;

    // --- protected TLVs, in imgtool's order ---
    let mut prot = Vec::new();
    if let Some(sc) = opts.security_counter {
        let v = match sc {
            SecurityCounter::Auto => opts.version.auto_security_counter(),
            SecurityCounter::Value(v) => v,
        };
        push_tlv(&mut prot, TlvType::SecCnt.to_u16(), &v.to_le_bytes())?;
    }
    for d in &opts.dependencies {
        push_tlv(&mut prot, TlvType::Dependency.to_u16(), &d.to_tlv())?;
    }
    if let Some(vid) = &opts.vendor_id {
        push_tlv(&mut prot, TlvType::UuidVid.to_u16(), vid)?;
    }
    if let Some(cid) = &opts.class_id {
        push_tlv(&mut prot, TlvType::UuidCid.to_u16(), cid)?;
    }
    for (tag, value) in &opts.custom_tlvs {
        push_tlv(&mut prot, *tag, value)?;
    }
    let prot = finish_area(TLV_PROT_INFO_MAGIC, prot)?;

    // --- header ---
    let mut flags = ImageFlags::default();
    if encrypt_to.is_some() {
        flags |= opts.encrypt_keylen.flag();
    }
    if opts.load_addr.is_some_and(|a| a != 0) {
        flags |= ImageFlags::RAM_LOAD;
    }
    if opts.rom_fixed.is_some_and(|a| a != 0) {
        flags |= ImageFlags::ROM_FIXED;
    }
    if opts.non_bootable {
        flags |= ImageFlags::NON_BOOTABLE;
    }
    let header = ImageHeader {
        load_addr: opts
            .rom_fixed
            .filter(|&a| a != 0)
            .or(opts.load_addr)
            .unwrap_or(0),
        hdr_size: opts.header_size,
        protect_tlv_size: u16::try_from(prot.len())
            .map_err(|_| SignError::ProtectedTlvsTooLarge)?,
        img_size,
        flags,
        version: opts.version,
    };
    let mut header_bytes = vec![header_fill; opts.header_size.into()];
    header_bytes[..IMAGE_HEADER_SIZE].copy_from_slice(&header.to_bytes());

    let region = Region {
        input: RefCell::new(&mut input),
        header: &header_bytes,
        body_start,
        body_len,
        enc_pad,
        protected: &prot,
    };

    // --- hash pass ---
    let mut hasher = match hash_tlv {
        TlvType::Sha512 => Hasher::Sha512(Sha512::new()),
        _ => Hasher::Sha256(Sha256::new()),
    };
    region.replay(None, &mut |d| {
        hasher.update(d);
        Ok(())
    })?;
    let digest = hasher.finalize();

    // --- main TLVs: hash, [SIG_PURE], key, signature, [ENC] ---
    let mut main = Vec::new();
    push_tlv(&mut main, hash_tlv.to_u16(), &digest)?;
    if opts.pure {
        push_tlv(&mut main, TlvType::SigPure.to_u16(), &[1])?;
    }
    let mut signature = None;
    if let Some(key) = key {
        let spki = key.public_key().to_spki_der();
        match opts.public_key_format {
            PublicKeyFormat::Hash => {
                let h = match hash_tlv {
                    TlvType::Sha512 => Sha512::digest(&spki).to_vec(),
                    _ => Sha256::digest(&spki).to_vec(),
                };
                push_tlv(&mut main, TlvType::KeyHash.to_u16(), &h)?;
            }
            PublicKeyFormat::Full => push_tlv(&mut main, TlvType::PubKey.to_u16(), &spki)?,
        }
        let (kind, sig) = sign_region(key, &digest, opts, &region)?;
        push_tlv(&mut main, kind.to_u16(), &sig)?;
        signature = Some(sig);
    }
    let mut image_key = None;
    if let Some(to) = encrypt_to {
        let k = random_image_key(opts.encrypt_keylen);
        let (kind, tlv) = wrap_image_key(to, &k, opts.hmac_sha)?;
        push_tlv(&mut main, kind.to_u16(), &tlv)?;
        image_key = Some((k, tlv.len()));
    }
    let main = {
        let tot = u16::try_from(main.len() + 4).map_err(|_| SignError::TlvTooLarge(main.len()))?;
        let mut v = TLV_INFO_MAGIC.to_le_bytes().to_vec();
        v.extend_from_slice(&tot.to_le_bytes());
        v.extend_from_slice(&main);
        v
    };

    // --- slot check (before writing anything) ---
    let image_len = header_size + u64::from(img_size) + prot.len() as u64 + main.len() as u64;
    let enc_field = image_key.as_ref().map(|(_, tlv_len)| {
        if opts.save_enctlv {
            *tlv_len as u32
        } else {
            16
        }
    });
    let trailer = TrailerLayout::new(
        opts.align,
        opts.max_align,
        opts.max_sectors,
        opts.overwrite_only,
        enc_field,
    )?;
    let trailer_size = trailer.size()?;
    if opts.slot_size > 0 && image_len + u64::from(trailer_size) > u64::from(opts.slot_size) {
        return Err(SignError::DoesNotFitSlot {
            image: image_len,
            trailer: trailer_size,
            slot: opts.slot_size,
        });
    }

    // --- write pass ---
    let mut written = 0u64;
    let mut dec = match &image_key {
        Some((k, _)) if !opts.clear => Some(PayloadDecryptor::new(k)),
        _ => None,
    };
    region.replay(dec.as_mut(), &mut |d| {
        written += d.len() as u64;
        output.write_all(d)
    })?;
    output.write_all(&main)?;
    written += main.len() as u64;
    if pad {
        // With -S 0 there is nothing to pad to: imgtool appends the bare trailer.
        let padding = u64::from(opts.slot_size).saturating_sub(image_len + u64::from(trailer_size));
        let fill = vec![opts.erased_val; IO_CHUNK];
        let mut left = padding;
        while left > 0 {
            let n = left.min(IO_CHUNK as u64) as usize;
            output.write_all(&fill[..n])?;
            left -= n as u64;
        }
        let t = trailer.bytes(opts.erased_val, opts.confirm)?;
        output.write_all(&t)?;
        written += padding + t.len() as u64;
    }
    output.flush()?;
    Ok(SignedImage {
        header,
        digest,
        signature,
        image_len,
        output_len: written,
    })
}

/// Produces the signature TLV for the hashed region.
fn sign_region<R: Read + Seek>(
    key: &PrivateKey,
    digest: &[u8],
    opts: &SignOptions,
    region: &Region<'_, R>,
) -> Result<(TlvType, Vec<u8>), SignError> {
    match key {
        PrivateKey::EcdsaP256(sk) => {
            // ECDSA-SHA256 over the image equals ECDSA over its SHA-256 digest.
            let signing = p256::ecdsa::SigningKey::from(sk);
            let sig: p256::ecdsa::Signature = signing
                .sign_prehash(digest)
                .map_err(|_| SignError::Signature)?;
            let mut der = sig.to_der().as_bytes().to_vec();
            if opts.pad_sig {
                der.resize(72, 0);
            }
            Ok((TlvType::EcdsaSig, der))
        }
        PrivateKey::Ed25519(sk) if opts.pure => {
            // Ed25519 over the whole hashed region, streamed twice by the signer.
            // hazmat: the expanded key is derived from the signing key exactly as
            // `SigningKey::sign` derives it.
            let esk = ed25519_dalek::hazmat::ExpandedSecretKey::from(sk.as_bytes());
            let sig = ed25519_dalek::hazmat::raw_sign_byupdate::<Sha512, _>(
                &esk,
                |h: &mut Sha512| {
                    region
                        .replay(None, &mut |d| {
                            h.update(d);
                            Ok(())
                        })
                        .map_err(|_| ed25519_dalek::SignatureError::new())
                },
                &sk.verifying_key(),
            )
            .map_err(|_| SignError::Signature)?;
            Ok((TlvType::Ed25519, sig.to_bytes().to_vec()))
        }
        PrivateKey::Ed25519(sk) => {
            use ed25519_dalek::Signer;
            Ok((TlvType::Ed25519, sk.sign(digest).to_bytes().to_vec()))
        }
        PrivateKey::X25519(_) => Err(SignError::CannotSign),
    }
}

#[cfg(test)]
mod tests;
