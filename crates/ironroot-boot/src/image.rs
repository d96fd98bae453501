//! The bridge to `ironroot-image`: reading images in place in flash (also halfway through a
//! swap), and verifying them against the keys the OTP trusts.

use embedded_storage::nor_flash::NorFlashErrorKind;
use ironroot_image::{
    DecryptionKey, FormatError, ImageFlags, ImageKey, ImageLayout, ImageSource, MAX_SPKI_LEN,
    PayloadDecryptor, ReadError, TlvType, TrustedKey, VerifiedImage, VerifyError, unwrap_image_key,
    verify, verify_encrypted,
};

use crate::decision::RefusalReason;
use crate::flash::{BootFlash, FlashError, FlashOp, Region};
use crate::layout::Layout;
use crate::otp::{Otp, OtpCells};
use crate::swap::{Origin, PayloadCipher, SwapPlan, locate};

/// An image read in place from a flash region.
pub struct SlotSource<'f> {
    flash: &'f mut dyn BootFlash,
    region: Region,
}

impl<'f> SlotSource<'f> {
    /// The image at the start of `region`.
    pub fn new(flash: &'f mut dyn BootFlash, region: Region) -> Self {
        Self { flash, region }
    }
}

fn out_of_region(offset: u32) -> FlashError {
    FlashError {
        op: FlashOp::Read,
        offset,
        kind: NorFlashErrorKind::OutOfBounds,
    }
}

impl ImageSource for SlotSource<'_> {
    type Error = FlashError;

    fn len(&self) -> u32 {
        self.region.size
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let inside = u32::try_from(buf.len())
            .ok()
            .and_then(|n| offset.checked_add(n))
            .is_some_and(|end| end <= self.region.size);
        if !inside {
            return Err(out_of_region(self.region.offset.saturating_add(offset)));
        }
        self.flash.read(self.region.offset + offset, buf)
    }
}

/// One of the two images halfway through a swap, read from wherever each of its sectors is.
///
/// Only its header and TLVs (never encrypted) are read through this view: enough to find an
/// encrypted image's key when a swap is resumed.
pub(crate) struct SwapView<'f> {
    pub(crate) flash: &'f mut dyn BootFlash,
    pub(crate) layout: &'f Layout,
    pub(crate) plan: SwapPlan,
    pub(crate) origin: Origin,
    pub(crate) done: u32,
}

impl ImageSource for SwapView<'_> {
    type Error = FlashError;

    fn len(&self) -> u32 {
        self.plan.sectors * self.plan.sector_size
    }

    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        let s = self.plan.sector_size;
        let mut pos = offset;
        let mut done = 0usize;
        while done < buf.len() {
            let j = pos / s;
            if j >= self.plan.sectors {
                return Err(out_of_region(pos));
            }
            let within = pos % s;
            let n = ((s - within) as usize).min(buf.len() - done);
            let phys = locate(self.layout, &self.plan, self.origin, j, self.done) + within;
            self.flash.read(phys, &mut buf[done..done + n])?;
            done += n;
            pos += n as u32;
        }
        Ok(())
    }
}

/// A payload cipher for decrypt-while-copying (and re-encrypt-while-evicting).
pub(crate) struct Cipher {
    dec: PayloadDecryptor,
    start: u32,
    len: u32,
}

impl Cipher {
    pub(crate) fn new(key: &ImageKey, layout: &ImageLayout) -> Self {
        Self {
            dec: PayloadDecryptor::new(key),
            start: u32::from(layout.header.hdr_size),
            len: layout.header.img_size,
        }
    }
}

impl PayloadCipher for Cipher {
    fn payload(&self) -> (u32, u32) {
        (self.start, self.len)
    }
    fn apply(&mut self, payload_offset: u32, buf: &mut [u8]) {
        self.dec.apply(payload_offset, buf);
    }
}

/// How a slot stores image payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Storage {
    /// As they are: the primary slot and the bootloader region always hold plaintext.
    Plain,
    /// Encrypted when the header says so: the secondary slot.
    AsFlagged,
}

/// A verified image and what the boot logic needs besides.
pub(crate) struct Checked {
    pub(crate) image: VerifiedImage,
    /// KEYHASH of the key that verified it.
    pub(crate) signer: [u8; 32],
    /// The payload key, for an encrypted image stored encrypted.
    pub(crate) key: Option<ImageKey>,
    pub(crate) layout: ImageLayout,
}

/// The outcome of looking at a slot: flash errors abort the boot, the rest is a refusal.
pub(crate) type Check<T> = Result<Result<T, RefusalReason>, FlashError>;

/// Parses the structure of the image at `src`: `Ok(Err(Empty))` for an erased slot.
pub(crate) fn parse<S: ImageSource<Error = FlashError>>(src: &mut S) -> Check<ImageLayout> {
    match ImageLayout::parse(src) {
        Ok(l) => Ok(Ok(l)),
        Err(ReadError::Read { error, .. }) => Err(error),
        Err(ReadError::Format(FormatError::BadMagic { found }))
            if found == u32::MAX || found == 0 =>
        {
            Ok(Err(RefusalReason::Empty))
        }
        Err(ReadError::Format(f)) => Ok(Err(RefusalReason::Invalid(VerifyError::Format(f)))),
        Err(_) => Ok(Err(RefusalReason::Unparseable)),
    }
}

fn refusal(e: VerifyError<FlashError>) -> Result<RefusalReason, FlashError> {
    match e {
        VerifyError::Read { error, .. } => Err(error),
        other => Ok(RefusalReason::Invalid(other)),
    }
}

/// Keys the device may use: the provisioned public keys whose hash the OTP trusts, plus any
/// PUBKEY TLV in the image whose hash the OTP trusts (MCUboot's "hardware key" mode).
pub(crate) fn verify_slot<C: OtpCells>(
    flash: &mut dyn BootFlash,
    region: Region,
    keys: &[TrustedKey],
    otp: &Otp<C>,
    storage: Storage,
    decryption: Option<&DecryptionKey>,
) -> Check<Checked> {
    let mut src = SlotSource::new(flash, region);
    let layout = match parse(&mut src)? {
        Ok(l) => l,
        Err(r) => return Ok(Err(r)),
    };
    if layout.header.flags.contains(ImageFlags::NON_BOOTABLE) {
        return Ok(Err(RefusalReason::NotBootable));
    }
    let encrypted = storage == Storage::AsFlagged && layout.header.flags.is_encrypted();
    let key = if encrypted {
        let Some(dk) = decryption else {
            return Ok(Err(RefusalReason::NoDecryptionKey));
        };
        match unwrap_image_key(&mut src, dk) {
            Ok(k) => Some(k),
            Err(e) => return refusal(e).map(Err),
        }
    } else {
        None
    };
    let mut first_error: Option<VerifyError<FlashError>> = None;
    for k in keys.iter().filter(|k| otp.trusts(&k.key_hash())) {
        if let Some(image) = try_key(&mut src, k, key.as_ref(), &mut first_error)? {
            return Ok(Ok(Checked {
                image,
                signer: k.key_hash(),
                key,
                layout,
            }));
        }
    }
    for slot in layout.signature_slots() {
        let Some(entry) = slot.key.filter(|e| e.kind == TlvType::PubKey) else {
            continue;
        };
        let mut der = [0u8; MAX_SPKI_LEN];
        let Some(value) = der.get_mut(..usize::from(entry.len)) else {
            continue;
        };
        match entry.read_value(&mut src, value) {
            Ok(()) => {}
            Err(ReadError::Read { error, .. }) => return Err(error),
            Err(_) => continue,
        }
        let Ok(k) = TrustedKey::from_spki_der(value) else {
            continue;
        };
        if !otp.trusts(&k.key_hash()) || keys.contains(&k) {
            continue;
        }
        if let Some(image) = try_key(&mut src, &k, key.as_ref(), &mut first_error)? {
            return Ok(Ok(Checked {
                image,
                signer: k.key_hash(),
                key,
                layout,
            }));
        }
    }
    Ok(Err(RefusalReason::Invalid(
        first_error.unwrap_or(VerifyError::UntrustedKey),
    )))
}

/// Verifies `src` with one key; `Ok(None)` when it fails (the first failure that is not
/// "untrusted key" is kept in `first_error`, as the most telling reason).
fn try_key(
    src: &mut SlotSource<'_>,
    k: &TrustedKey,
    key: Option<&ImageKey>,
    first_error: &mut Option<VerifyError<FlashError>>,
) -> Result<Option<VerifiedImage>, FlashError> {
    let r = match key {
        Some(ik) => verify_encrypted(&mut *src, core::slice::from_ref(k), ik),
        None => verify(&mut *src, core::slice::from_ref(k)),
    };
    match r {
        Ok(v) => Ok(Some(v)),
        Err(VerifyError::Read { error, .. }) => Err(error),
        Err(VerifyError::UntrustedKey) => Ok(None),
        Err(e) => {
            first_error.get_or_insert(e);
            Ok(None)
        }
    }
}

/// The payload key of an encrypted image found through `src` (plaintext header and TLVs),
/// or `None` when it is not encrypted or its key cannot be unwrapped with `decryption`.
pub(crate) fn image_cipher<S: ImageSource<Error = FlashError>>(
    src: &mut S,
    decryption: Option<&DecryptionKey>,
) -> Result<Option<Cipher>, FlashError> {
    let Some(dk) = decryption else {
        return Ok(None);
    };
    let layout = match parse(src)? {
        Ok(l) if l.header.flags.is_encrypted() => l,
        _ => return Ok(None),
    };
    match unwrap_image_key(&mut *src, dk) {
        Ok(k) => Ok(Some(Cipher::new(&k, &layout))),
        Err(VerifyError::Read { error, .. }) => Err(error),
        Err(_) => Ok(None),
    }
}
