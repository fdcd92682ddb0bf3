//! Layered configuration with the `config` crate, the same way in both services.
//!
//! Layers, later wins: the settings type's `Default`, an optional TOML file, variables outside
//! the prefix that a service honours for compatibility ([`Layered::ALIASES`]), variables named
//! `PREFIX__SECTION__KEY`, then command-line flags. Only variables that start with the prefix
//! and `__` are read, so the `RECOMMENDATIONS_PORT=tcp://…` that Kubernetes injects beside a
//! Service named `recommendations` never reaches the configuration.
//!
//! Every error names the key, the value and the layer that set it (the file, the variable, the
//! flag); an unknown key is an error too, so a typo never goes unnoticed.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use config::{Config, ConfigError, Environment, File, FileFormat, Map, Source, Value, ValueKind};
use serde::{Serialize, de::DeserializeOwned};

/// A service's settings type: its environment prefix and the checks types alone cannot make.
pub trait Layered: Serialize + DeserializeOwned + Default {
    /// `MARKETPLACE` reads `MARKETPLACE__SERVER__PORT`.
    const PREFIX: &'static str;
    /// Variables outside the prefix that set a key, below the prefixed ones: `(variable, key)`.
    const ALIASES: &'static [(&'static str, &'static str)] = &[];

    /// A range, two keys that go together; [`load`] adds the value and where it was set.
    fn validate(&self) -> Result<(), Invalid> {
        Ok(())
    }
}

/// A value that parsed but cannot be used: its key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: &'static str,
    pub problem: String,
}

impl Invalid {
    pub fn new(key: &'static str, problem: impl Into<String>) -> Invalid {
        let problem = problem.into();
        Invalid { key, problem }
    }
}

/// Checks that `duration` (the setting `key`) is at least `min`.
pub fn at_least(key: &'static str, duration: Duration, min: Duration) -> Result<(), Invalid> {
    match duration < min {
        true => Err(Invalid::new(key, format!("must be at least {}", crate::millis(min)))),
        false => Ok(()),
    }
}

/// Where the configuration comes from. `main` fills it from the process; tests by hand, so that
/// they never change the process environment (which races between parallel tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// An optional TOML file, which must exist when named.
    pub file: Option<PathBuf>,
    pub env: HashMap<String, String>,
    /// Command-line flags as dotted keys (`server.port` = `6000`).
    pub overrides: Vec<(String, String)>,
}

impl Sources {
    /// This process's environment, the file `--config` names (else `<prefix>_CONFIG`, unless
    /// empty), and the flags that were given.
    pub fn from_process(
        prefix: &str,
        file: Option<PathBuf>,
        flags: &[(&str, Option<String>)],
    ) -> Sources {
        let env: HashMap<String, String> = std::env::vars().collect();
        let named = env.get(&format!("{prefix}_CONFIG")).filter(|file| !file.trim().is_empty());
        let file = file.or_else(|| named.map(PathBuf::from));
        let overrides =
            flags.iter().filter_map(|(key, value)| Some((key.to_string(), value.clone()?)));
        Sources { file, env, overrides: overrides.collect() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A layer cannot be read (a named file missing, or not TOML).
    #[error("invalid configuration: {0}")]
    Source(#[from] ConfigError),
    #[error(
        "invalid configuration: unknown key `{key}` (set by {origin}); docs/configuration.md lists every key"
    )]
    UnknownKey { key: String, origin: String },
    #[error("invalid configuration: `{key}` = {value}: {problem} (set by {origin})")]
    Invalid { key: String, value: String, problem: String, origin: String },
}

/// The variable that sets `key`: `server.port` in `RECOMMENDATIONS` is
/// `RECOMMENDATIONS__SERVER__PORT`.
pub fn env_variable(prefix: &str, key: &str) -> String {
    format!("{prefix}__{}", key.replace('.', "__").to_uppercase())
}

/// Builds the layered configuration, deserializes it and checks it.
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
            (!value.is_empty()).then(|| (key.to_string(), value.to_owned()))
        })
        .collect();
    let prefixed = Environment::with_prefix(T::PREFIX).prefix_separator("__").separator("__");
    builder = builder
        .add_source(Environment::default().source(Some(aliases)))
        .add_source(prefixed.ignore_empty(true).source(Some(sources.env.clone())));
    for (key, value) in &sources.overrides {
        builder = builder.set_override(key.as_str(), value.as_str())?;
    }
    let layers =
        Layers { config: builder.build()?, sources, prefix: T::PREFIX, aliases: T::ALIASES };
    let set = layers.config.collect()?;
    if let Some((key, value)) = unknown_key(&defaults.collect()?, &set, "") {
        return Err(SettingsError::UnknownKey { origin: layers.origin(&key, &value), key });
    }
    let settings: T = layers.config.clone().try_deserialize().map_err(|error| match error {
        ConfigError::Type { expected, key: Some(key), .. } => {
            layers.invalid(&key, format!("expected {expected}"))
        }
        ConfigError::At { error, key: Some(key), .. } => layers.invalid(&key, error.to_string()),
        other => SettingsError::Source(other),
    })?;
    settings.validate().map_err(|invalid| layers.invalid(invalid.key, invalid.problem))?;
    Ok(settings)
}

/// The built configuration, and what it takes to say where a value came from.
struct Layers<'a> {
    config: Config,
    sources: &'a Sources,
    prefix: &'static str,
    aliases: &'static [(&'static str, &'static str)],
}

impl Layers<'_> {
    fn invalid(&self, key: &str, problem: String) -> SettingsError {
        let value = lookup(self.config.collect().unwrap_or_default(), key).unwrap_or_default();
        let shown = match &value.kind {
            ValueKind::Nil => "(unset)".to_owned(),
            ValueKind::String(text) => format!("{text:?}"),
            other => other.to_string(),
        };
        let origin = self.origin(key, &value);
        SettingsError::Invalid { key: key.to_owned(), value: shown, problem, origin }
    }

    /// The layer that set `key` to `value`, in words an operator can act on. A table has no
    /// origin of its own: the first value in it speaks for it.
    fn origin(&self, key: &str, value: &Value) -> String {
        if self.sources.overrides.iter().any(|(flag, _)| flag == key) {
            return "a command-line flag".into();
        }
        let origin = match &value.kind {
            ValueKind::Table(table) => table.values().find_map(Value::origin),
            _ => value.origin(),
        };
        match origin {
            None => "the built-in default".into(),
            Some("the environment") => {
                let wanted = env_variable(self.prefix, key);
                let env = &self.sources.env;
                let prefixed = env.keys().find(|name| name.eq_ignore_ascii_case(&wanted));
                let alias = self.aliases.iter().find(|(_, k)| *k == key).map(|(v, _)| *v);
                match prefixed.map(String::as_str).or(alias) {
                    Some(name) => format!("the environment variable {name}"),
                    None => "the environment".into(),
                }
            }
            Some(file) => {
                let named = self.sources.file.as_ref().map(|path| path.display().to_string());
                format!("the file {}", named.unwrap_or_else(|| file.to_owned()))
            }
        }
    }
}

/// The value at dotted `key` of `table`.
fn lookup(mut table: Map<String, Value>, key: &str) -> Option<Value> {
    let (path, last) = key.rsplit_once('.').unwrap_or(("", key));
    for part in path.split('.').filter(|part| !part.is_empty()) {
        table = table.remove(part)?.into_table().ok()?;
    }
    table.remove(last)
}

/// The first key (in sorted order, for a stable message) set in `actual` that `known` lacks.
fn unknown_key(
    known: &Map<String, Value>,
    actual: &Map<String, Value>,
    prefix: &str,
) -> Option<(String, Value)> {
    let mut names: Vec<&String> = actual.keys().collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match (known.get(name).map(|v| &v.kind), &actual[name].kind) {
            (None, _) => Some((key, actual[name].clone())),
            (Some(ValueKind::Table(known)), ValueKind::Table(actual)) => {
                unknown_key(known, actual, &key)
            }
            _ => None,
        }
    })
}

/// `Duration` fields as whole milliseconds (`timeout_ms = 250`), with
/// `#[serde(rename = "timeout_ms", with = "bookshop_common::settings::millis")]`.
pub mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(crate::millis(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

/// Lists of values that parse from text (`host:port`, `10.0.0.0/8`), written as one string
/// separated by commas (what a variable can hold) or as a TOML array.
pub mod comma_list {
    use std::{fmt::Display, str::FromStr};

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Text(String),
        List(Vec<String>),
    }

    pub fn serialize<S: Serializer, T: Display>(
        list: &[T],
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        serializer.serialize_str(&text.join(","))
    }

    /// Each entry must parse; the error names the one that does not.
    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr<Err: Display>,
    {
        let entries = match Written::deserialize(deserializer)? {
            Written::Text(text) => text.split(',').map(str::to_owned).collect(),
            Written::List(list) => list,
        };
        let parse = |entry: &str| {
            entry.parse().map_err(|e| serde::de::Error::custom(format!("{entry:?}: {e}")))
        };
        entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).map(parse).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde::Deserialize;

    use super::*;

    fn load_settings<T: Layered>(
        text: Option<&str>,
        vars: &[(&str, &str)],
        flags: &[(&str, &str)],
    ) -> Result<T, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let file = text.map(|text| {
            let path = dir.path().join("settings.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let pairs = |list: &[(&str, &str)]| {
            list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>()
        };
        load(&Sources { file, env: pairs(vars).into_iter().collect(), overrides: pairs(flags) })
    }

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
            Server { host: "0.0.0.0".into(), port: 80, timeout: Duration::from_millis(1000) }
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
        load_settings::<Example>(file, env, &[]).unwrap_err().to_string()
    }

    #[test]
    fn layers_apply_in_order_defaults_file_alias_prefixed_flags() {
        let file = Some("[server]\nhost = \"file\"\nport = 2\ntimeout_ms = 5\n");
        let host = |vars: &[(&str, &str)], flags: &[(&str, &str)]| {
            load_settings::<Example>(file, vars, flags).unwrap().server.host
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
        assert!(err.contains("server.prot") && err.contains("settings.toml"), "{err}");
        let err = error(Some("[serverr]\nport = 1\n"), &[]);
        assert!(err.contains("`serverr`") && err.contains("settings.toml"), "{err}");
        let err = error(None, &[("example__server__ptah", "x")]);
        assert!(err.contains("server.ptah") && err.contains("example__server__ptah"), "{err}");
    }

    #[test]
    fn a_refused_value_names_where_it_was_set() {
        assert!(error(None, &[("EXAMPLE__SERVER__PORT", "1")]).contains("EXAMPLE__SERVER__PORT"));
        let err =
            load_settings::<Example>(None, &[], &[("server.port", "1")]).unwrap_err().to_string();
        assert!(err.contains("a command-line flag"), "{err}");
        let err = error(Some("[server]\nport = 1\n"), &[]);
        assert_eq!(
            err,
            format!(
                "invalid configuration: `server.port` = 1: must not be 1 (set by the file {})",
                err.rsplit("the file ").next().unwrap().trim_end_matches(')')
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
        let s = Sources { file: Some("/nonexistent/settings.toml".into()), ..Sources::default() };
        let err = load::<Example>(&s).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/settings.toml"), "{err}");
    }
}
