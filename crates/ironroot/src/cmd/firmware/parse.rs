//! `firmware sign` arguments: imgtool's flags, parsed the way imgtool parses them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ironroot_image::tools::SignOptions;
use ironroot_image::{Dependency, ImageVersion};
use sha1::{Digest, Sha1};

use super::{SecurityCounter, hash_choice, hmac_choice, key_format, keylen_choice, new_options};

/// Flags of `imgtool sign`, same names and short forms.
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Signing key (private PEM). Without it the image gets only a hash TLV.
    #[arg(short, long, value_name = "filename")]
    key: Option<PathBuf>,
    /// How to name the key in the image: `hash` (KEYHASH TLV) or `full` (PUBKEY TLV).
    #[arg(long, value_name = "hash|full", default_value = "hash")]
    public_key_format: String,
    /// Flash write alignment used by swap update modes (1, 2, 4, 8, 16, 32).
    #[arg(long, value_name = "N", default_value = "1")]
    align: u32,
    /// Maximum flash alignment (8, 16, 32), when the slots' alignments differ.
    #[arg(long, value_name = "N")]
    max_align: Option<u32>,
    /// Image version: maj.min.rev+build, later parts optional.
    #[arg(short = 'v', long = "version", value_name = "version")]
    version: String,
    /// Security counter: a number, or `auto` to derive it from the version.
    #[arg(short = 's', long, value_name = "N|auto")]
    security_counter: Option<String>,
    /// Dependencies on other images: "(<image_id>,<version>), ...".
    #[arg(short = 'd', long, value_name = "deps")]
    dependencies: Option<String>,
    /// Pad ECDSA signatures to 72 bytes (for MCUboot older than 1.5).
    #[arg(long)]
    pad_sig: bool,
    /// Header size (at least 32, e.g. 0x200).
    #[arg(short = 'H', long, value_name = "size", value_parser = parse_u16)]
    header_size: u16,
    /// Prepend --header-size erased bytes to the input for the header.
    #[arg(long)]
    pad_header: bool,
    /// Slot size; with different slot sizes, the secondary slot's.
    #[arg(short = 'S', long, value_name = "size", value_parser = parse_u32)]
    slot_size: u32,
    /// Pad the image to --slot-size and write the trailer magic.
    #[arg(long)]
    pad: bool,
    /// Mark the image confirmed in the trailer (implies --pad).
    #[arg(long)]
    confirm: bool,
    /// Mark the image for a test swap (implies --pad).
    #[arg(long)]
    test: bool,
    /// Sectors the swap status area accounts for when padding (default 128).
    #[arg(short = 'M', long, value_name = "N")]
    max_sectors: Option<u32>,
    /// Create a CBOR boot record TLV (not supported).
    #[arg(long, value_name = "sw_type")]
    boot_record: Option<String>,
    /// Use overwrite-only instead of swap upgrades (smaller trailer).
    #[arg(long)]
    overwrite_only: bool,
    /// Byte order; only `little` is supported.
    #[arg(short = 'e', long, value_name = "little|big", default_value = "little")]
    endian: String,
    /// Add encryption TLV and flag but leave the payload in clear.
    #[arg(short = 'c', long)]
    clear: bool,
    /// Compression; only `disabled` is supported.
    #[arg(long, value_name = "type", default_value = "disabled")]
    compression: String,
    /// AES key length for encryption: 128 or 256.
    #[arg(long, value_name = "128|256", default_value = "128")]
    encrypt_keylen: String,
    /// Encrypt the payload for this public key (ecdsa-p256 or x25519).
    #[arg(short = 'E', long, value_name = "filename")]
    encrypt: Option<PathBuf>,
    /// Size trailer key fields for saved ENC TLVs (BOOT_SWAP_SAVE_ENCTLV).
    #[arg(long)]
    save_enctlv: bool,
    /// Flash address the image is built for (sets ROM_FIXED).
    #[arg(short = 'F', long, value_name = "addr", value_parser = parse_u32)]
    rom_fixed: Option<u32>,
    /// Load address for images that run from RAM (sets RAM_LOAD).
    #[arg(short = 'L', long, value_name = "addr", value_parser = parse_u32)]
    load_addr: Option<u32>,
    /// Address for Intel HEX output (not supported: binary files only).
    #[arg(short = 'x', long, value_name = "addr")]
    hex_addr: Option<String>,
    /// Value of erased flash: 0 or 0xff.
    #[arg(short = 'R', long, value_name = "0|0xff")]
    erased_val: Option<String>,
    /// Protected custom TLV: TAG VALUE (0x-prefixed hex, else UTF-8 text). Repeatable.
    #[arg(long, num_args = 2, value_names = ["tag", "value"], action = clap::ArgAction::Append)]
    custom_tlv: Vec<String>,
    /// Protected custom TLV from a file: TAG FILE. Repeatable.
    #[arg(long, num_args = 2, value_names = ["tag", "filename"], action = clap::ArgAction::Append)]
    custom_tlv_file: Vec<String>,
    /// Mark the image as non-bootable.
    #[arg(long)]
    non_bootable: bool,
    /// Use an externally made signature (not supported).
    #[arg(long, value_name = "filename")]
    fix_sig: Option<PathBuf>,
    /// Public key of --fix-sig (not supported).
    #[arg(long, value_name = "filename")]
    fix_sig_pubkey: Option<PathBuf>,
    /// Ed25519 signature over the image itself instead of its digest.
    #[arg(long = "pure")]
    pure: bool,
    /// Also write the signature, base64, to this file.
    #[arg(long, value_name = "filename")]
    sig_out: Option<PathBuf>,
    /// Image hash: auto, 256 or 512.
    #[arg(long = "sha", value_name = "auto|256|512", default_value = "auto")]
    sha: String,
    /// Hash for ECIES key wrapping: auto, 256 or 512 (512: x25519 only).
    #[arg(long, value_name = "auto|256|512", default_value = "auto")]
    hmac_sha: String,
    /// Export the data to sign instead of an image (not supported).
    #[arg(long, value_name = "payload|digest")]
    vector_to_sign: Option<String>,
    /// Vendor UUID: raw UUID, 32 hex digits, or a domain name.
    #[arg(long, value_name = "uuid|name")]
    vid: Option<String>,
    /// Image class UUID: raw UUID, 32 hex digits, or a name (needs --vid).
    #[arg(long, value_name = "uuid|name")]
    cid: Option<String>,
    /// Firmware binary to sign.
    infile: PathBuf,
    /// Signed image to write.
    outfile: PathBuf,
}

/// A sign invocation, checked and converted.
pub struct SignPlan {
    pub key: Option<PathBuf>,
    pub encrypt: Option<PathBuf>,
    pub sig_out: Option<PathBuf>,
    pub infile: PathBuf,
    pub outfile: PathBuf,
    pub options: SignOptions,
}

/// Python's `int(value, 0)`: decimal, 0x, 0o, 0b, with `_` separators.
pub fn parse_int(s: &str) -> Result<u64> {
    let t = s.trim().replace('_', "");
    let (digits, radix) = match t.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (&t[2..], 16),
        Some("0o") => (&t[2..], 8),
        Some("0b") => (&t[2..], 2),
        _ => (t.as_str(), 10),
    };
    if radix == 10
        && digits.len() > 1
        && digits.starts_with('0')
        && digits.chars().any(|c| c != '0')
    {
        bail!("{s} is not a valid integer; use prefixes 0b, 0o or 0x as necessary");
    }
    u64::from_str_radix(digits, radix).with_context(|| {
        format!("{s} is not a valid integer; use prefixes 0b, 0o or 0x as necessary")
    })
}

fn parse_u32(s: &str) -> Result<u32, String> {
    parse_int(s)
        .map_err(|e| e.to_string())
        .and_then(|v| u32::try_from(v).map_err(|_| format!("{s} does not fit 32 bits")))
}

fn parse_u16(s: &str) -> Result<u16, String> {
    parse_int(s)
        .map_err(|e| e.to_string())
        .and_then(|v| u16::try_from(v).map_err(|_| format!("{s} does not fit 16 bits")))
}

/// imgtool's dependency syntax: image ids after `(`, versions between `,` and `)`.
pub fn parse_dependencies(value: &str) -> Result<Vec<Dependency>> {
    let mut images = Vec::new();
    let mut versions = Vec::new();
    let b = value.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'(' {
            let digits: String = value[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if !digits.is_empty() {
                images.push(digits);
            }
        } else if c == b',' {
            let rest = value[i + 1..].trim_start();
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == '+')
                .collect();
            if !v.is_empty() && rest[v.len()..].starts_with(')') {
                versions.push(v);
            }
        }
    }
    if images.is_empty() {
        bail!("image dependency format is invalid: {value}");
    }
    if images.len() != versions.len() {
        bail!(
            "there is a mismatch between the number of dependency images and versions in: {value}"
        );
    }
    images
        .iter()
        .zip(&versions)
        .map(|(id, v)| {
            let image_id = id
                .parse::<u8>()
                .with_context(|| format!("dependency image id {id} does not fit 0..=255"))?;
            let min_version: ImageVersion = v.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(Dependency {
                image_id,
                min_version,
            })
        })
        .collect()
}

/// imgtool's `parse_uuid`: `8-4-4-4-12` hex, 32 hex digits, or a name hashed as a UUIDv5.
pub fn parse_uuid(namespace: Option<&[u8; 16]>, value: &str) -> Result<[u8; 16]> {
    let hexchars = |s: &str| s.chars().all(|c| c.is_ascii_hexdigit());
    let groups: Vec<&str> = value.split('-').collect();
    let dashed = groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| hexchars(g));
    let raw = if dashed {
        Some(groups.concat())
    } else if value.len() == 32 && hexchars(value) {
        Some(value.to_owned())
    } else {
        None
    };
    if let Some(hexstr) = raw {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&hexstr[2 * i..2 * i + 2], 16)?;
        }
        return Ok(out);
    }
    if value.is_empty() || value.chars().any(char::is_control) {
        bail!("unknown UUID format: {value:?}");
    }
    let Some(ns) = namespace else {
        bail!("unknown namespace for UUID: {value} (give --vid too, or a raw UUID)");
    };
    // RFC 4122 UUIDv5: SHA-1(namespace || name), version 5, RFC 4122 variant.
    let h = Sha1::new()
        .chain_update(ns)
        .chain_update(value.as_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&h[..16]);
    out[6] = (out[6] & 0x0f) | 0x50;
    out[8] = (out[8] & 0x3f) | 0x80;
    Ok(out)
}

/// The RFC 4122 DNS namespace, which imgtool uses for `--vid` names.
const NAMESPACE_DNS: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

fn reject_hex(path: &Path) -> Result<()> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hex"))
    {
        bail!(
            "{}: Intel HEX files are not supported; use binary (.bin) files",
            path.display()
        );
    }
    Ok(())
}

impl SignArgs {
    /// Checks the flags and builds [`SignOptions`].
    pub fn into_plan(self) -> Result<SignPlan> {
        if self.boot_record.is_some() {
            bail!("--boot-record is not supported");
        }
        if self.endian != "little" {
            bail!("only little-endian images are supported (-e little)");
        }
        if self.compression != "disabled" {
            bail!("--compression {} is not supported", self.compression);
        }
        if self.hex_addr.is_some() {
            bail!("--hex-addr is not supported: Intel HEX output is not supported");
        }
        if self.fix_sig.is_some() || self.fix_sig_pubkey.is_some() {
            bail!("--fix-sig/--fix-sig-pubkey are not supported");
        }
        if self.vector_to_sign.is_some() {
            bail!("--vector-to-sign is not supported");
        }
        reject_hex(&self.infile)?;
        reject_hex(&self.outfile)?;
        if usize::from(self.header_size) < ironroot_image::IMAGE_HEADER_SIZE {
            bail!("minimum value for -H/--header-size is 32");
        }
        let version: ImageVersion = self
            .version
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid value for -v/--version: {e}"))?;
        let mut o = new_options(version, self.header_size, self.slot_size);
        o.pad_header = self.pad_header;
        o.pad = self.pad;
        o.confirm = self.confirm;
        o.test = self.test;
        o.align = self.align;
        o.max_align = self.max_align;
        o.max_sectors = self.max_sectors;
        o.overwrite_only = self.overwrite_only;
        o.erased_val = match self.erased_val.as_deref() {
            None | Some("0xff") => 0xff,
            Some("0") => 0,
            Some(other) => bail!("invalid --erased-val {other:?} (use 0 or 0xff)"),
        };
        o.load_addr = self.load_addr;
        o.rom_fixed = self.rom_fixed;
        o.non_bootable = self.non_bootable;
        o.security_counter = match self.security_counter.as_deref() {
            None => None,
            Some(s) if s.eq_ignore_ascii_case("auto") => Some(SecurityCounter::Auto),
            Some(s) => {
                let v = parse_int(s)?;
                Some(SecurityCounter::Value(u32::try_from(v).with_context(
                    || format!("security counter {s} does not fit 32 bits"),
                )?))
            }
        };
        if let Some(d) = &self.dependencies {
            o.dependencies = parse_dependencies(d)?;
        }
        o.public_key_format = key_format(&self.public_key_format)?;
        o.pure = self.pure;
        o.hash = hash_choice(&self.sha)?;
        o.encrypt_keylen = keylen_choice(&self.encrypt_keylen)?;
        o.hmac_sha = hmac_choice(&self.hmac_sha)?;
        o.clear = self.clear;
        o.save_enctlv = self.save_enctlv;
        o.pad_sig = self.pad_sig;
        for pair in self.custom_tlv.chunks(2) {
            let tag = u16::try_from(parse_int(&pair[0])?)
                .with_context(|| format!("custom TLV tag {} does not fit 16 bits", pair[0]))?;
            let value = &pair[1];
            let bytes = if let Some(h) = value.strip_prefix("0x") {
                if h.len() % 2 == 1 {
                    bail!("custom TLV length is odd");
                }
                (0..h.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&h[i..i + 2], 16))
                    .collect::<Result<Vec<u8>, _>>()
                    .with_context(|| format!("custom TLV value {value} is not hex"))?
            } else {
                value.as_bytes().to_vec()
            };
            o.custom_tlvs.push((tag, bytes));
        }
        for pair in self.custom_tlv_file.chunks(2) {
            let tag = u16::try_from(parse_int(&pair[0])?)
                .with_context(|| format!("custom TLV tag {} does not fit 16 bits", pair[0]))?;
            let bytes = std::fs::read(&pair[1]).with_context(|| format!("reading {}", pair[1]))?;
            o.custom_tlvs.push((tag, bytes));
        }
        if let Some(vid) = &self.vid {
            o.vendor_id = Some(parse_uuid(Some(&NAMESPACE_DNS), vid)?);
        }
        if let Some(cid) = &self.cid {
            o.class_id = Some(parse_uuid(o.vendor_id.as_ref(), cid)?);
        }
        Ok(SignPlan {
            key: self.key,
            encrypt: self.encrypt,
            sig_out: self.sig_out,
            infile: self.infile,
            outfile: self.outfile,
            options: o,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_parse_like_python() {
        assert_eq!(parse_int("0x200").unwrap(), 0x200);
        assert_eq!(parse_int("0X20").unwrap(), 0x20);
        assert_eq!(parse_int("4096").unwrap(), 4096);
        assert_eq!(parse_int("0b101").unwrap(), 5);
        assert_eq!(parse_int("0o17").unwrap(), 15);
        assert_eq!(parse_int("1_000").unwrap(), 1000);
        assert_eq!(parse_int("0").unwrap(), 0);
        assert!(parse_int("010").is_err());
        assert!(parse_int("0xzz").is_err());
    }

    #[test]
    fn dependencies_parse_like_imgtool() {
        let d = parse_dependencies("(1,2.0.0), (0, 1.2.3+4)").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].image_id, 1);
        assert_eq!(d[1].min_version, ImageVersion::new(1, 2, 3, 4));
        assert!(parse_dependencies("nothing").is_err());
        assert!(parse_dependencies("(1,)").is_err());
        assert!(parse_dependencies("(300,1.0.0)").is_err());
    }

    #[test]
    fn uuids_parse_like_imgtool() {
        let raw = parse_uuid(None, "12345678-1234-5678-1234-567812345678").unwrap();
        assert_eq!(raw[0], 0x12);
        assert_eq!(
            raw,
            parse_uuid(None, "12345678123456781234567812345678").unwrap()
        );
        // uuid.uuid5(uuid.NAMESPACE_DNS, "python.org") = 886313e1-3b8a-5372-9b90-0c9aee199e5d
        let named = parse_uuid(Some(&NAMESPACE_DNS), "python.org").unwrap();
        assert_eq!(
            named,
            parse_uuid(None, "886313e1-3b8a-5372-9b90-0c9aee199e5d").unwrap()
        );
        assert!(parse_uuid(None, "a name").is_err());
    }
}
