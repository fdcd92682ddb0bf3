//! Layered configuration with the `config` crate, the same way in both services.
//!
//! Layers, later wins: built-in defaults, an optional TOML file, environment variables named
//! `PREFIX__SECTION__KEY`, then command-line overrides. Only variables that start with the prefix
//! followed by `__` are read, so the `RECOMMENDATIONS_PORT=tcp://10.0.0.1:50051` that Kubernetes
//! injects beside a Service named `recommendations` never reaches the configuration.

use std::{collections::HashMap, path::PathBuf};

use config::{Config, ConfigError, Environment, File, FileFormat};

/// Where the configuration comes from. `main` fills it from the real process; tests fill it by
/// hand, so they never mutate the process environment (which races between parallel tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An optional TOML file (`--config FILE` or `<PREFIX>_CONFIG`). When given it must exist.
    pub file: Option<PathBuf>,
    /// The environment, as a map of variable name to value.
    pub env: HashMap<String, String>,
    /// Extra layers applied after the file and before the prefixed environment, as dotted keys.
    /// The Marketplace uses it for the seed's plain `RECOMMENDATIONS_HOST`.
    pub legacy: HashMap<String, String>,
    /// Command-line overrides as dotted keys (`server.port` = `6000`); they beat every other layer.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The sources of this process: its environment, the file named by `--config` or by the
    /// `<PREFIX>_CONFIG` variable, and the given command-line overrides.
    pub fn from_process(prefix: &str, file: Option<PathBuf>) -> Self {
        let env: HashMap<String, String> = std::env::vars().collect();
        let file = file.or_else(|| {
            env.get(&format!("{prefix}_CONFIG"))
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from)
        });
        Sources {
            file,
            env,
            ..Sources::default()
        }
    }

    /// Adds a command-line override if the flag was given.
    pub fn with_override(mut self, key: &str, value: Option<impl ToString>) -> Self {
        if let Some(value) = value {
            self.overrides.push((key.to_owned(), value.to_string()));
        }
        self
    }
}

/// Why the configuration could not be loaded; the message names the key, the value and the layer.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The `config` crate rejected a layer or a value.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A value parsed but makes no sense (for example a cap below the default).
    #[error("invalid configuration: `{key}` = {value:?}: {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// The offending value as written.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
}

/// Builds and deserializes the layered configuration.
///
/// `defaults` is the serialized `Default` of the settings type, so defaults live in one place.
/// Settings types should use `#[serde(deny_unknown_fields)]`, so a misspelt key in the file or
/// in a `PREFIX__…` variable is an error instead of being silently ignored.
pub fn load<T>(prefix: &str, defaults: &T, sources: &Sources) -> Result<T, SettingsError>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut builder = Config::builder().add_source(Config::try_from(defaults)?);
    if let Some(file) = &sources.file {
        builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
    }
    if !sources.legacy.is_empty() {
        builder = builder.add_source(Environment::default().source(Some(sources.legacy.clone())));
    }
    builder = builder.add_source(
        Environment::with_prefix(prefix)
            .prefix_separator("__")
            .separator("__")
            .ignore_empty(true)
            .source(Some(sources.env.clone())),
    );
    for (key, value) in &sources.overrides {
        builder = builder.set_override(key.as_str(), value.as_str())?;
    }
    Ok(builder.build()?.try_deserialize()?)
}
