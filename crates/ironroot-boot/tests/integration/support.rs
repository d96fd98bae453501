//! Test rig: keys and images made at test time, a simulated device with a chosen geometry,
//! and the oracles the tests judge by.

use std::path::{Path, PathBuf};
use std::process::Command;

use ironroot_boot::sim::{Power, SimGeometry, SimMemory, SimOtp};
use ironroot_boot::{BootDecision, BootError, Confirmation, Device, Layout, Otp, Region, Slot};
use ironroot_image::tools::{
    self, KeyType, PrivateKey, PublicKeyFormat, SecurityCounter, SignOptions,
};
use ironroot_image::{
    DecryptionKey, PayloadDecryptor, TrustedKey, unwrap_image_key, verify, verify_encrypted,
};
use ironroot_testkit::{run_ok, tool};

/// A signing key made at test time (ironroot-image's keygen; saved as PEM for imgtool).
pub struct TestKey {
    pub pem: PathBuf,
    pub private: PrivateKey,
    pub trusted: TrustedKey,
}

/// Keys and scratch space of one test.
pub struct Keys {
    pub dir: tempfile::TempDir,
    /// The root of trust (its hash is fused into OTP).
    pub root: TestKey,
    /// A valid key the device does not trust.
    pub other: TestKey,
    /// An Ed25519 key, also fused into OTP by most tests (second root-of-trust slot).
    pub ed: TestKey,
    /// The device's P-256 encryption key pair.
    pub enc: TestKey,
    /// Its private scalar, as the device holds it.
    pub enc_scalar: [u8; 32],
}

pub fn keygen(dir: &Path, name: &str, kind: KeyType) -> TestKey {
    let pem = dir.join(format!("{name}.pem"));
    let private = PrivateKey::generate(kind);
    private.save(&pem).unwrap();
    let trusted = private.public_key().trusted_key().expect("signing key");
    TestKey {
        pem,
        private,
        trusted,
    }
}

impl Keys {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = keygen(dir.path(), "root", KeyType::EcdsaP256);
        let other = keygen(dir.path(), "other", KeyType::EcdsaP256);
        let ed = keygen(dir.path(), "ed", KeyType::Ed25519);
        let enc = keygen(dir.path(), "enc", KeyType::EcdsaP256);
        let enc_scalar = match &enc.private {
            PrivateKey::EcdsaP256(k) => k.to_bytes().into(),
            _ => unreachable!(),
        };
        Self {
            dir,
            root,
            other,
            ed,
            enc,
            enc_scalar,
        }
    }

    /// Public keys provisioned on the device (the OTP decides which are trusted).
    pub fn provisioned(&self) -> Vec<TrustedKey> {
        vec![
            self.root.trusted.clone(),
            self.other.trusted.clone(),
            self.ed.trusted.clone(),
        ]
    }
}

/// Flash geometry and slot sizes of a simulated device.
#[derive(Debug, Clone, Copy)]
pub struct Geo {
    pub sector: u32,
    pub write: u32,
    pub erased: u8,
    pub boot_sectors: u32,
    pub primary_sectors: u32,
    pub secondary_sectors: u32,
    /// Erase unit of the flash chip when smaller than the sector (0: the sector size).
    pub flash_erase: u32,
}

impl Geo {
    pub fn layout(&self) -> Layout {
        let s = self.sector;
        let boot = Region::new(0, self.boot_sectors * s);
        let primary = Region::new(boot.end(), self.primary_sectors * s);
        let secondary = Region::new(primary.end(), self.secondary_sectors * s);
        Layout::new(
            boot,
            primary,
            secondary,
            s,
            self.write,
            self.erased,
            128,
            false,
        )
        .unwrap()
    }

    pub fn capacity(&self) -> u32 {
        self.sector * (self.boot_sectors + self.primary_sectors + self.secondary_sectors)
    }
}

/// How an image is padded for a slot (imgtool --pad, --pad --confirm).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pad {
    None,
    Test,
    Confirm,
}

/// What to sign.
#[derive(Debug, Clone)]
pub struct Spec {
    pub version: String,
    pub counter: Option<u32>,
    pub payload_len: usize,
    pub seed: u64,
    pub pad: Pad,
    pub encrypt: bool,
    pub full_pubkey: bool,
    pub non_bootable: bool,
}

impl Spec {
    pub fn new(version: &str, counter: u32, payload_len: usize) -> Self {
        Self {
            version: version.into(),
            counter: Some(counter),
            payload_len,
            seed: counter as u64 * 7919 + payload_len as u64,
            pad: Pad::None,
            encrypt: false,
            full_pubkey: false,
            non_bootable: false,
        }
    }
    pub fn pad(mut self, pad: Pad) -> Self {
        self.pad = pad;
        self
    }
    pub fn encrypted(mut self) -> Self {
        self.encrypt = true;
        self
    }
}

pub const HEADER: u32 = 0x200;

/// A signed image and what the oracle knows about it.
#[derive(Debug, Clone)]
pub struct Img {
    /// The file imgtool wrote (padded for the slot when asked).
    pub file: Vec<u8>,
    /// The image as it must read in the primary slot: plaintext, `len` bytes.
    pub plain: Vec<u8>,
    /// Header + payload + TLVs.
    pub len: u32,
    /// SHA-256 of the signed part.
    pub digest: [u8; 32],
    pub counter: u32,
}

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// Signs with ironroot-image at test time. `slot_size` and the geometry are imgtool's
/// `-S`, `--align`, `-R`; a `slot_size` of 0 skips the trailer size check (bootloader images
/// have no trailer).
pub fn sign(keys: &Keys, key: &TestKey, geo: &Geo, slot_size: u32, spec: &Spec) -> Img {
    let mut opts = SignOptions::new(spec.version.parse().unwrap(), HEADER as u16, slot_size);
    opts.pad_header = true;
    opts.align = geo.write;
    opts.erased_val = geo.erased;
    opts.security_counter = spec.counter.map(SecurityCounter::Value);
    opts.pad = spec.pad != Pad::None;
    opts.confirm = spec.pad == Pad::Confirm;
    opts.non_bootable = spec.non_bootable;
    if spec.full_pubkey {
        opts.public_key_format = PublicKeyFormat::Full;
    }
    let input = payload(spec.payload_len, spec.seed);
    let mut file = Vec::new();
    let enc = keys.enc.private.public_key();
    tools::sign(
        std::io::Cursor::new(input),
        &mut file,
        Some(&key.private),
        spec.encrypt.then_some(&enc),
        &opts,
    )
    .expect("ironroot-image signs the test image");
    let dk = DecryptionKey::ec_p256_from_bytes(&keys.enc_scalar).unwrap();
    describe(file, &key.trusted, spec.encrypt.then_some(&dk))
}

/// Signs with imgtool: the oracle for images made by the tool MCUboot users have.
pub fn sign_imgtool(keys: &Keys, key: &TestKey, geo: &Geo, slot_size: u32, spec: &Spec) -> Img {
    let dir = keys.dir.path();
    let tag = format!("{}-{}-{}", spec.seed, spec.payload_len, next_id());
    let input = dir.join(format!("in-{tag}.bin"));
    let output = dir.join(format!("out-{tag}.bin"));
    std::fs::write(&input, payload(spec.payload_len, spec.seed)).unwrap();
    let mut cmd = Command::new(tool("imgtool"));
    cmd.arg("sign")
        .arg("-k")
        .arg(&key.pem)
        .args(["-H", &HEADER.to_string(), "--pad-header"])
        .args(["-S", &slot_size.to_string()])
        .args(["-v", &spec.version])
        .args(["--align", &geo.write.to_string()])
        .args(["-R", if geo.erased == 0 { "0" } else { "0xff" }]);
    if let Some(c) = spec.counter {
        cmd.args(["-s", &c.to_string()]);
    }
    match spec.pad {
        Pad::None => {}
        Pad::Test => {
            cmd.arg("--pad");
        }
        Pad::Confirm => {
            cmd.args(["--pad", "--confirm"]);
        }
    }
    if spec.encrypt {
        cmd.arg("-E").arg(&keys.enc.pem);
    }
    if spec.non_bootable {
        cmd.arg("--non-bootable");
    }
    if spec.full_pubkey {
        cmd.args(["--public-key-format", "full"]);
    }
    cmd.arg(&input).arg(&output);
    run_ok(&mut cmd);
    let file = std::fs::read(&output).unwrap();
    let dk = DecryptionKey::ec_p256_from_bytes(&keys.enc_scalar).unwrap();
    describe(file, &key.trusted, spec.encrypt.then_some(&dk))
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Verifies an image file with ironroot-image and computes what the primary slot must hold.
pub fn describe(file: Vec<u8>, key: &TrustedKey, enc: Option<&DecryptionKey>) -> Img {
    let keys = std::slice::from_ref(key);
    match enc {
        None => {
            let v = verify(&file[..], keys).expect("test image verifies");
            let len = v.total_len;
            Img {
                plain: file[..len as usize].to_vec(),
                len,
                digest: v.digest,
                counter: v.security_counter.unwrap_or(0),
                file,
            }
        }
        Some(dk) => {
            let k = unwrap_image_key(&file[..], dk).expect("test image key unwraps");
            let v = verify_encrypted(&file[..], keys, &k).expect("encrypted test image verifies");
            let len = v.total_len;
            let mut plain = file[..len as usize].to_vec();
            let start = v.header.hdr_size as usize;
            let end = start + v.header.img_size as usize;
            PayloadDecryptor::new(&k).apply(0, &mut plain[start..end]);
            Img {
                plain,
                len,
                digest: v.digest,
                counter: v.security_counter.unwrap_or(0),
                file,
            }
        }
    }
}

/// A simulated device: flash, OTP, the power rail they share, keys.
pub struct Rig {
    pub geo: Geo,
    pub layout: Layout,
    pub flash: SimMemory,
    pub otp: SimOtp,
    pub power: Power,
    pub keys: Vec<TrustedKey>,
    pub dec_scalar: Option<[u8; 32]>,
    pub dec: Option<DecryptionKey>,
}

impl Clone for Rig {
    /// A copy on its own, fresh power rail.
    fn clone(&self) -> Self {
        let power = Power::new();
        let mut flash = self.flash.clone();
        flash.rewire(power.clone());
        let mut otp = self.otp.clone();
        otp.rewire(power.clone());
        Self {
            geo: self.geo,
            layout: self.layout,
            flash,
            otp,
            power,
            keys: self.keys.clone(),
            dec_scalar: self.dec_scalar,
            dec: self
                .dec_scalar
                .map(|s| DecryptionKey::ec_p256_from_bytes(&s).unwrap()),
        }
    }
}

impl Rig {
    /// A device with `trusted` key hashes fused (and the OTP locked), and `provisioned`
    /// public keys in its key store.
    pub fn new(geo: Geo, provisioned: Vec<TrustedKey>, trusted: &[&TrustedKey]) -> Self {
        let power = Power::new();
        let layout = geo.layout();
        let flash = SimMemory::new(
            SimGeometry {
                erase_size: if geo.flash_erase == 0 {
                    geo.sector
                } else {
                    geo.flash_erase
                },
                write_size: geo.write,
                erased: geo.erased,
                capacity: geo.capacity(),
            },
            power.clone(),
        );
        let mut otp = Otp::new(SimOtp::new(power.clone())).unwrap();
        for k in trusted {
            otp.provision_key_hash(&k.key_hash()).unwrap();
        }
        otp.lock().unwrap();
        Self {
            geo,
            layout,
            flash,
            otp: otp.into_cells(),
            power,
            keys: provisioned,
            dec_scalar: None,
            dec: None,
        }
    }

    pub fn with_decryption(mut self, scalar: &[u8; 32]) -> Self {
        self.dec_scalar = Some(*scalar);
        self.dec = Some(DecryptionKey::ec_p256_from_bytes(scalar).unwrap());
        self
    }

    pub fn device(&mut self) -> Device<'_, &mut SimMemory, &mut SimOtp> {
        Device::new(
            &mut self.flash,
            Otp::new(&mut self.otp).unwrap(),
            self.layout,
            &self.keys,
            self.dec.as_ref(),
        )
        .unwrap()
    }

    pub fn boot(&mut self) -> Result<BootDecision, BootError> {
        self.device().power_on()
    }

    pub fn confirm(&mut self) -> Result<Confirmation, BootError> {
        self.device().confirm()
    }

    /// Erases a region and programs `bytes` at its start, as a flash programmer (or an
    /// update client that erased the slot first) would.
    pub fn put(&mut self, region: Region, bytes: &[u8]) {
        assert!(
            bytes.len() <= region.size as usize,
            "image larger than region"
        );
        self.flash.erase_raw(region.offset, region.size);
        self.flash.program_raw(region.offset, bytes);
    }

    pub fn put_slot(&mut self, slot: Slot, bytes: &[u8]) {
        self.put(self.layout.slot(slot), bytes);
    }

    pub fn put_bootloader(&mut self, bytes: &[u8]) {
        self.put(self.layout.bootloader, bytes);
    }

    pub fn slot_bytes(&self, slot: Slot) -> &[u8] {
        let r = self.layout.slot(slot);
        &self.flash.as_bytes()[r.offset as usize..r.end() as usize]
    }

    pub fn counter(&self) -> u32 {
        Otp::new(self.otp.clone()).unwrap().security_counter()
    }

    /// Whether the slot starts with exactly this image (plaintext form).
    pub fn holds(&self, slot: Slot, img: &Img) -> bool {
        self.slot_bytes(slot).starts_with(&img.plain)
    }

    /// Whether the secondary slot holds this image as it is stored there (encrypted images
    /// stay encrypted in the secondary slot).
    pub fn holds_stored(&self, slot: Slot, img: &Img) -> bool {
        self.slot_bytes(slot)
            .starts_with(&img.file[..img.len as usize])
    }
}

/// The booted image's digest, or panics with the decision.
pub fn booted_digest(d: &BootDecision) -> [u8; 32] {
    d.booted()
        .unwrap_or_else(|| panic!("nothing booted: {:?}", d.refusals().collect::<Vec<_>>()))
        .digest
}
