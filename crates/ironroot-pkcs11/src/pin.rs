//! The token user PIN: wiped on drop, never printed.

use std::fmt;
use std::path::Path;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

/// A token user PIN, wiped from memory on drop and never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN (a trailing newline, as left in PIN files, is removed).
    pub fn new(mut pin: String) -> Self {
        while pin.ends_with('\n') || pin.ends_with('\r') {
            pin.pop();
        }
        Self(Zeroizing::new(pin))
    }

    /// Reads a PIN file (the whole file, one trailing newline removed). The error names the
    /// file, never its content.
    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let bytes = Zeroizing::new(std::fs::read(path)?);
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, "PIN file is not UTF-8")
        })?;
        Ok(Self::new(text.to_owned()))
    }

    /// Reads the PIN from the environment variable `name` (e.g. `IRONROOT_PKCS11_PIN`);
    /// `None` when it is unset or not UTF-8.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().map(Self::new)
    }

    pub(crate) fn auth(&self) -> AuthPin {
        AuthPin::from(self.0.as_str().to_owned())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_trimmed_and_redacted() {
        let pin = Pin::new("1234\n".into());
        assert_eq!(pin.0.as_str(), "1234");
        assert_eq!(format!("{pin:?}"), "Pin([redacted])");
        let tmp = std::env::temp_dir().join(format!("ironroot-pin-{}", std::process::id()));
        std::fs::write(&tmp, "9876\r\n").unwrap();
        let from_file = Pin::from_file(&tmp).unwrap();
        std::fs::remove_file(&tmp).unwrap();
        assert_eq!(from_file.0.as_str(), "9876");
        assert!(Pin::from_env("IRONROOT_NO_SUCH_PIN_VARIABLE_7f3a").is_none());
    }
}
