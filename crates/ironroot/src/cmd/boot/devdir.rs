//! The simulated device's directory: `device.json` (layout and provisioned public keys),
//! `flash.bin` (raw NOR flash), `otp.bin` (fuses) and, optionally, `device-key.pem` (the
//! device's private decryption key).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use ironroot_boot::sim::{FileFlash, Power, SimGeometry, SimOtp};
use ironroot_boot::{Device, Layout, Otp, Region};
use ironroot_image::tools::KeyFile;
use ironroot_image::{DecryptionKey, TrustedKey};
use serde::{Deserialize, Serialize};

pub const CONFIG: &str = "device.json";
pub const FLASH: &str = "flash.bin";
pub const OTP: &str = "otp.bin";
pub const DEVICE_KEY: &str = "device-key.pem";
const FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RegionJson {
    pub offset: u32,
    pub size: u32,
}

impl From<RegionJson> for Region {
    fn from(r: RegionJson) -> Self {
        Region::new(r.offset, r.size)
    }
}

impl From<Region> for RegionJson {
    fn from(r: Region) -> Self {
        Self {
            offset: r.offset,
            size: r.size,
        }
    }
}

/// `device.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub format: u32,
    pub sector_size: u32,
    pub write_size: u32,
    pub erased: u8,
    pub max_sectors: u32,
    pub bootloader: RegionJson,
    pub primary: RegionJson,
    pub secondary: RegionJson,
    /// Provisioned public keys (hex DER SubjectPublicKeyInfo), like a key table in flash;
    /// only those whose SHA-256 is fused in `otp.bin` are trusted.
    pub public_keys: Vec<String>,
    /// Whether `device-key.pem` holds a decryption key.
    pub decryption_key: bool,
}

impl Config {
    pub fn layout(&self) -> Result<Layout> {
        Layout::new(
            self.bootloader.into(),
            self.primary.into(),
            self.secondary.into(),
            self.sector_size,
            self.write_size,
            self.erased,
            self.max_sectors,
            self.decryption_key,
        )
        .map_err(|e| anyhow!("device.json describes an unusable layout: {e}"))
    }

    pub fn geometry(&self) -> SimGeometry {
        SimGeometry {
            erase_size: self.sector_size,
            write_size: self.write_size,
            erased: self.erased,
            capacity: self.secondary.offset + self.secondary.size,
        }
    }

    pub fn keys(&self) -> Result<Vec<TrustedKey>> {
        self.public_keys
            .iter()
            .map(|h| {
                let der = hex_decode(h).context("device.json: public key is not hex")?;
                TrustedKey::from_spki_der(&der)
                    .map_err(|e| anyhow!("device.json: provisioned public key: {e}"))
            })
            .collect()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Result<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(Into::into))
        .collect()
}

/// A device loaded from its directory.
pub struct Loaded {
    pub dir: PathBuf,
    pub layout: Layout,
    pub keys: Vec<TrustedKey>,
    pub decryption: Option<DecryptionKey>,
    pub power: Power,
    pub flash: FileFlash,
    pub otp: SimOtp,
}

impl Loaded {
    pub fn open(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join(CONFIG);
        let text = std::fs::read_to_string(&cfg_path).with_context(|| {
            format!(
                "reading {} (create the device with `ironroot boot init --flash {}`)",
                cfg_path.display(),
                dir.display()
            )
        })?;
        let config: Config = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", cfg_path.display()))?;
        if config.format != FORMAT {
            bail!(
                "{} has format {}, expected {FORMAT}",
                cfg_path.display(),
                config.format
            );
        }
        let layout = config.layout()?;
        let keys = config.keys()?;
        let decryption = if config.decryption_key {
            let path = dir.join(DEVICE_KEY);
            let kf = KeyFile::load(&path)
                .with_context(|| format!("loading the device key {}", path.display()))?;
            let key = kf
                .private_key()
                .map_err(|e| anyhow!("{}: {e}", path.display()))?
                .decryption_key()
                .ok_or_else(|| anyhow!("{} cannot decrypt images", path.display()))?;
            Some(key)
        } else {
            None
        };
        let power = Power::new();
        let flash = FileFlash::open(&dir.join(FLASH), config.geometry(), power.clone())
            .with_context(|| format!("opening {}", dir.join(FLASH).display()))?;
        let otp = SimOtp::open(&dir.join(OTP), power.clone())
            .with_context(|| format!("opening {}", dir.join(OTP).display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            layout,
            keys,
            decryption,
            power,
            flash,
            otp,
        })
    }

    /// The device over this directory's flash and fuses.
    pub fn device(
        &mut self,
    ) -> Result<Device<'_, &mut ironroot_boot::sim::SimMemory, &mut SimOtp>> {
        let otp = Otp::new(&mut self.otp).map_err(|e| anyhow!("{e}"))?;
        Device::new(
            self.flash.memory_mut(),
            otp,
            self.layout,
            &self.keys,
            self.decryption.as_ref(),
        )
        .map_err(|e| anyhow!("{e}"))
    }

    /// Writes flash and fuses back (each atomically).
    pub fn persist(&self) -> Result<()> {
        self.flash
            .persist()
            .with_context(|| format!("saving {}", self.dir.join(FLASH).display()))?;
        self.otp
            .persist()
            .with_context(|| format!("saving {}", self.dir.join(OTP).display()))
    }
}
