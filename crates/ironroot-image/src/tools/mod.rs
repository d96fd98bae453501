//! Host-side tools (`std` feature): key files, signing, encryption, decryption and dumps —
//! everything `ironroot firmware` does besides verification.
//!
//! ```text
//! keygen ──> PrivateKey ──save──> key.pem (PKCS#8, as imgtool)
//! firmware.bin ──sign(key, [encrypt_to], SignOptions)──> image.bin (+ padding, trailer)
//! image.bin ──FileSource──> verify / ImageDump::read / decrypt_image
//! ```

mod decrypt;
mod dump;
mod keyfile;
mod sign;
mod trailer;
mod wrap;

use std::fs::File;
use std::io;
use std::path::Path;

pub use decrypt::{DecryptError, DecryptOutput, decrypt_image};
pub use dump::{AreaInfo, ImageDump, TlvRecord};
pub use keyfile::{KeyFile, KeyFileError, KeyType, PrivateFormat, PrivateKey, PublicKey};
pub use sign::{
    HashChoice, PublicKeyFormat, SecurityCounter, SignError, SignOptions, SignedImage, sign,
};
pub use trailer::{
    BOOT_MAGIC, BOOT_MAGIC_2, DEFAULT_MAX_ALIGN, DEFAULT_MAX_SECTORS, TrailerError, TrailerInfo,
    TrailerLayout,
};
pub use wrap::{HmacSha, WrapError, random_image_key, wrap_image_key};

use crate::source::ImageSource;

/// An [`ImageSource`] over a file, read with positioned reads (no whole-file buffering).
#[derive(Debug)]
pub struct FileSource {
    file: File,
    len: u32,
}

impl FileSource {
    /// Opens `path`. Files beyond 4 GiB are seen up to `u32::MAX`, the format's limit.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = u32::try_from(file.metadata()?.len()).unwrap_or(u32::MAX);
        Ok(Self { file, len })
    }
}

impl ImageSource for FileSource {
    type Error = io::Error;

    fn len(&self) -> u32 {
        self.len
    }

    #[cfg(unix)]
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, u64::from(offset))
    }

    #[cfg(not(unix))]
    fn read_at(&mut self, offset: u32, buf: &mut [u8]) -> io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(u64::from(offset)))?;
        self.file.read_exact(buf)
    }
}
