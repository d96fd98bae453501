//! Human and JSON output of `ironroot boot`.

use std::path::Path;

use anyhow::Result;
use ironroot_boot::measure::{Component, Stage};
use ironroot_boot::sim::FlashStats;
use ironroot_boot::trailer::{Flag, Magic, SlotTrailer};
use ironroot_boot::{
    Action, BootDecision, ImageReport, Layout, Outcome, RefusalReason, Request, Status, SwapKind,
};
use ironroot_image::ImageVersion;
use serde_json::{Value, json};

use super::devdir::{Config, hex};

fn version(v: &ImageVersion) -> String {
    format!("{}.{}.{}+{}", v.major, v.minor, v.revision, v.build)
}

fn short(h: &[u8; 32]) -> String {
    hex(&h[..8])
}

pub fn print_init(dir: &Path, c: &Config, l: &Layout, hashes: &[[u8; 32]]) {
    println!("created device {}", dir.display());
    println!(
        "  flash: sector {:#x}, write size {}, erased {:#04x}",
        c.sector_size, c.write_size, c.erased
    );
    println!("  bootloader region {}", l.bootloader);
    println!(
        "  primary slot      {} ({:#x} bytes)",
        l.primary, l.primary.size
    );
    println!(
        "  secondary slot    {} ({:#x} bytes)",
        l.secondary, l.secondary.size
    );
    println!(
        "  largest swappable image: {:#x} bytes; trailer {:#x} bytes",
        l.max_image_size(),
        l.trailer.size()
    );
    for (i, h) in hashes.iter().enumerate() {
        println!("  OTP key slot {i}: sha256 {} (locked)", hex(h));
    }
    if c.decryption_key {
        println!(
            "  decryption key: {}",
            dir.join(super::devdir::DEVICE_KEY).display()
        );
    }
    println!(
        "sign application images with: -S {:#x} --align {}{}",
        l.secondary.size,
        c.write_size,
        if c.erased == 0 { " -R 0" } else { "" }
    );
}

fn action_json(a: &Action) -> Value {
    let (what, kind) = match a {
        Action::None => ("none", None),
        Action::Swapped(k) => ("swapped", Some(*k)),
        Action::Resumed(k) => ("resumed", Some(*k)),
        Action::Refused(k) => ("refused", Some(*k)),
    };
    json!({ "what": what, "swap": kind.map(kind_name) })
}

fn kind_name(k: SwapKind) -> &'static str {
    match k {
        SwapKind::Test => "test",
        SwapKind::Perm => "permanent",
        SwapKind::Revert => "revert",
    }
}

fn reason_code(r: &RefusalReason) -> &'static str {
    match r {
        RefusalReason::Empty => "empty",
        RefusalReason::Unparseable => "unparseable",
        RefusalReason::Invalid(_) => "invalid",
        RefusalReason::Rollback { .. } => "rollback",
        RefusalReason::TooLarge { .. } => "too-large",
        RefusalReason::PrimaryTooLarge { .. } => "primary-too-large",
        RefusalReason::NotBootable => "not-bootable",
        RefusalReason::NoDecryptionKey => "no-decryption-key",
        RefusalReason::CorruptTrailer => "corrupt-trailer",
        _ => "other",
    }
}

pub fn decision_json(d: &BootDecision, stats: &FlashStats) -> Value {
    let booted = d.booted().map(|b| {
        json!({
            "slot": b.slot.to_string(),
            "version": version(&b.version),
            "security_counter": b.security_counter,
            "digest": hex(&b.digest),
            "signer": hex(&b.signer),
            "size": b.size,
            "trial": b.trial,
        })
    });
    let refusals: Vec<Value> = d
        .refusals()
        .map(|r| {
            json!({
                "subject": r.subject.to_string(),
                "request": r.request.map(kind_name),
                "reason": reason_code(&r.reason),
                "message": r.to_string(),
            })
        })
        .collect();
    let measurements: Vec<Value> = d
        .measurements
        .entries()
        .map(|m| {
            json!({
                "stage": match m.stage { Stage::Rom => "rom", Stage::Bootloader => "bootloader" },
                "component": match m.component {
                    Component::Bootloader => "bootloader",
                    Component::Application => "application",
                },
                "version": version(&m.version),
                "security_counter": m.security_counter,
                "digest": hex(&m.digest),
                "signer": hex(&m.signer),
            })
        })
        .collect();
    json!({
        "bootable": matches!(d.outcome, Outcome::Boot(_)),
        "booted": booted,
        "action": action_json(&d.action),
        "refusals": refusals,
        "security_counter": { "before": d.counter.before, "after": d.counter.after },
        "pcr": hex(&d.measurements.pcr()),
        "measurements": measurements,
        "flash": { "erases": stats.erases, "writes": stats.writes, "bytes_written": stats.write_bytes },
    })
}

pub fn print_decision(d: &BootDecision, stats: &FlashStats, as_json: bool) -> Result<()> {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&decision_json(d, stats))?
        );
        return Ok(());
    }
    let rom = d.measurements.entries().find(|m| m.stage == Stage::Rom);
    match rom {
        Some(m) => println!(
            "boot ROM: bootloader version {} verified, sha256 {}",
            version(&m.version),
            short(&m.digest)
        ),
        None => println!("boot ROM: bootloader not verified; the bootloader did not run"),
    }
    if rom.is_some() {
        match d.action {
            Action::None => println!("bootloader: no swap"),
            a => println!("bootloader: {a}"),
        }
    }
    for r in d.refusals() {
        println!("refused: {r}");
    }
    match d.booted() {
        Some(b) => {
            println!(
                "booted: {} slot, version {}, security counter {}, sha256 {}{}",
                b.slot,
                version(&b.version),
                b.security_counter,
                hex(&b.digest),
                if b.trial {
                    " — ON TRIAL: confirm it (`ironroot boot confirm`) or the next boot reverts"
                } else {
                    ""
                }
            );
        }
        None => println!("nothing bootable: the device halts"),
    }
    println!(
        "security counter (OTP): {} -> {}",
        d.counter.before, d.counter.after
    );
    println!("measurements (PCR {}):", hex(&d.measurements.pcr()));
    for (i, m) in d.measurements.entries().enumerate() {
        println!(
            "  {i}  {:<10} {:<11} version {:<12} counter {:<4} sha256 {} signer {}",
            match m.stage {
                Stage::Rom => "rom",
                Stage::Bootloader => "bootloader",
            },
            match m.component {
                Component::Bootloader => "bootloader",
                Component::Application => "application",
            },
            version(&m.version),
            m.security_counter,
            hex(&m.digest),
            short(&m.signer)
        );
    }
    println!(
        "flash this boot: {} sector erases, {} writes ({} bytes)",
        stats.erases, stats.writes, stats.write_bytes
    );
    Ok(())
}

fn flag(f: Flag) -> &'static str {
    match f {
        Flag::Unset => "unset",
        Flag::Set => "set",
        Flag::Bad => "bad",
    }
}

fn trailer_json(t: &SlotTrailer) -> Value {
    json!({
        "magic": match t.magic { Magic::Good => "good", Magic::Unset => "unset", Magic::Bad => "bad" },
        "swap_type": t.swap_kind().map(kind_name),
        "swap_info": t.swap_info,
        "copy_done": flag(t.copy_done),
        "image_ok": flag(t.image_ok),
        "swap_size": t.swap_size,
    })
}

fn image_json(r: &Result<ImageReport, RefusalReason>) -> Value {
    match r {
        Ok(i) => json!({
            "valid": true,
            "version": version(&i.version),
            "security_counter": i.security_counter,
            "digest": hex(&i.digest),
            "signer": hex(&i.signer),
            "size": i.size,
            "encrypted": i.encrypted,
        }),
        Err(e) => json!({ "valid": false, "reason": reason_code(e), "message": e.to_string() }),
    }
}

fn request_text(r: &Request) -> String {
    match r {
        Request::None => "boot the primary slot".into(),
        Request::Swap(SwapKind::Revert) => {
            "revert: the primary image is on trial and was not confirmed".into()
        }
        Request::Swap(k) => format!("{} swap of the secondary image", kind_name(*k)),
        Request::Resume(k) => format!("resume the interrupted {} swap", kind_name(*k)),
    }
}

pub fn print_status(dir: &Path, l: &Layout, st: &Status, as_json: bool) -> Result<()> {
    if as_json {
        let v = json!({
            "device": dir.display().to_string(),
            "bootloader": image_json(&st.bootloader),
            "primary": { "region": l.primary.to_string(), "image": image_json(&st.primary.image), "trailer": trailer_json(&st.primary.trailer) },
            "secondary": { "region": l.secondary.to_string(), "image": image_json(&st.secondary.image), "trailer": trailer_json(&st.secondary.trailer) },
            "next_boot": request_text(&st.request),
            "swap_progress": { "steps_done": st.progress.done, "consistent": st.progress.consistent },
            "otp": { "security_counter": st.security_counter, "counter_raises_left": st.counter_slots_left, "locked": st.otp_locked },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let img = |r: &Result<ImageReport, RefusalReason>| match r {
        Ok(i) => format!(
            "version {}, security counter {}, {} bytes{}, sha256 {}",
            version(&i.version),
            i.security_counter,
            i.size,
            if i.encrypted { ", encrypted" } else { "" },
            short(&i.digest)
        ),
        Err(e) => format!("not valid: {e}"),
    };
    let tr = |t: &SlotTrailer| {
        format!(
            "magic {}, swap type {}, copy_done {}, image_ok {}",
            match t.magic {
                Magic::Good => "good",
                Magic::Unset => "unset",
                Magic::Bad => "bad",
            },
            t.swap_kind().map_or("-", kind_name),
            flag(t.copy_done),
            flag(t.image_ok)
        )
    };
    let split = matches!(st.request, Request::Resume(_));
    let slot_img = |r: &Result<ImageReport, RefusalReason>| {
        if split {
            "images are split between the slots by an interrupted swap".to_string()
        } else {
            img(r)
        }
    };
    println!("device {}", dir.display());
    println!("bootloader {}: {}", l.bootloader, img(&st.bootloader));
    println!("primary    {}: {}", l.primary, slot_img(&st.primary.image));
    println!("           trailer: {}", tr(&st.primary.trailer));
    println!(
        "secondary  {}: {}",
        l.secondary,
        slot_img(&st.secondary.image)
    );
    println!("           trailer: {}", tr(&st.secondary.trailer));
    println!("next boot: {}", request_text(&st.request));
    if st.progress.done > 0 {
        println!(
            "swap progress: {} steps recorded{}",
            st.progress.done,
            if st.progress.consistent {
                ""
            } else {
                " (inconsistent: tampered)"
            }
        );
    }
    println!(
        "OTP: security counter {} ({} raises left), {}",
        st.security_counter,
        st.counter_slots_left,
        if st.otp_locked { "locked" } else { "unlocked" }
    );
    Ok(())
}
