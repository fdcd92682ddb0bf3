//! Reading the PEM files of a TLS setting, with an error that names the setting.

use std::path::Path;

/// A TLS file named by a setting cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {setting} {path}: {source}")]
pub struct TlsFileError {
    /// The setting that names the file (`tls.cert_path`).
    pub setting: &'static str,
    /// The file.
    pub path: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Reads the file that `setting` names, at start-up, so a missing file stops the service with
/// its name rather than failing the first connection.
pub fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError {
        setting,
        path: path.display().to_string(),
        source,
    })
}
