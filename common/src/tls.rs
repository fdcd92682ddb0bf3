//! Reading the PEM files a TLS setting names, with an error that names the setting.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
#[error("cannot read {setting} {path}: {source}")]
pub struct TlsFileError {
    pub setting: &'static str,
    pub path: String,
    pub source: std::io::Error,
}

/// Read at start-up, so a missing file stops the service by name, not its first connection.
pub fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let error = |source| TlsFileError { setting, path: path.display().to_string(), source };
    std::fs::read(path).map_err(error)
}
