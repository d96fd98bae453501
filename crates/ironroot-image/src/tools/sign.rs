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

use crate::encrypted::{AesKeySize, PayloadDecryptor};
use crate::header::{IMAGE_HEADER_SIZE, ImageFlags, ImageHeader, ImageVersion};
use crate::layout::Dependency;
use crate::tlv::{TLV_INFO_MAGIC, TLV_PROT_INFO_MAGIC, TlvType};
use crate::tools::keyfile::{KeyType, PrivateKey, PublicKey};
use crate::tools::trailer::{TrailerError, TrailerLayout};
use crate::tools::wrap::{HmacSha, WrapError, random_image_key, wrap_image_key};

/// Security counter choice (imgtool `-s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityCounter {
    /// `auto`: `major << 24 | minor << 16 | revision` of the image version.
    Auto,
    /// An explicit value.
    Value(u32),
}

/// How the signing key is named in the image (imgtool `--public-key-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublicKeyFormat {
    /// KEYHASH TLV: hash of the SubjectPublicKeyInfo (default).
    #[default]
    Hash,
    /// PUBKEY TLV: the SubjectPublicKeyInfo itself.
    Full,
}

/// Image hash choice (imgtool `--sha`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashChoice {
    /// The key's default: SHA-256 (SHA-512 for `--pure`).
    #[default]
    Auto,
    /// SHA-256.
    Sha256,
    /// SHA-512 (Ed25519 keys or unsigned images only).
    Sha512,
}

/// Options of `sign`, named after imgtool's flags.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignOptions {
    /// `-v`: image version.
    pub version: ImageVersion,
    /// `-H`: header size (at least 32).
    pub header_size: u16,
    /// `--pad-header`: prepend `header_size` erased bytes instead of requiring the input to
    /// start with `header_size` zero bytes.
    pub pad_header: bool,
    /// `-S`: slot size; 0 skips the size check.
    pub slot_size: u32,
    /// `--pad`: pad to the slot size and write the trailer magic.
    pub pad: bool,
    /// `--confirm`: set image_ok in the trailer (implies `pad`).
    pub confirm: bool,
    /// `--test`: leave image_ok erased but pad (implies `pad`).
    pub test: bool,
    /// `--align`: flash write alignment (1, 2, 4, 8, 16, 32).
    pub align: u32,
    /// `--max-align`: 8, 16 or 32; default `max(8, align)`.
    pub max_align: Option<u32>,
    /// `-M`: sectors in the swap status area (default 128).
    pub max_sectors: Option<u32>,
    /// `--overwrite-only`.
    pub overwrite_only: bool,
    /// `-R`: value of erased flash (0xff or 0).
    pub erased_val: u8,
    /// `-L`: RAM load address (sets RAM_LOAD).
    pub load_addr: Option<u32>,
    /// `-F`: fixed flash address (sets ROM_FIXED).
    pub rom_fixed: Option<u32>,
    /// `--non-bootable`.
    pub non_bootable: bool,
    /// `-s`: security counter.
    pub security_counter: Option<SecurityCounter>,
    /// `-d`: dependencies.
    pub dependencies: Vec<Dependency>,
    /// `--public-key-format`.
    pub public_key_format: PublicKeyFormat,
    /// `--pure`: Ed25519 signature over the image instead of its digest.
    pub pure: bool,
    /// `--sha`.
    pub hash: HashChoice,
    /// `--encrypt-keylen`.
    pub encrypt_keylen: AesKeySize,
    /// `--hmac-sha`.
    pub hmac_sha: HmacSha,
    /// `-c/--clear`: add the encryption TLV and flag but leave the payload in clear.
    pub clear: bool,
    /// `--save-enctlv`: size the trailer's key fields for the whole ENC TLV.
    pub save_enctlv: bool,
    /// `--pad-sig`: pad ECDSA signatures to 72 bytes (MCUboot < 1.5).
    pub pad_sig: bool,
    /// `--custom-tlv`: protected vendor TLVs (type 0xa0..=0xfffe) in order.
    pub custom_tlvs: Vec<(u16, Vec<u8>)>,
    /// `--vid`: vendor UUID (16 raw bytes).
    pub vendor_id: Option<[u8; 16]>,
    /// `--cid`: image class UUID (16 raw bytes).
    pub class_id: Option<[u8; 16]>,
}

impl SignOptions {
    /// imgtool's defaults for the three required options (`-v`, `-H`, `-S`).
    pub fn new(version: ImageVersion, header_size: u16, slot_size: u32) -> Self {
        Self {
            version,
            header_size,
            pad_header: false,
            slot_size,
            pad: false,
            confirm: false,
            test: false,
            align: 1,
            max_align: None,
            max_sectors: None,
            overwrite_only: false,
            erased_val: 0xff,
            load_addr: None,
            rom_fixed: None,
            non_bootable: false,
            security_counter: None,
            dependencies: Vec::new(),
            public_key_format: PublicKeyFormat::Hash,
            pure: false,
            hash: HashChoice::Auto,
            encrypt_keylen: AesKeySize::Aes128,
            hmac_sha: HmacSha::Sha256,
            clear: false,
            save_enctlv: false,
            pad_sig: false,
            custom_tlvs: Vec::new(),
            vendor_id: None,
            class_id: None,
        }
    }
}

/// Why signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// Reading the input or writing the output failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// `-H` below 32.
    #[error("header size {0} is below the minimum of 32 bytes")]
    HeaderTooSmall(u16),
    /// Without `--pad-header`, the input must start with `header_size` zero bytes.
    #[error(
        "header padding was not requested and the image does not start with {0} zero bytes \
         (add --pad-header)"
    )]
    HeaderNotZero(u16),
    /// The input is shorter than the header it must contain.
    #[error("input is {len} bytes, shorter than the {header_size}-byte header")]
    InputShorterThanHeader {
        /// Input length.
        len: u64,
        /// Header size.
        header_size: u16,
    },
    /// The image does not fit MCUboot's 32-bit sizes.
    #[error("image is too large for the MCUboot format (sizes are 32-bit)")]
    TooLarge,
    /// The protected TLVs exceed 64 KiB.
    #[error("protected TLVs are larger than 65535 bytes")]
    ProtectedTlvsTooLarge,
    /// The signed image plus trailer does not fit the slot.
    #[error("image size ({image:#x}) + trailer ({trailer:#x}) exceeds requested size {slot:#x}")]
    DoesNotFitSlot {
        /// Image size.
        image: u64,
        /// Trailer size.
        trailer: u32,
        /// Slot size.
        slot: u32,
    },
    /// The hash algorithm is not allowed for the key.
    #[error("key {key} can not be used with --sha {sha}; allowed: {allowed}")]
    HashNotAllowed {
        /// The key type.
        key: KeyType,
        /// The requested hash.
        sha: &'static str,
        /// The allowed hashes.
        allowed: &'static str,
    },
    /// `--pure` needs an Ed25519 signing key.
    #[error("--pure requires an ed25519 signing key")]
    PureRequiresEd25519,
    /// `--pure` fixes the hash; `--sha` may not be given.
    #[error("pure signatures enforce their hash algorithm; do not combine --pure with --sha")]
    PureWithSha,
    /// X25519 keys cannot sign.
    #[error("x25519 keys cannot sign images; use ecdsa-p256 or ed25519")]
    CannotSign,
    /// imgtool requires a P-256 encryption key when signing with P-256.
    #[error(
        "signing and encryption must use the same type of key (ecdsa-p256 signing needs an ecdsa-p256 encryption key)"
    )]
    EncryptionKeyMismatch,
    /// The encryption key cannot wrap.
    #[error(transparent)]
    Wrap(#[from] WrapError),
    /// `-L` and `-F` together.
    #[error("can not set rom_fixed and load_addr at the same time")]
    LoadAddrAndRomFixed,
    /// A custom TLV type is outside the vendor range or clashes with a defined type.
    #[error("custom TLV type {0:#06x} must be in 0x00a0..=0xfffe and not a predefined type")]
    BadCustomTlv(u16),
    /// A custom TLV type appears twice.
    #[error("custom TLV {0:#x} already exists")]
    DuplicateCustomTlv(u16),
    /// A TLV value exceeds 65535 bytes.
    #[error("TLV value of {0} bytes exceeds 65535")]
    TlvTooLarge(usize),
    /// Trailer options are invalid.
    #[error("{0}")]
    Trailer(#[from] TrailerError),
    /// The signing primitive failed.
    #[error("signing failed")]
    Signature,
}

/// What `sign` produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedImage {
    /// The header written.
    pub header: ImageHeader,
    /// The image hash (SHA-256 or SHA-512) over header, plaintext payload and protected TLVs.
    pub digest: Vec<u8>,
    /// The signature bytes, when a key signed.
    pub signature: Option<Vec<u8>>,
    /// Length of the image (through the main TLV area).
    pub image_len: u64,
    /// Bytes written (image, plus padding and trailer with `--pad`).
    pub output_len: u64,
}

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
mod tests {
    use super::*;
    use crate::{SignatureKind, VerifyError, unwrap_image_key, verify, verify_encrypted};
    use std::io::Cursor;

    fn firmware(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn sign_vec(
        input: &[u8],
        key: Option<&PrivateKey>,
        enc: Option<&PublicKey>,
        opts: &SignOptions,
    ) -> Result<Vec<u8>, SignError> {
        let mut out = Vec::new();
        sign(Cursor::new(input), &mut out, key, enc, opts)?;
        Ok(out)
    }

    fn opts() -> SignOptions {
        let mut o = SignOptions::new(ImageVersion::new(1, 2, 3, 4), 0x200, 0x20000);
        o.pad_header = true;
        o
    }

    #[test]
    fn signed_images_verify_for_every_key_and_mode() {
        let fw = firmware(5000);
        for (kind, pure, sha) in [
            (KeyType::EcdsaP256, false, HashChoice::Auto),
            (KeyType::Ed25519, false, HashChoice::Auto),
            (KeyType::Ed25519, false, HashChoice::Sha512),
            (KeyType::Ed25519, true, HashChoice::Auto),
        ] {
            let key = PrivateKey::generate(kind);
            let mut o = opts();
            o.pure = pure;
            o.hash = sha;
            o.security_counter = Some(SecurityCounter::Auto);
            o.dependencies = vec![Dependency {
                image_id: 1,
                min_version: ImageVersion::new(2, 0, 0, 0),
            }];
            let img = sign_vec(&fw, Some(&key), None, &o).unwrap();
            let trusted = key.public_key().trusted_key().unwrap();
            let v =
                verify(&img[..], &[trusted]).unwrap_or_else(|e| panic!("{kind} pure={pure}: {e}"));
            assert_eq!(v.security_counter, Some(0x0102_0003));
            assert_eq!(v.dependencies.len(), 1);
            assert_eq!(v.dependencies[0].image_id, 1);
            let expect = match (kind, pure) {
                (KeyType::EcdsaP256, _) => SignatureKind::EcdsaP256,
                (_, false) => SignatureKind::Ed25519,
                (_, true) => SignatureKind::Ed25519Pure,
            };
            assert_eq!(v.signature, expect);
            assert_eq!(&img[0x200..0x200 + fw.len()], &fw[..]);
        }
    }

    #[test]
    fn padded_image_fills_the_slot_and_confirm_sets_image_ok() {
        let key = PrivateKey::generate(KeyType::Ed25519);
        let mut o = opts();
        o.confirm = true;
        o.slot_size = 0x4000;
        let img = sign_vec(&firmware(100), Some(&key), None, &o).unwrap();
        assert_eq!(img.len(), 0x4000);
        let info = TrailerLayout::new(1, None, None, false, None).unwrap();
        assert_eq!(img[img.len() - 16..], info.magic());
        assert_eq!(img[img.len() - 24], 1);
        assert!(verify(&img[..], &[key.public_key().trusted_key().unwrap()]).is_ok());
    }

    #[test]
    fn encrypted_image_verifies_only_after_decryption() {
        let fw = firmware(3001);
        let signer = PrivateKey::generate(KeyType::EcdsaP256);
        let device = PrivateKey::generate(KeyType::EcdsaP256);
        let img = sign_vec(&fw, Some(&signer), Some(&device.public_key()), &opts()).unwrap();
        let trusted = [signer.public_key().trusted_key().unwrap()];
        assert_ne!(
            &img[0x200..0x200 + fw.len()],
            &fw[..],
            "payload must be encrypted"
        );
        assert_eq!(verify(&img[..], &trusted), Err(VerifyError::HashMismatch));
        let dk = device.decryption_key().unwrap();
        let key = unwrap_image_key(&img[..], &dk).unwrap();
        let v = verify_encrypted(&img[..], &trusted, &key).unwrap();
        assert!(v.flags.contains(ImageFlags::ENCRYPTED_AES128));
        // imgtool pads header + payload to a multiple of 16 before encrypting.
        assert_eq!(v.header.img_size, 3008);
    }

    #[test]
    fn option_errors_are_typed() {
        let p256 = PrivateKey::generate(KeyType::EcdsaP256);
        let fw = firmware(64);
        let mut o = opts();
        o.pure = true;
        assert!(matches!(
            sign_vec(&fw, Some(&p256), None, &o),
            Err(SignError::PureRequiresEd25519)
        ));
        let mut o = opts();
        o.hash = HashChoice::Sha512;
        assert!(matches!(
            sign_vec(&fw, Some(&p256), None, &o),
            Err(SignError::HashNotAllowed { .. })
        ));
        let mut o = opts();
        o.pad_header = false;
        assert!(matches!(
            sign_vec(&fw, Some(&p256), None, &o),
            Err(SignError::InputShorterThanHeader { .. })
        ));
        let big = firmware(0x1000);
        assert!(matches!(
            sign_vec(&big, Some(&p256), None, &o),
            Err(SignError::HeaderNotZero(0x200))
        ));
        let mut o = opts();
        o.slot_size = 0x300;
        assert!(matches!(
            sign_vec(&fw, Some(&p256), None, &o),
            Err(SignError::DoesNotFitSlot { .. })
        ));
        let x = PrivateKey::generate(KeyType::X25519);
        assert!(matches!(
            sign_vec(&fw, Some(&p256), Some(&x.public_key()), &opts()),
            Err(SignError::EncryptionKeyMismatch)
        ));
        let mut o = opts();
        o.custom_tlvs = vec![(0x10, vec![1])];
        assert!(matches!(
            sign_vec(&fw, Some(&p256), None, &o),
            Err(SignError::BadCustomTlv(0x10))
        ));
    }
}
