//! A device: flash, OTP fuses, layout and keys, with the operations its life consists of —
//! power on (ROM stage, then bootloader stage), confirm (what the application does after its
//! health check), and read-only status.

use ironroot_image::{DecryptionKey, ImageVersion, TrustedKey};

use crate::decision::{BootDecision, RefusalReason};
use crate::error::BootError;
use crate::flash::BootFlash;
use crate::image::{self, SlotSource, Storage};
use crate::layout::{Layout, Slot};
use crate::otp::{Otp, OtpCells};
use crate::stages::{self, BootEnv};
use crate::trailer::{self, Flag, Magic, Progress, Request, SlotTrailer};

/// What [`Device::confirm`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Confirmation {
    /// image_ok was written: the image stays after the next reset.
    Confirmed,
    /// image_ok was already written.
    AlreadyConfirmed,
    /// The primary slot has no trailer: the image is permanent, there is nothing to confirm.
    Permanent,
}

/// Why [`Device::request_update`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpdateRequestError {
    /// The secondary trailer is neither erased nor the same request.
    TrailerNotErased,
    /// Flash failure.
    Flash(crate::flash::FlashError),
}

impl From<crate::flash::FlashError> for UpdateRequestError {
    fn from(e: crate::flash::FlashError) -> Self {
        Self::Flash(e)
    }
}

impl core::fmt::Display for UpdateRequestError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TrailerNotErased => f.write_str(
                "secondary slot trailer is not erased: erase the slot before writing an update",
            ),
            Self::Flash(e) => write!(f, "requesting the update failed: {e}"),
        }
    }
}

impl core::error::Error for UpdateRequestError {}

/// A verified image, as status reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageReport {
    /// Version.
    pub version: ImageVersion,
    /// Security counter (0 when absent).
    pub security_counter: u32,
    /// SHA-256 of the signed part.
    pub digest: [u8; 32],
    /// KEYHASH of the signer.
    pub signer: [u8; 32],
    /// Header, payload and TLVs.
    pub size: u32,
    /// Whether the header says the payload is encrypted.
    pub encrypted: bool,
}

/// The state of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotReport {
    /// The image, or why it would be refused (counter not included).
    pub image: Result<ImageReport, RefusalReason>,
    /// The decoded trailer.
    pub trailer: SlotTrailer,
}

/// A read-only snapshot of the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// The bootloader image.
    pub bootloader: Result<ImageReport, RefusalReason>,
    /// The primary slot.
    pub primary: SlotReport,
    /// The secondary slot.
    pub secondary: SlotReport,
    /// What the next boot will do (before judging images).
    pub request: Request,
    /// Swap progress in the primary trailer.
    pub progress: Progress,
    /// The OTP security counter.
    pub security_counter: u32,
    /// Counter raises left.
    pub counter_slots_left: usize,
    /// Whether the OTP is locked.
    pub otp_locked: bool,
}

/// A simulated or real device.
///
/// `F` is the flash ([`Nor`](crate::flash::Nor) around an `embedded-storage` driver, or the
/// simulator's [`SimMemory`](crate::sim::SimMemory)); `C` the OTP cells.
pub struct Device<'k, F, C> {
    /// The flash.
    pub flash: F,
    /// The OTP fuses.
    pub otp: Otp<C>,
    layout: Layout,
    keys: &'k [TrustedKey],
    decryption: Option<&'k DecryptionKey>,
}

impl<'k, F: BootFlash, C: OtpCells> Device<'k, F, C> {
    /// A device; fails when the layout does not fit the flash.
    pub fn new(
        flash: F,
        otp: Otp<C>,
        layout: Layout,
        keys: &'k [TrustedKey],
        decryption: Option<&'k DecryptionKey>,
    ) -> Result<Self, BootError> {
        layout.check_flash(&flash)?;
        Ok(Self {
            flash,
            otp,
            layout,
            keys,
            decryption,
        })
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Powers the device on: runs the ROM stage, then the bootloader stage, and returns the
    /// decision. An `Err` means the boot was cut short (flash or OTP failure, power loss).
    pub fn power_on(&mut self) -> Result<BootDecision, BootError> {
        let mut decision = BootDecision::new(self.otp.security_counter());
        let mut env = BootEnv {
            layout: &self.layout,
            otp: &mut self.otp,
            keys: self.keys,
            decryption: self.decryption,
        };
        if stages::rom_stage(&mut self.flash, &mut env, &mut decision)? {
            stages::bootloader_stage(&mut self.flash, &mut env, &mut decision)?;
        }
        decision.counter.after = self.otp.security_counter();
        Ok(decision)
    }

    /// What the application does once its health check passes: marks the running image as
    /// good (image_ok), so the next boot does not revert it. The security counter is raised
    /// to the image's counter by the next boot, before anything else is considered.
    pub fn confirm(&mut self) -> Result<Confirmation, BootError> {
        let pt = SlotTrailer::read(&mut self.flash, &self.layout, Slot::Primary)?;
        if pt.magic != Magic::Good {
            return Ok(Confirmation::Permanent);
        }
        if pt.image_ok != Flag::Unset {
            return Ok(Confirmation::AlreadyConfirmed);
        }
        trailer::write_image_ok(&mut self.flash, &self.layout, Slot::Primary)?;
        Ok(Confirmation::Confirmed)
    }

    /// What an application does after downloading an update into the secondary slot: asks
    /// for a test swap (`permanent == false`, revert unless confirmed) or a permanent one, by
    /// writing the secondary trailer as `imgtool --pad [--confirm]` would have.
    ///
    /// Fails with [`UpdateRequestError::TrailerNotErased`] when the secondary trailer holds
    /// something other than a request of the same kind (erase the slot before downloading).
    pub fn request_update(&mut self, permanent: bool) -> Result<(), UpdateRequestError> {
        let st = SlotTrailer::read(&mut self.flash, &self.layout, Slot::Secondary)?;
        let wanted = if permanent { Flag::Set } else { Flag::Unset };
        if st.magic == Magic::Good && st.image_ok == wanted {
            return Ok(());
        }
        if st != SlotTrailer::ERASED {
            return Err(UpdateRequestError::TrailerNotErased);
        }
        if permanent {
            trailer::write_image_ok(&mut self.flash, &self.layout, Slot::Secondary)?;
        }
        trailer::write_magic(&mut self.flash, &self.layout, Slot::Secondary)?;
        Ok(())
    }

    fn report(
        &mut self,
        region: crate::flash::Region,
        storage: Storage,
    ) -> Result<Result<ImageReport, RefusalReason>, BootError> {
        let checked = image::verify_slot(
            &mut self.flash,
            region,
            self.keys,
            &self.otp,
            storage,
            self.decryption,
        )?;
        Ok(checked.map(|c| ImageReport {
            version: c.image.version,
            security_counter: c.image.security_counter.unwrap_or(0),
            digest: c.image.digest,
            signer: c.signer,
            size: c.image.total_len,
            encrypted: c.image.flags.is_encrypted(),
        }))
    }

    /// A read-only snapshot: both slots (verified), trailers, pending request, OTP state.
    pub fn status(&mut self) -> Result<Status, BootError> {
        let layout = self.layout;
        let pt = SlotTrailer::read(&mut self.flash, &layout, Slot::Primary)?;
        let st = SlotTrailer::read(&mut self.flash, &layout, Slot::Secondary)?;
        Ok(Status {
            bootloader: self.report(layout.bootloader, Storage::Plain)?,
            primary: SlotReport {
                image: self.report(layout.primary, Storage::Plain)?,
                trailer: pt,
            },
            secondary: SlotReport {
                image: self.report(layout.secondary, Storage::AsFlagged)?,
                trailer: st,
            },
            request: trailer::request(&pt, &st),
            progress: trailer::read_progress(&mut self.flash, &layout)?,
            security_counter: self.otp.security_counter(),
            counter_slots_left: self.otp.counter_slots_left(),
            otp_locked: self.otp.is_locked(),
        })
    }

    /// The structure of the image in `slot` without verifying it (for tools).
    pub fn image_size(&mut self, slot: Slot) -> Result<Option<u32>, BootError> {
        let mut src = SlotSource::new(&mut self.flash, self.layout.slot(slot));
        Ok(image::parse(&mut src)?.ok().map(|l| l.total_len()))
    }
}
