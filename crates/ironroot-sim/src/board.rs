//! Simulated boards with secure boot: every simulated device powers on through ironroot-boot
//! (boot ROM verifies the bootloader against the key hash fused in OTP, the bootloader verifies
//! the application, swaps in updates and enforces anti-rollback), and the agent is the
//! application that boot started: it reports the decision and confirms a trial image.
//!
//! ```text
//!  FleetFirmware::generate ── fleet signing key, a rogue key, factory flash (bootloader + v1.0.0)
//!        │                     and fuses (key hash, locked)
//!        ├─ factory_boot() ──▶ a fresh board's first boot, its report (flash not kept: 0 bytes/device)
//!        └─ board() ─────────▶ Board: flash + fuses kept, install(image) + power_on() any number of times
//! ```

use std::io::Cursor;
use std::sync::Arc;

use ironroot_boot::sim::{Power, SimGeometry, SimMemory, SimOtp};
use ironroot_boot::{Device, Layout, Otp, Region};
use ironroot_device::{BootReport, DeviceError, Firmware};
use ironroot_image::TrustedKey;
use ironroot_image::tools::{self, KeyType, PrivateKey, SecurityCounter, SignOptions};
use parking_lot::Mutex;

use crate::SimError;

/// Flash sector (erase unit) of the simulated boards.
const SECTOR: u32 = 0x1000;
/// Write granularity of their NOR flash.
const WRITE: u32 = 8;
/// MCUboot header size of every image.
const HEADER: u16 = 0x200;
/// The factory image's version and security counter.
pub const FACTORY_VERSION: &str = "1.0.0";
/// The factory image's security counter.
pub const FACTORY_COUNTER: u32 = 1;

/// The factory version as boot reports spell it (`1.0.0+0`).
pub fn factory_version() -> String {
    FACTORY_VERSION
        .parse::<ironroot_image::ImageVersion>()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// What a fleet's boards share: the layout, the signing keys and the factory flash contents.
pub struct FleetFirmware {
    geo: SimGeometry,
    layout: Layout,
    /// Public keys provisioned on every board (only the fleet key; its hash is fused).
    keys: Vec<TrustedKey>,
    signing: PrivateKey,
    rogue: PrivateKey,
    flash: Vec<u8>,
    fuses: Vec<u32>,
}

impl std::fmt::Debug for FleetFirmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetFirmware")
            .field("flash_bytes", &self.flash.len())
            .finish_non_exhaustive()
    }
}

fn sim(e: impl std::fmt::Display) -> SimError {
    SimError::Config(format!("simulated board: {e}"))
}

/// A deterministic payload of `len` bytes (the "firmware").
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

impl FleetFirmware {
    /// Generates the fleet's firmware signing key (Ed25519), a rogue key nobody trusts, a
    /// signed bootloader and factory application, and the factory flash and fuses.
    pub fn generate() -> Result<Arc<Self>, SimError> {
        let boot = Region::new(0, 4 * SECTOR);
        let primary = Region::new(boot.end(), 5 * SECTOR);
        let secondary = Region::new(primary.end(), 4 * SECTOR);
        let layout =
            Layout::new(boot, primary, secondary, SECTOR, WRITE, 0xff, 128, false).map_err(sim)?;
        let geo = SimGeometry {
            erase_size: SECTOR,
            write_size: WRITE,
            erased: 0xff,
            capacity: secondary.end(),
        };
        let signing = PrivateKey::generate(KeyType::Ed25519);
        let rogue = PrivateKey::generate(KeyType::Ed25519);
        let trusted = signing
            .public_key()
            .trusted_key()
            .ok_or_else(|| sim("the fleet key cannot sign"))?;
        let mut fw = Self {
            geo,
            layout,
            keys: vec![trusted.clone()],
            signing,
            rogue,
            flash: Vec::new(),
            fuses: Vec::new(),
        };
        let bootloader = fw.sign("0.1.0", None, 0, false, 0x0b00)?;
        let app = fw.image(FACTORY_VERSION, FACTORY_COUNTER)?;
        let power = Power::new();
        let mut mem = SimMemory::new(geo, power.clone());
        mem.program_raw(boot.offset, &bootloader);
        mem.program_raw(primary.offset, &app);
        let mut cells = SimOtp::new(power);
        {
            let mut otp = Otp::new(&mut cells).map_err(sim)?;
            otp.provision_key_hash(&trusted.key_hash()).map_err(sim)?;
            otp.lock().map_err(sim)?;
        }
        fw.flash = mem.as_bytes().to_vec();
        fw.fuses = cells.words().to_vec();
        Ok(Arc::new(fw))
    }

    fn sign(
        &self,
        version: &str,
        counter: Option<u32>,
        slot_size: u32,
        rogue: bool,
        seed: u64,
    ) -> Result<Vec<u8>, SimError> {
        let version = version.parse().map_err(sim)?;
        let mut opts = SignOptions::new(version, HEADER, slot_size);
        opts.pad_header = true;
        opts.align = WRITE;
        opts.erased_val = 0xff;
        opts.security_counter = counter.map(SecurityCounter::Value);
        let key = if rogue { &self.rogue } else { &self.signing };
        let mut out = Vec::new();
        tools::sign(
            Cursor::new(payload(6 * 1024, seed)),
            &mut out,
            Some(key),
            None,
            &opts,
        )
        .map_err(sim)?;
        Ok(out)
    }

    /// An application image signed with the fleet key.
    pub fn image(&self, version: &str, counter: u32) -> Result<Vec<u8>, SimError> {
        self.sign(
            version,
            Some(counter),
            self.layout.secondary.size,
            false,
            u64::from(counter),
        )
    }

    /// An application image signed with a key no board trusts (what an attacker can make).
    pub fn rogue_image(&self, version: &str, counter: u32) -> Result<Vec<u8>, SimError> {
        self.sign(
            version,
            Some(counter),
            self.layout.secondary.size,
            true,
            0xbad,
        )
    }

    /// A fresh board's first boot: its report. The flash is not kept, so a standing fleet
    /// costs no flash memory (a factory image is permanent: there is nothing to confirm).
    pub fn factory_boot(&self) -> Result<BootReport, SimError> {
        let mut state = BoardState {
            flash: self.flash.clone(),
            fuses: self.fuses.clone(),
        };
        state.power_on(self)
    }

    /// A board that keeps its flash and fuses, for updates and attacks.
    pub fn board(self: &Arc<Self>) -> Board {
        Board(Arc::new(Mutex::new(BoardInner {
            fw: self.clone(),
            state: BoardState {
                flash: self.flash.clone(),
                fuses: self.fuses.clone(),
            },
            last: None,
        })))
    }
}

/// Flash bytes and fuse words of one board between power cycles.
struct BoardState {
    flash: Vec<u8>,
    fuses: Vec<u32>,
}

impl BoardState {
    /// Runs `f` on the device built over this state, then keeps what it wrote.
    fn with_device<T>(
        &mut self,
        fw: &FleetFirmware,
        f: impl FnOnce(&mut Device<'_, &mut SimMemory, &mut SimOtp>) -> Result<T, SimError>,
    ) -> Result<T, SimError> {
        let power = Power::new();
        let mut mem = SimMemory::from_bytes(fw.geo, power.clone(), std::mem::take(&mut self.flash))
            .ok_or_else(|| sim("flash image does not fit the geometry"))?;
        let mut cells = SimOtp::new(power);
        for (i, w) in self.fuses.iter().enumerate() {
            cells.burn_raw(i, *w);
        }
        let result = {
            let otp = Otp::new(&mut cells).map_err(sim)?;
            let mut device = Device::new(&mut mem, otp, fw.layout, &fw.keys, None).map_err(sim)?;
            f(&mut device)
        };
        self.flash = mem.as_bytes().to_vec();
        self.fuses = cells.words().to_vec();
        result
    }

    fn power_on(&mut self, fw: &FleetFirmware) -> Result<BootReport, SimError> {
        self.with_device(fw, |d| {
            let decision = d.power_on().map_err(sim)?;
            Ok(BootReport::from_decision(&decision))
        })
    }
}

struct BoardInner {
    fw: Arc<FleetFirmware>,
    state: BoardState,
    last: Option<BootReport>,
}

/// One simulated board (cheap to clone: the same board). The agent holds one as its
/// [`Firmware`]; the attack scenario holds another to flash images between boots.
#[derive(Clone)]
pub struct Board(Arc<Mutex<BoardInner>>);

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Board").finish_non_exhaustive()
    }
}

impl Board {
    /// Writes `image` into the secondary slot (erased first, as a downloader does) and asks
    /// for a test swap at the next boot.
    pub fn install(&self, image: &[u8]) -> Result<(), SimError> {
        let mut inner = self.0.lock();
        let inner = &mut *inner;
        let slot = inner.fw.layout.secondary;
        if image.len() > slot.size as usize {
            return Err(sim("image larger than the secondary slot"));
        }
        inner.state.with_device(&inner.fw, |d| {
            d.flash.erase_raw(slot.offset, slot.size);
            d.flash.program_raw(slot.offset, image);
            d.request_update(false).map_err(sim)
        })
    }

    /// Powers the board on (boot ROM, bootloader) and returns the decision's report.
    pub fn power_on(&self) -> Result<BootReport, SimError> {
        let mut inner = self.0.lock();
        let inner = &mut *inner;
        let report = inner.state.power_on(&inner.fw)?;
        inner.last = Some(report.clone());
        Ok(report)
    }
}

fn device_error(e: SimError) -> DeviceError {
    DeviceError::BadInput {
        what: "firmware",
        reason: e.to_string(),
    }
}

impl Firmware for Board {
    fn boot_report(&self) -> BootReport {
        let last = self.0.lock().last.clone();
        match last {
            Some(r) => r,
            // Never powered on: boot now (what power-on would have done).
            None => self.power_on().unwrap_or_else(|_| nothing_booted()),
        }
    }

    fn confirm(&mut self) -> Result<BootReport, DeviceError> {
        let mut inner = self.0.lock();
        let inner = &mut *inner;
        inner
            .state
            .with_device(&inner.fw, |d| d.confirm().map(|_| ()).map_err(sim))
            .map_err(device_error)?;
        let report = inner
            .last
            .as_mut()
            .ok_or_else(|| device_error(sim("confirm before the first boot")))?;
        report.trial = false;
        Ok(report.clone())
    }
}

/// The report of a boot that found nothing to run.
fn nothing_booted() -> BootReport {
    BootReport {
        firmware_version: None,
        security_counter: 0,
        device_counter: 0,
        image_digest: None,
        signer: None,
        trial: false,
        action: "no swap".into(),
        measurements: String::new(),
        pcr: String::new(),
        refused: Vec::new(),
    }
}

/// A board after its factory boot whose flash was not kept: the firmware of a baseline device.
#[derive(Debug, Clone)]
pub struct FactoryBoot(pub BootReport);

impl Firmware for FactoryBoot {
    fn boot_report(&self) -> BootReport {
        self.0.clone()
    }

    fn confirm(&mut self) -> Result<BootReport, DeviceError> {
        // A factory image is permanent (no trailer): nothing to confirm.
        Ok(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factory_board_boots_the_factory_image_and_its_log_verifies() {
        let fw = FleetFirmware::generate().unwrap();
        let report = fw.factory_boot().unwrap();
        assert_eq!(report.firmware_version.as_deref(), Some("1.0.0+0"));
        assert_eq!(report.security_counter, FACTORY_COUNTER);
        assert!(!report.trial && report.refused.is_empty(), "{report:?}");
        let log = report.verified_log().unwrap();
        // Boot ROM measured the bootloader, the bootloader measured the application.
        assert_eq!(log.len(), 2);
        // A report whose summary was edited no longer matches its measurements.
        let mut forged = report.clone();
        forged.pcr = "00".repeat(32);
        assert!(forged.verified_log().is_err());
        let mut forged = report.clone();
        forged.image_digest = Some("11".repeat(32));
        assert!(forged.verified_log().is_err());
        let mut forged = report;
        forged.measurements = "AAAA".into();
        assert!(forged.verified_log().is_err());
    }

    #[test]
    fn an_update_runs_on_trial_until_confirmed_then_raises_the_floor() {
        let fw = FleetFirmware::generate().unwrap();
        let mut board = fw.board();
        board.power_on().unwrap();
        board.install(&fw.image("1.1.0", 2).unwrap()).unwrap();
        let trial = board.power_on().unwrap();
        assert!(trial.trial, "{trial:?}");
        assert_eq!(trial.firmware_version.as_deref(), Some("1.1.0+0"));
        let confirmed = board.confirm().unwrap();
        assert!(!confirmed.trial);
        // The next boot keeps the update and raises the OTP counter to its counter.
        let next = board.power_on().unwrap();
        assert_eq!(next.firmware_version.as_deref(), Some("1.1.0+0"));
        assert_eq!(next.device_counter, 2, "{next:?}");

        // Signed by a key the fuses do not name: refused, the update keeps running.
        board.install(&fw.rogue_image("9.0.0", 9).unwrap()).unwrap();
        let r = board.power_on().unwrap();
        assert_eq!(r.refused.len(), 1, "{r:?}");
        assert_eq!(r.refused[0].reason, "untrusted_key");
        assert_eq!(r.firmware_version.as_deref(), Some("1.1.0+0"));

        // Properly signed but older than the floor: refused as a rollback.
        board
            .install(&fw.image(FACTORY_VERSION, FACTORY_COUNTER).unwrap())
            .unwrap();
        let r = board.power_on().unwrap();
        assert_eq!(r.refused.len(), 1, "{r:?}");
        assert_eq!(r.refused[0].reason, "rollback");
        assert_eq!(r.firmware_version.as_deref(), Some("1.1.0+0"));
        r.verified_log().unwrap();
    }

    #[test]
    fn an_unconfirmed_update_is_reverted() {
        let fw = FleetFirmware::generate().unwrap();
        let board = fw.board();
        board.power_on().unwrap();
        board.install(&fw.image("1.1.0", 2).unwrap()).unwrap();
        assert!(board.power_on().unwrap().trial);
        // No confirm (health check failed): the next boot reverts to the factory image.
        let r = board.power_on().unwrap();
        assert_eq!(r.firmware_version.as_deref(), Some("1.0.0+0"), "{r:?}");
        assert_eq!(r.device_counter, FACTORY_COUNTER);
    }
}
