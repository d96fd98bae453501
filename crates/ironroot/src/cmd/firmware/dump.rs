//! `firmware dumpinfo` output, formatted as `imgtool dumpinfo` formats it.

use std::fmt::Write as _;

use anyhow::Result;
use ironroot_image::ImageFlags;
use ironroot_image::tools::{ImageDump, TlvRecord, TrailerInfo};
use serde::Serialize;

const LINE: usize = 60;

fn hexstr(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Serialize)]
struct JsonDump {
    filename: String,
    header: JsonHeader,
    tlv_area: JsonTlvArea,
    trailer: JsonTrailer,
}

#[derive(Serialize)]
struct JsonHeader {
    magic: u32,
    load_addr: u32,
    hdr_size: u16,
    protected_tlv_size: u16,
    img_size: u32,
    flags: u32,
    version: String,
}

#[derive(Serialize, Default)]
struct JsonAreaHeader {
    #[serde(skip_serializing_if = "Option::is_none")]
    magic: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tlv_tot: Option<u16>,
}

#[derive(Serialize)]
struct JsonTlv {
    #[serde(rename = "type")]
    kind: u16,
    type_name: &'static str,
    len: usize,
    data: String,
}

#[derive(Serialize)]
struct JsonTlvArea {
    tlv_hdr_prot: JsonAreaHeader,
    tlvs_prot: Vec<JsonTlv>,
    tlv_hdr: JsonAreaHeader,
    tlvs: Vec<JsonTlv>,
}

#[derive(Serialize, Default)]
struct JsonTrailer {
    #[serde(skip_serializing_if = "Option::is_none")]
    magic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image_ok: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_done: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap_info: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    swap_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_field_len: Option<u32>,
}

fn json_tlvs(list: &[TlvRecord]) -> Vec<JsonTlv> {
    list.iter()
        .map(|t| JsonTlv {
            kind: t.kind.to_u16(),
            type_name: t.kind.name(),
            len: t.data.len(),
            data: hexstr(&t.data),
        })
        .collect()
}

fn json_value(filename: &str, d: &ImageDump) -> JsonDump {
    let h = &d.header;
    let (prot_hdr, prot) = match &d.protected {
        Some((info, list)) => (
            JsonAreaHeader {
                magic: Some(info.magic),
                tlv_tot: Some(info.tlv_tot),
            },
            json_tlvs(list),
        ),
        None => (JsonAreaHeader::default(), Vec::new()),
    };
    let trailer = match &d.trailer {
        Some(t) => JsonTrailer {
            magic: Some(hexstr(&t.magic)),
            image_ok: t.image_ok,
            copy_done: t.copy_done,
            swap_info: t.swap_info,
            swap_size: t.swap_size,
            key_field_len: t.key_field_len,
        },
        None => JsonTrailer::default(),
    };
    JsonDump {
        filename: filename.to_owned(),
        header: JsonHeader {
            magic: ironroot_image::IMAGE_MAGIC,
            load_addr: h.load_addr,
            hdr_size: h.hdr_size,
            protected_tlv_size: h.protect_tlv_size,
            img_size: h.img_size,
            flags: h.flags.0,
            version: h.version.to_string(),
        },
        tlv_area: JsonTlvArea {
            tlv_hdr_prot: prot_hdr,
            tlvs_prot: prot,
            tlv_hdr: JsonAreaHeader {
                magic: Some(d.main.0.magic),
                tlv_tot: Some(d.main.0.tlv_tot),
            },
            tlvs: json_tlvs(&d.main.1),
        },
        trailer,
    }
}

/// imgtool's `-f json` output (same keys, order and indentation).
pub fn json(filename: &str, d: &ImageDump) -> Result<String> {
    let mut s = serde_json::to_string_pretty(&json_value(filename, d))?;
    s.push('\n');
    Ok(s)
}

/// YAML with the same structure as the JSON output (byte strings as hex).
pub fn yaml(filename: &str, d: &ImageDump) -> String {
    let v = serde_json::to_value(json_value(filename, d)).unwrap_or_default();
    let mut out = String::new();
    yaml_value(&mut out, &v, 0);
    out
}

fn yaml_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => other.to_string(),
    }
}

fn yaml_value(out: &mut String, v: &serde_json::Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                match val {
                    serde_json::Value::Object(m) if m.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}: {{}}");
                    }
                    serde_json::Value::Array(a) if a.is_empty() => {
                        let _ = writeln!(out, "{pad}{k}: []");
                    }
                    serde_json::Value::Object(_) | serde_json::Value::Array(_) => {
                        let _ = writeln!(out, "{pad}{k}:");
                        yaml_value(out, val, indent + 2);
                    }
                    scalar => {
                        let _ = writeln!(out, "{pad}{k}: {}", yaml_scalar(scalar));
                    }
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                let mut inner = String::new();
                yaml_value(&mut inner, item, indent + 2);
                let inner = inner.trim_start();
                let _ = write!(out, "{pad}- {inner}");
            }
        }
        scalar => {
            let _ = writeln!(out, "{pad}{}", yaml_scalar(scalar));
        }
    }
}

fn row(text: &str) -> String {
    let t = format!("#### {text} ");
    let fill = "#".repeat(LINE.saturating_sub(t.len()));
    format!("{t}{fill}")
}

fn frame(header_text: &str, content: &str) -> String {
    let header = format!("#### {header_text} ");
    let mut lines = vec![
        format!("{header}{}", "#".repeat(LINE.saturating_sub(header.len()))),
        format!("|{}|", " ".repeat(LINE - 2)),
    ];
    let offset = LINE.saturating_sub(content.len()) / 2;
    let pre = format!("|{}", " ".repeat(offset.saturating_sub(1)));
    let post = format!(
        "{}|",
        " ".repeat(LINE.saturating_sub(pre.len() + content.len() + 1))
    );
    lines.push(format!("{pre}{content}{post}"));
    lines.push(format!("|{}|", " ".repeat(LINE - 2)));
    lines.push("#".repeat(LINE));
    lines.join("\n")
}

fn tlv_records(list: &[TlvRecord]) -> String {
    let indent = " ".repeat(LINE / 8);
    let mut lines = Vec::new();
    for t in list {
        lines.push(format!("{indent} {}", "-".repeat(45)));
        lines.push(format!(
            "{indent} type: {} ({:#x})",
            t.kind.name(),
            t.kind.to_u16()
        ));
        lines.push(format!("{indent} len:  {:#x}", t.data.len()));
        let mut line = format!("{indent} data: ");
        for (j, b) in t.data.iter().enumerate() {
            let _ = write!(line, "{b:#04x} ");
            if (j + 1) % 8 == 0 && j + 1 != t.data.len() {
                lines.push(line);
                line = " ".repeat(LINE / 8 + 7);
            }
        }
        lines.push(line);
    }
    lines.join("\n")
}

fn status(v: u8) -> String {
    let name = match v {
        1 => "SET",
        2 => "BAD",
        3 => "UNSET",
        4 => "ANY",
        _ => "INVALID",
    };
    format!("{name} ({v:#x})")
}

fn trailer_lines(out: &mut String, t: &TrailerInfo) {
    let _ = writeln!(out, "{}", row("Image trailer (offset: unknown)"));
    let notice = "(Note: some fields may not be used, depending on the update strategy)\n";
    let chunks: Vec<String> = notice
        .as_bytes()
        .chunks(LINE)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    let _ = writeln!(out, "{}", chunks.join("\n"));
    let _ = writeln!(out, "swap status: (len: unknown)");
    let enc = match t.key_field_len {
        Some(k) => format!("(len: {k:#x}, if BOOT_SWAP_SAVE_ENCTLV is unset)"),
        None => "Image not encrypted".to_owned(),
    };
    let _ = writeln!(out, "enc. keys:   {enc}");
    if let Some(s) = t.swap_size {
        let shown = if s == u32::MAX {
            "unknown".to_owned()
        } else {
            format!("{s:#x} octal: {s}")
        };
        let _ = writeln!(out, "swap size:   {shown}");
    }
    if let Some(v) = t.swap_info {
        let _ = writeln!(out, "swap_info:   {}", status(v));
    }
    if let Some(v) = t.copy_done {
        let _ = writeln!(out, "copy_done:   {}", status(v));
    }
    if let Some(v) = t.image_ok {
        let _ = writeln!(out, "image_ok:    {}", status(v));
    }
    let mut magic = String::new();
    for (i, b) in t.magic.iter().enumerate() {
        let _ = write!(magic, "{b:#04x} ");
        if i == 7 {
            magic.push('\n');
            magic.push_str(&" ".repeat(13));
        }
    }
    let _ = writeln!(out, "boot magic:  {magic}");
    out.push('\n');
}

/// imgtool's human-readable dump.
pub fn human(filename: &str, d: &ImageDump) -> String {
    let h = &d.header;
    let mut out = String::new();
    if d.trailer.as_ref().is_some_and(|t| t.max_align.is_none()) {
        out.push_str("Warning: the trailer magic value is invalid!\n");
    }
    let _ = writeln!(out, "Printing content of signed image: {filename} \n");
    let _ = writeln!(out, "{}", row("Image header (offset: 0x0)"));
    let flags = if h.flags.0 == 0 {
        "0x0".to_owned()
    } else {
        ImageFlags::KNOWN
            .iter()
            .filter(|(_, f)| h.flags.0 & f.0 != 0)
            .map(|(name, f)| format!("{name} ({:#x})", f.0))
            .collect::<Vec<_>>()
            .join(&format!("\n{}", " ".repeat(20)))
    };
    let fields: [(&str, String); 7] = [
        ("magic", format!("{:#x}", ironroot_image::IMAGE_MAGIC)),
        ("load_addr", format!("{:#x}", h.load_addr)),
        ("hdr_size", format!("{:#x}", h.hdr_size)),
        ("protected_tlv_size", format!("{:#x}", h.protect_tlv_size)),
        ("img_size", format!("{:#x}", h.img_size)),
        ("flags", flags),
        ("version", h.version.to_string()),
    ];
    for (k, v) in fields {
        let _ = writeln!(out, "{k}:{}{v}", " ".repeat(19 - k.len()));
    }
    let _ = writeln!(out, "{}", "#".repeat(LINE));
    let mut off = u64::from(h.hdr_size);
    let _ = writeln!(
        out,
        "{}",
        frame(
            &format!("Payload (offset: {off:#x})"),
            &format!("FW image (size: {:#x} Bytes)", h.img_size)
        )
    );
    off += u64::from(h.img_size);
    if let Some((info, list)) = &d.protected {
        let _ = writeln!(
            out,
            "{}",
            row(&format!("Protected TLV area (offset: {off:#x})"))
        );
        let _ = writeln!(out, "magic:     {:#x}", info.magic);
        let _ = writeln!(out, "area size: {:#x}", info.tlv_tot);
        let _ = writeln!(out, "{}", tlv_records(list));
        let _ = writeln!(out, "{}", "#".repeat(LINE));
    }
    off += u64::from(h.protect_tlv_size);
    let _ = writeln!(out, "{}", row(&format!("TLV area (offset: {off:#x})")));
    let _ = writeln!(out, "magic:     {:#x}", d.main.0.magic);
    let _ = writeln!(out, "area size: {:#x}", d.main.0.tlv_tot);
    let _ = writeln!(out, "{}", tlv_records(&d.main.1));
    let _ = writeln!(out, "{}", "#".repeat(LINE));
    if let Some(t) = &d.trailer {
        trailer_lines(&mut out, t);
    }
    let _ = writeln!(out, "{}", row("End of Image "));
    out
}
