//! The two boot stages: the boot ROM verifies the bootloader; the bootloader decides about
//! swaps, performs or resumes them, enforces anti-rollback and verifies the application.
//!
//! ```text
//! ROM:         verify bootloader region (OTP-trusted keys) ── refuse ──> halt
//!                 │ measure
//!                 v
//! bootloader:  read trailers ──> request?
//!                 ├─ resume(kind): finish the interrupted swap where the status area says
//!                 ├─ swap(kind):   verify running image; if explicitly confirmed, raise the
//!                 │                OTP counter to it FIRST; verify candidate (signature, key,
//!                 │                counter >= OTP, size) ── refuse ──> nothing is written
//!                 │                start + finish the swap (decrypt while copying)
//!                 └─ none
//!              verify primary, counter >= OTP ── refuse ──> halt
//!              confirmed (image_ok written, or permanent and nothing pending)? raise OTP counter
//!              measure, boot
//! ```

use ironroot_image::{DecryptionKey, TrustedKey};

use crate::decision::{Action, BootDecision, BootedImage, Outcome, RefusalReason, Subject};
use crate::error::BootError;
use crate::flash::BootFlash;
use crate::image::{self, Checked, Storage, SwapView};
use crate::layout::{Layout, Slot};
use crate::measure::{Component, Measurement, Stage};
use crate::otp::{Otp, OtpCells, OtpError};
use crate::swap::{self, Origin, PayloadCipher, SwapCiphers, SwapPlan};
use crate::trailer::{self, Magic, Request, SlotTrailer, SwapKind};

/// What the stages need besides flash: the layout, the fuses and the keys.
pub struct BootEnv<'a, C> {
    /// The flash layout.
    pub layout: &'a Layout,
    /// The OTP fuses (root-of-trust key hashes, security counter).
    pub otp: &'a mut Otp<C>,
    /// Provisioned public keys; only those whose hash the OTP trusts are used.
    pub keys: &'a [TrustedKey],
    /// The device's private key for encrypted images, if it has one.
    pub decryption: Option<&'a DecryptionKey>,
}

fn measurement(stage: Stage, component: Component, c: &Checked) -> Measurement {
    Measurement {
        stage,
        component,
        version: c.image.version,
        security_counter: c.image.security_counter.unwrap_or(0),
        digest: c.image.digest,
        signer: c.signer,
    }
}

/// The boot ROM stage: verifies the bootloader image against the OTP-trusted keys and
/// measures it. Returns whether the bootloader may run.
pub fn rom_stage<C: OtpCells>(
    flash: &mut dyn BootFlash,
    env: &mut BootEnv<'_, C>,
    decision: &mut BootDecision,
) -> Result<bool, BootError> {
    let checked = image::verify_slot(
        flash,
        env.layout.bootloader,
        env.keys,
        env.otp,
        Storage::Plain,
        None,
    )?;
    match checked {
        Ok(c) => {
            decision
                .measurements
                .extend(measurement(Stage::Rom, Component::Bootloader, &c))?;
            Ok(true)
        }
        Err(reason) => {
            decision.refuse(Subject::Bootloader, None, reason);
            decision.outcome = Outcome::NothingBootable;
            Ok(false)
        }
    }
}

/// Whether the primary trailer says the running image was confirmed: image_ok written, and
/// either a swap completed (copy_done) or no swap was ever recorded (an image signed with
/// `--pad --confirm` and flashed in the factory).
fn explicitly_confirmed(pt: &SlotTrailer) -> bool {
    pt.magic == Magic::Good
        && pt.image_ok.is_written()
        && (pt.copy_done.is_written() || pt.swap_info.is_none())
}

/// Raises the OTP counter to `to`. A counter with no pair left cannot move; the image still
/// boots (refusing would brick the device) and the decision shows the counter unchanged.
fn raise<C: OtpCells>(otp: &mut Otp<C>, to: u32) -> Result<(), BootError> {
    match otp.raise_counter(to) {
        Ok(_) | Err(OtpError::CounterExhausted) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The bootloader stage. Fills in `decision`.
pub fn bootloader_stage<C: OtpCells>(
    flash: &mut dyn BootFlash,
    env: &mut BootEnv<'_, C>,
    decision: &mut BootDecision,
) -> Result<(), BootError> {
    let layout = env.layout;
    let pt = SlotTrailer::read(flash, layout, Slot::Primary)?;
    let st = SlotTrailer::read(flash, layout, Slot::Secondary)?;
    let mut primary = None;
    match trailer::request(&pt, &st) {
        Request::Resume(kind) => resume(flash, env, decision, &pt, kind)?,
        Request::Swap(kind) => primary = new_swap(flash, env, decision, &pt, kind)?,
        Request::None => {}
    }
    boot_primary(flash, env, decision, primary)
}

fn resume<C: OtpCells>(
    flash: &mut dyn BootFlash,
    env: &mut BootEnv<'_, C>,
    decision: &mut BootDecision,
    pt: &SlotTrailer,
    kind: SwapKind,
) -> Result<(), BootError> {
    let layout = env.layout;
    let corrupt = |d: &mut BootDecision| {
        d.refuse(
            Subject::InterruptedSwap,
            Some(kind),
            RefusalReason::CorruptTrailer,
        )
    };
    let Some(plan) = pt.swap_size.and_then(|s| SwapPlan::new(layout, s)) else {
        corrupt(decision);
        return Ok(());
    };
    let progress = trailer::read_progress(flash, layout)?;
    if !progress.consistent || progress.done > plan.steps() {
        corrupt(decision);
        return Ok(());
    }
    let done = progress.done;
    let view = |flash: &mut dyn BootFlash, origin| -> Result<_, BootError> {
        let mut v = SwapView {
            flash,
            layout,
            plan,
            origin,
            done,
        };
        Ok(image::image_cipher(&mut v, env.decryption)?)
    };
    let mut install = view(flash, Origin::Secondary)?;
    let mut evict = view(flash, Origin::Primary)?;
    let mut ciphers = SwapCiphers {
        install: install.as_mut().map(|c| c as &mut dyn PayloadCipher),
        evict: evict.as_mut().map(|c| c as &mut dyn PayloadCipher),
    };
    swap::finish(flash, layout, &plan, kind, done, &mut ciphers)?;
    decision.action = Action::Resumed(kind);
    Ok(())
}

/// Judges a new swap request; performs it when the candidate passes. Returns the verified
/// primary image when the primary slot was left untouched.
fn new_swap<C: OtpCells>(
    flash: &mut dyn BootFlash,
    env: &mut BootEnv<'_, C>,
    decision: &mut BootDecision,
    pt: &SlotTrailer,
    kind: SwapKind,
) -> Result<Option<Checked>, BootError> {
    let layout = env.layout;
    let current = image::verify_slot(
        flash,
        layout.primary,
        env.keys,
        env.otp,
        Storage::Plain,
        None,
    )?;
    // A confirmed running image fixes the floor before any candidate is judged: otherwise a
    // confirmed-but-not-yet-fused image could be replaced by an older one (MCUboot #1708).
    if let Ok(c) = &current
        && explicitly_confirmed(pt)
    {
        raise(env.otp, c.image.security_counter.unwrap_or(0))?;
    }
    let refuse = |d: &mut BootDecision, reason| {
        d.refuse(Subject::Slot(Slot::Secondary), Some(kind), reason);
        d.action = Action::Refused(kind);
    };
    let candidate = match image::verify_slot(
        flash,
        layout.secondary,
        env.keys,
        env.otp,
        Storage::AsFlagged,
        env.decryption,
    )? {
        Ok(c) => c,
        Err(reason) => {
            refuse(decision, reason);
            return Ok(current.ok());
        }
    };
    let floor = env.otp.security_counter();
    let counter = candidate.image.security_counter.unwrap_or(0);
    if counter < floor {
        refuse(
            decision,
            RefusalReason::Rollback {
                image: counter,
                floor,
            },
        );
        return Ok(current.ok());
    }
    let max = layout.max_image_size();
    let b_len = candidate.image.total_len;
    if b_len > max {
        refuse(decision, RefusalReason::TooLarge { size: b_len, max });
        return Ok(current.ok());
    }
    // Only a valid running image is worth keeping for a revert; anything else in the primary
    // slot is overwritten by as much as the candidate needs.
    let a_len = current.as_ref().map_or(0, |c| c.image.total_len);
    if a_len > max {
        decision.refuse(
            Subject::Slot(Slot::Primary),
            Some(kind),
            RefusalReason::PrimaryTooLarge { size: a_len, max },
        );
        decision.action = Action::Refused(kind);
        return Ok(current.ok());
    }
    let swap_size = a_len.max(b_len);
    let Some(plan) = SwapPlan::new(layout, swap_size) else {
        refuse(
            decision,
            RefusalReason::TooLarge {
                size: swap_size,
                max,
            },
        );
        return Ok(current.ok());
    };
    let mut install = candidate
        .key
        .as_ref()
        .map(|k| image::Cipher::new(k, &candidate.layout));
    // Found exactly as a resumed swap will find it (through the swap view, before step 0), so
    // an interrupted swap never changes how the evicted image is transformed.
    let mut evict = image::image_cipher(
        &mut SwapView {
            flash: &mut *flash,
            layout,
            plan,
            origin: Origin::Primary,
            done: 0,
        },
        env.decryption,
    )?;
    let mut ciphers = SwapCiphers {
        install: install.as_mut().map(|c| c as &mut dyn PayloadCipher),
        evict: evict.as_mut().map(|c| c as &mut dyn PayloadCipher),
    };
    swap::start(flash, layout, kind, swap_size)?;
    swap::finish(flash, layout, &plan, kind, 0, &mut ciphers)?;
    decision.action = Action::Swapped(kind);
    Ok(None)
}

/// Verifies the primary slot (unless `verified` already holds it), enforces the counter,
/// raises the counter for a confirmed image, measures and decides.
fn boot_primary<C: OtpCells>(
    flash: &mut dyn BootFlash,
    env: &mut BootEnv<'_, C>,
    decision: &mut BootDecision,
    verified: Option<Checked>,
) -> Result<(), BootError> {
    let layout = env.layout;
    let c = match verified {
        Some(c) => c,
        None => match image::verify_slot(
            flash,
            layout.primary,
            env.keys,
            env.otp,
            Storage::Plain,
            None,
        )? {
            Ok(c) => c,
            Err(reason) => {
                decision.refuse(Subject::Slot(Slot::Primary), None, reason);
                decision.outcome = Outcome::NothingBootable;
                return Ok(());
            }
        },
    };
    let counter = c.image.security_counter.unwrap_or(0);
    let floor = env.otp.security_counter();
    if counter < floor {
        decision.refuse(
            Subject::Slot(Slot::Primary),
            None,
            RefusalReason::Rollback {
                image: counter,
                floor,
            },
        );
        decision.outcome = Outcome::NothingBootable;
        return Ok(());
    }
    let pt = SlotTrailer::read(flash, layout, Slot::Primary)?;
    let st = SlotTrailer::read(flash, layout, Slot::Secondary)?;
    let trial = trailer::primary_on_trial(&pt);
    let permanent = !trial && trailer::request(&pt, &st) == Request::None;
    if explicitly_confirmed(&pt) || permanent {
        raise(env.otp, counter)?;
    }
    decision
        .measurements
        .extend(measurement(Stage::Bootloader, Component::Application, &c))?;
    decision.counter.after = env.otp.security_counter();
    decision.outcome = Outcome::Boot(BootedImage {
        slot: Slot::Primary,
        version: c.image.version,
        security_counter: counter,
        digest: c.image.digest,
        signer: c.signer,
        size: c.image.total_len,
        trial,
    });
    Ok(())
}
