//! Layered configuration with the `config` crate, the same way in both services.
//!
//! Layers, later wins: built-in defaults (the settings type's `Default`), an optional TOML file,
//! variables outside the prefix that a service honours for compatibility ([`Layered::ALIASES`]),
//! environment variables named `PREFIX__SECTION__KEY`, then command-line overrides. Only
//! variables that start with the prefix followed by `__` are read, so the
//! `RECOMMENDATIONS_PORT=tcp://10.0.0.1:50051` that Kubernetes injects beside a Service named
//! `recommendations` never reaches the configuration.
//!
//! Every error names the key, the value and the layer that set it (the file, the variable, the
//! flag), whether the value is of the wrong type, out of range, or refused by
//! [`Layered::validate`]; an unknown key is an error too, so a typo never goes unnoticed.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use config::{Config, ConfigError, Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::{Serialize, de::DeserializeOwned};

/// A service's settings type: how its configuration is layered and checked.
pub trait Layered: Serialize + DeserializeOwned + Default {
    /// The environment prefix: `MARKETPLACE` reads `MARKETPLACE__SERVER__PORT`.
    const PREFIX: &'static str;
    /// Variables outside the prefix that set a key, below the prefixed variables:
    /// `(variable, dotted key)`.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];

    /// Checks what types alone cannot (a range, two keys that go together); [`load`] adds the
    /// value and where it was set to the error.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// A value that parsed but cannot be used: the key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The dotted key.
    pub key: &'static str,
    /// What is wrong, and what would be right.
    pub problem: String,
}

impl Invalid {
    /// `key` is wrong because of `problem`.
    pub fn new(key: &'static str, problem: impl Into<String>) -> Invalid {
        Invalid {
            key,
            problem: problem.into(),
        }
    }
}

/// Where the configuration comes from. `main` fills it from the real process; tests fill it by
/// hand, so they never mutate the process environment (which races between parallel tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An optional TOML file (`--config FILE` or `<PREFIX>_CONFIG`). When given it must exist.
    pub file: Option<PathBuf>,
    /// The environment, as a map of variable name to value.
    pub env: HashMap<String, String>,
    /// Command-line overrides as dotted keys (`server.port` = `6000`); they beat every other layer.
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// The sources of this process: its environment and the file named by `--config` or by the
    /// `<PREFIX>_CONFIG` variable.
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
            overrides: Vec::new(),
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

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A layer cannot be read (a named file missing, or not TOML).
    #[error("invalid configuration: {0}")]
    Source(#[from] ConfigError),
    /// A key that no setting has (most likely a typo).
    #[error(
        "invalid configuration: unknown key `{key}` (set by {origin}); docs/configuration.md lists every key"
    )]
    UnknownKey {
        /// The dotted key as written.
        key: String,
        /// The layer that set it.
        origin: String,
    },
    /// A value of the wrong type, out of range, or refused by the service's checks.
    #[error("invalid configuration: `{key}` = {value}: {problem} (set by {origin})")]
    Invalid {
        /// The dotted key.
        key: String,
        /// The value as configured.
        value: String,
        /// What is wrong with it.
        problem: String,
        /// The layer that set it.
        origin: String,
    },
}

/// The variable that sets `key` for a service with `prefix`: `server.port` in `RECOMMENDATIONS`
/// is `RECOMMENDATIONS__SERVER__PORT`.
pub fn env_variable(prefix: &str, key: &str) -> String {
    format!("{prefix}__{}", key.replace('.', "__").to_uppercase())
}

/// Builds the layered configuration, deserializes it and checks it.
///
/// Settings types should use `#[serde(deny_unknown_fields)]` as well; unknown keys are reported
/// here first, with the layer that set them.
pub fn load<T: Layered>(sources: &Sources) -> Result<T, SettingsError> {
    let defaults = Config::try_from(&T::default())?;
    let mut builder = Config::builder().add_source(defaults.clone());
    if let Some(file) = &sources.file {
        builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
    }
    let aliases: HashMap<String, String> = T::ALIASES
        .iter()
        .filter_map(|(variable, key)| {
            let value = sources.env.get(*variable)?.trim();
            (!value.is_empty()).then(|| ((*key).to_owned(), value.to_owned()))
        })
        .collect();
    if !aliases.is_empty() {
        builder = builder.add_source(Environment::default().source(Some(aliases)));
    }
    builder = builder.add_source(
        Environment::with_prefix(T::PREFIX)
            .prefix_separator("__")
            .separator("__")
            .ignore_empty(true)
            .source(Some(sources.env.clone())),
    );
    for (key, value) in &sources.overrides {
        builder = builder.set_override(key.as_str(), value.as_str())?;
    }
    let layers = Layers {
        config: builder.build()?,
        prefix: T::PREFIX,
        aliases: T::ALIASES,
        sources,
    };
    if let Some((key, value)) = unknown_key(&defaults.collect()?, &layers.config.collect()?, "") {
        return Err(SettingsError::UnknownKey {
            origin: layers.origin(&key, &value),
            key,
        });
    }
    let settings: T = layers
        .config
        .clone()
        .try_deserialize()
        .map_err(|error| layers.locate(error))?;
    settings
        .validate()
        .map_err(|invalid| layers.invalid(invalid.key, invalid.problem))?;
    Ok(settings)
}

/// The built configuration and what is needed to say where a value came from.
struct Layers<'a> {
    config: Config,
    prefix: &'static str,
    aliases: &'static [(&'static str, &'static str)],
    sources: &'a Sources,
}

impl Layers<'_> {
    /// The value of `key` as the layers left it, with its origin (`Config::get` drops it).
    fn value(&self, key: &str) -> Option<Value> {
        let mut table = self.config.collect().ok()?;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            let value = table.remove(part)?;
            if parts.peek().is_none() {
                return Some(value);
            }
            let ValueKind::Table(inner) = value.kind else {
                return None;
            };
            table = inner;
        }
        None
    }

    /// The layer that set `key` to `value`, in words an operator can act on. A table takes the
    /// origin of the first value in it (its own is not kept).
    fn origin(&self, key: &str, value: &Value) -> String {
        if self.sources.overrides.iter().any(|(k, _)| k == key) {
            return "a command-line flag".into();
        }
        let origin = match &value.kind {
            ValueKind::Table(table) => table.values().find_map(|v| v.origin()),
            _ => value.origin(),
        };
        match origin {
            Some("the environment") => {
                let wanted = env_variable(self.prefix, key);
                let prefixed = self
                    .sources
                    .env
                    .keys()
                    .find(|name| name.eq_ignore_ascii_case(&wanted));
                let alias = self
                    .aliases
                    .iter()
                    .find(|(_, k)| *k == key)
                    .map(|(v, _)| *v);
                match prefixed.map(String::as_str).or(alias) {
                    Some(name) => format!("the environment variable {name}"),
                    None => "the environment".into(),
                }
            }
            // The one file layer; named as given (the crate's own text is relative to the
            // working directory).
            Some(file) => match &self.sources.file {
                Some(path) => format!("the file {}", path.display()),
                None => format!("the file {file}"),
            },
            None => "the built-in default".into(),
        }
    }

    /// An [`SettingsError::Invalid`] for `key`, with its value and origin.
    fn invalid(&self, key: &str, problem: String) -> SettingsError {
        let value = self
            .value(key)
            .unwrap_or_else(|| Value::from(ValueKind::Nil));
        SettingsError::Invalid {
            key: key.to_owned(),
            value: shown(&value),
            origin: self.origin(key, &value),
            problem,
        }
    }

    /// A deserialization error as [`SettingsError::Invalid`] when it names its key.
    fn locate(&self, error: ConfigError) -> SettingsError {
        match error {
            ConfigError::Type {
                expected,
                key: Some(key),
                ..
            } => self.invalid(&key, format!("expected {expected}")),
            ConfigError::At {
                error,
                key: Some(key),
                ..
            } => self.invalid(&key, error.to_string()),
            other => SettingsError::Source(other),
        }
    }
}

/// A configured value as the error message shows it: text quoted, nothing at all as `(unset)`.
fn shown(value: &Value) -> String {
    match &value.kind {
        ValueKind::Nil => "(unset)".into(),
        ValueKind::String(text) => format!("{text:?}"),
        other => other.to_string(),
    }
}

/// The first key (in sorted order, for a stable message) set in `actual` that `known` lacks.
fn unknown_key(
    known: &Map<String, Value>,
    actual: &Map<String, Value>,
    prefix: &str,
) -> Option<(String, Value)> {
    let mut keys: Vec<&String> = actual.keys().collect();
    keys.sort();
    keys.into_iter().find_map(|name| {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let value = &actual[name];
        match (&known.get(name).map(|v| &v.kind), &value.kind) {
            (None, _) => Some((key, value.clone())),
            (Some(ValueKind::Table(known)), ValueKind::Table(actual)) => {
                unknown_key(known, actual, &key)
            }
            _ => None,
        }
    })
}

/// `Duration` fields written as whole milliseconds (`timeout_ms = 250`), with
/// `#[serde(rename = "timeout_ms", with = "bookshop_common::settings::millis")]`.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the duration as whole milliseconds.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(crate::millis(*duration))
    }

    /// Reads whole milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Lists of values that parse from text (`host:port`, `10.0.0.0/8`), written as one string
/// separated by commas (what an environment variable can hold) or as a TOML array, with
/// `#[serde(with = "bookshop_common::settings::comma_list")]`. An empty string is an empty list.
pub mod comma_list {
    use std::{fmt::Display, str::FromStr};

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        List(Vec<String>),
    }

    /// Writes the list as one string, separated by commas.
    pub fn serialize<S: Serializer, T: Display>(
        list: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        serializer.serialize_str(&text.join(","))
    }

    /// Reads a comma-separated string or a list; each entry must parse, and the error names
    /// the one that does not.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let entries = match Written::deserialize(deserializer)? {
            Written::Text(text) => text.split(',').map(str::to_owned).collect(),
            Written::List(list) => list,
        };
        entries
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse()
                    .map_err(|error| serde::de::Error::custom(format!("{entry:?}: {error}")))
            })
            .collect()
    }
}

/// Checks that `duration` (the setting `key`) is at least `min`.
pub fn at_least(key: &'static str, duration: Duration, min: Duration) -> Result<(), Invalid> {
    if duration < min {
        return Err(Invalid::new(
            key,
            format!("must be at least {}", crate::millis(min)),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde::Deserialize;

    use super::*;
    use crate::testing::load_settings;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Example {
        server: Server,
        name: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Server {
        host: String,
        port: u16,
        #[serde(rename = "timeout_ms", with = "millis")]
        timeout: Duration,
    }

    impl Default for Server {
        fn default() -> Self {
            Server {
                host: "0.0.0.0".into(),
                port: 80,
                timeout: Duration::from_millis(1000),
            }
        }
    }

    impl Layered for Example {
        const PREFIX: &'static str = "EXAMPLE";
        const ALIASES: &'static [(&'static str, &'static str)] = &[("EXAMPLE_HOST", "server.host")];

        fn validate(&self) -> Result<(), Invalid> {
            if self.server.port == 1 {
                return Err(Invalid::new("server.port", "must not be 1"));
            }
            Ok(())
        }
    }

    fn error(file: Option<&str>, env: &[(&str, &str)]) -> String {
        load_settings::<Example>(file, env, &[])
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn layers_apply_in_order_defaults_file_alias_prefixed_flags() {
        let file = Some("[server]\nhost = \"file\"\nport = 2\ntimeout_ms = 5\n");
        let host = |vars: &[(&str, &str)], flags: &[(&str, &str)]| {
            load_settings::<Example>(file, vars, flags)
                .unwrap()
                .server
                .host
        };
        let loaded = load_settings::<Example>(file, &[], &[]).unwrap();
        assert_eq!(loaded.server.host, "file");
        assert_eq!(loaded.server.timeout, Duration::from_millis(5));
        let alias = ("EXAMPLE_HOST", "alias");
        assert_eq!(host(&[alias], &[]), "alias");
        let prefixed = ("EXAMPLE__SERVER__HOST", "env");
        assert_eq!(host(&[alias, prefixed], &[]), "env");
        assert_eq!(host(&[alias, prefixed], &[("server.host", "flag")]), "flag");
    }

    #[test]
    fn a_wrong_type_names_the_key_the_value_and_the_variable() {
        let err = error(None, &[("EXAMPLE__SERVER__PORT", "eighty")]);
        for part in ["server.port", "\"eighty\"", "EXAMPLE__SERVER__PORT"] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }

    #[test]
    fn an_out_of_range_number_names_the_file() {
        let err = error(Some("[server]\nport = 70000\n"), &[]);
        for part in ["server.port", "70000", "settings.toml"] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }

    #[test]
    fn an_unknown_key_names_the_layer_that_set_it() {
        let err = error(Some("[server]\nprot = 1\n"), &[]);
        assert!(
            err.contains("server.prot") && err.contains("settings.toml"),
            "{err}"
        );
        let err = error(Some("[serverr]\nport = 1\n"), &[]);
        assert!(
            err.contains("`serverr`") && err.contains("settings.toml"),
            "{err}"
        );
        let err = error(None, &[("example__server__ptah", "x")]);
        assert!(
            err.contains("server.ptah") && err.contains("example__server__ptah"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_value_names_where_it_was_set() {
        assert!(error(None, &[("EXAMPLE__SERVER__PORT", "1")]).contains("EXAMPLE__SERVER__PORT"));
        let err = load_settings::<Example>(None, &[], &[("server.port", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("a command-line flag"), "{err}");
        let err = error(Some("[server]\nport = 1\n"), &[]);
        assert_eq!(
            err,
            format!(
                "invalid configuration: `server.port` = 1: must not be 1 (set by the file {})",
                err.rsplit("the file ")
                    .next()
                    .unwrap()
                    .trim_end_matches(')')
            )
        );
    }

    #[test]
    fn kubernetes_service_variables_and_empty_ones_are_ignored() {
        let vars = [
            ("EXAMPLE_PORT", "tcp://10.0.0.7:80"),
            ("EXAMPLE_SERVICE_HOST", "10.0.0.7"),
            ("EXAMPLE__SERVER__PORT", ""),
            ("EXAMPLE_HOST", " "),
        ];
        let loaded = load_settings::<Example>(None, &vars, &[]).unwrap();
        assert_eq!(loaded, Example::default());
    }

    #[test]
    fn a_named_file_that_does_not_exist_is_an_error() {
        let s = Sources {
            file: Some("/nonexistent/settings.toml".into()),
            ..Sources::default()
        };
        let err = load::<Example>(&s).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/settings.toml"), "{err}");
    }
}
