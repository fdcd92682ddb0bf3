//! Layered configuration, later wins: the type's `Default`, an optional TOML file, aliases, then
//! `PREFIX__SECTION__KEY` variables and flags (never a Kubernetes `RECOMMENDATIONS_PORT=tcp://…`).
//! Every error, an unknown key included, names the key, the value and the layer that set it.

use std::{collections::HashMap, marker::PhantomData, path::PathBuf, time::Duration};

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

pub fn ensure(holds: bool, key: &'static str, problem: impl Into<String>) -> Result<(), Invalid> {
    holds.then_some(()).ok_or_else(|| Invalid { key, problem: problem.into() })
}

pub fn at_least(key: &'static str, duration: Duration, min: Duration) -> Result<(), Invalid> {
    ensure(duration >= min, key, format!("must be at least {}", crate::millis(min)))
}

/// Where the configuration comes from: the process, or a test (so tests never race on the env).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    pub env: HashMap<String, String>,
    /// Command-line flags as dotted keys (`server.port` = `6000`).
    pub overrides: Vec<(String, String)>,
}

/// What both command lines have: the file and the port, flags above every other layer.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML configuration file [default: none; every key's default is in docs/configuration.md]
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The port to serve on (server.port)
    #[arg(long, value_name = "N")]
    pub port: Option<u16>,
}

impl Args {
    /// The env, the file `--config` (else a non-empty `<prefix>_CONFIG`) names, `--port`, `flags`.
    pub fn sources(self, prefix: &str, flags: &[(&str, Option<String>)]) -> Sources {
        let env: HashMap<String, String> = std::env::vars().collect();
        let named = env.get(&format!("{prefix}_CONFIG")).filter(|file| !file.trim().is_empty());
        let file = self.config.or_else(|| named.map(PathBuf::from));
        let port = ("server.port", self.port.map(|port| port.to_string()));
        let set = |(key, value): &(&str, Option<String>)| Some((key.to_string(), value.clone()?));
        let overrides = flags.iter().chain([&port]).filter_map(set).collect();
        Sources { file, env, overrides }
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

/// The variable that sets `key`: `RECOMMENDATIONS__SERVER__PORT` for `server.port`.
pub fn env_variable(prefix: &str, key: &str) -> String {
    format!("{prefix}__{}", key.replace('.', "__").to_uppercase())
}

/// Loads `T`; call it with logging on, as it warns of variables it ignores.
pub fn load<T: Layered>(sources: &Sources) -> Result<T, SettingsError> {
    let defaults = Config::try_from(&T::default())?;
    let known = defaults.collect()?;
    for (variable, key) in misspelled(T::PREFIX, &sources.env, &known, "") {
        let instead = env_variable(T::PREFIX, &key);
        tracing::warn!(variable, instead, "variable ignored: settings take two underscores");
    }
    let mut builder = Config::builder().add_source(defaults.clone());
    if let Some(file) = &sources.file {
        builder = builder.add_source(File::from(file.as_path()).format(FileFormat::Toml));
    }
    let alias = |(variable, key): &(&str, &str)| {
        let value = sources.env.get(*variable)?.trim();
        (!value.is_empty()).then(|| (key.to_string(), value.to_owned()))
    };
    let aliases: HashMap<String, String> = T::ALIASES.iter().filter_map(alias).collect();
    let prefixed = Environment::with_prefix(T::PREFIX).prefix_separator("__").separator("__");
    builder = builder
        .add_source(Environment::default().source(Some(aliases)))
        .add_source(prefixed.ignore_empty(true).source(Some(sources.env.clone())));
    for (key, value) in &sources.overrides {
        builder = builder.set_override(key.as_str(), value.as_str())?;
    }
    let layers = Layers::<T> { config: builder.build()?, sources, settings: PhantomData };
    if let Some((key, value)) = unknown_key(&known, &layers.config.collect()?, "") {
        return Err(SettingsError::UnknownKey { origin: layers.origin(&key, &value), key });
    }
    let settings: T = layers.config.clone().try_deserialize().map_err(|error| match error {
        ConfigError::Type { expected, key: Some(key), .. } => {
            layers.invalid(&key, plain(format!("expected {expected}")))
        }
        ConfigError::At { error, key: Some(key), .. } => {
            let valid = lookup(&layers.config.cache, &key).and_then(|v| variants::<T>(&key, v));
            layers.invalid(&key, valid.unwrap_or_else(|| plain(error.to_string())))
        }
        other => SettingsError::Source(other),
    })?;
    settings.validate().map_err(|invalid| layers.invalid(invalid.key, invalid.problem))?;
    Ok(settings)
}

/// serde's words for a port's type in the user's.
fn plain(problem: String) -> String {
    let port = "a whole number from 0 to 65535";
    problem.replace("an unsigned 16 bit integer", port).replace("u16", port)
}

/// serde's "unknown variant `x`, expected one of …" (config's says none), from the value alone.
fn variants<T: Layered>(key: &str, value: &Value) -> Option<String> {
    let ValueKind::String(text) = &value.kind else { return None };
    let mut json = serde_json::to_value(T::default()).ok()?;
    *json.pointer_mut(&format!("/{}", key.replace('.', "/")))? = text.as_str().into();
    let error = serde_json::from_value::<T>(json).err()?.to_string();
    error.starts_with("unknown variant").then_some(error)
}

/// Variables like `PREFIX_SERVER_PORT` (one underscore for two), each with its key.
fn misspelled(
    prefix: &str,
    env: &HashMap<String, String>,
    table: &Table,
    at: &str,
) -> Vec<(String, String)> {
    let found = table.iter().flat_map(|(name, value)| {
        let key = if at.is_empty() { name.clone() } else { format!("{at}.{name}") };
        if let ValueKind::Table(inner) = &value.kind {
            return misspelled(prefix, env, inner, &key);
        }
        let variable = format!("{prefix}_{}", key.replace('.', "_").to_uppercase());
        env.contains_key(&variable).then_some((variable, key)).into_iter().collect()
    });
    found.collect()
}

/// The built configuration, and what it takes to say where a value came from.
struct Layers<'a, T> {
    config: Config,
    sources: &'a Sources,
    settings: PhantomData<T>,
}

impl<T: Layered> Layers<'_, T> {
    fn invalid(&self, key: &str, problem: String) -> SettingsError {
        let value = lookup(&self.config.cache, key).cloned().unwrap_or_default();
        let shown = match &value.kind {
            ValueKind::Nil => "(unset)".to_owned(),
            ValueKind::String(text) => format!("{text:?}"),
            other => other.to_string(),
        };
        let origin = self.origin(key, &value);
        SettingsError::Invalid { key: key.to_owned(), value: shown, problem, origin }
    }

    /// The layer that set `key` to `value`, for an operator; a table's first value speaks for it.
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
                let wanted = env_variable(T::PREFIX, key);
                let env = &self.sources.env;
                let prefixed = env.keys().find(|name| name.eq_ignore_ascii_case(&wanted));
                let alias = T::ALIASES.iter().find(|alias| alias.1 == key).map(|alias| alias.0);
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

fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(root, |value, part| match &value.kind {
        ValueKind::Table(table) => table.get(part),
        _ => None,
    })
}

type Table = Map<String, Value>;

/// The first key (in sorted order, for a stable message) in `set` that `known` lacks.
fn unknown_key(known: &Table, set: &Table, prefix: &str) -> Option<(String, Value)> {
    let mut names: Vec<&String> = set.keys().collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match (known.get(name).map(|value| &value.kind), &set[name].kind) {
            (None, _) => Some((key, set[name].clone())),
            (Some(ValueKind::Table(known)), ValueKind::Table(set)) => unknown_key(known, set, &key),
            _ => None,
        }
    })
}

/// `Duration` fields as whole milliseconds: `#[serde(rename = "timeout_ms", with = "millis")]`.
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

/// Values that parse from text (`host:port`): a TOML array, or comma-separated as in a variable.
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
    pub fn deserialize<'de, D: Deserializer<'de>, T: FromStr<Err: Display>>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
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
        mode: Mode,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        #[default]
        Events,
        Poll,
    }

    impl Default for Server {
        fn default() -> Self {
            let timeout = Duration::from_millis(1000);
            Server { host: "0.0.0.0".into(), port: 80, timeout, mode: Mode::Events }
        }
    }

    impl Layered for Example {
        const PREFIX: &'static str = "EXAMPLE";
        const ALIASES: &'static [(&'static str, &'static str)] = &[("EXAMPLE_HOST", "server.host")];

        fn validate(&self) -> Result<(), Invalid> {
            ensure(self.server.port != 1, "server.port", "must not be 1")
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
        let err = error(None, &[("EXAMPLE__SERVER__PORT", "70000")]);
        assert!(err.contains("expected a whole number from 0 to 65535"), "{err}");
    }

    #[test]
    fn a_value_no_variant_has_is_an_error_listing_the_valid_ones() {
        let err = error(Some("[server]\nmode = \"inotify\"\n"), &[]);
        let valid = "unknown variant `inotify`, expected `events` or `poll`";
        for part in ["server.mode", valid, "settings.toml"] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
        let set = load_settings::<Example>(None, &[("EXAMPLE__SERVER__MODE", "poll")], &[]);
        assert_eq!(set.unwrap().server.mode, Mode::Poll);
    }

    #[test]
    fn a_variable_with_one_underscore_for_two_is_found_with_its_right_spelling() {
        let defaults = Config::try_from(&Example::default()).unwrap().collect().unwrap();
        let env = ["EXAMPLE_SERVER_PORT", "EXAMPLE_SERVER_TIMEOUT_MS", "EXAMPLE__SERVER__HOST"];
        let ignored = ["EXAMPLE_CONFIG", "EXAMPLE_PORT", "EXAMPLE_HOST", "OTHER_SERVER_PORT"];
        let env = env.iter().chain(&ignored).map(|name| (name.to_string(), "1".into())).collect();
        let mut found = misspelled("EXAMPLE", &env, &defaults, "");
        found.sort();
        let found: Vec<_> = found.iter().map(|(v, k)| (v.as_str(), k.as_str())).collect();
        let port = ("EXAMPLE_SERVER_PORT", "server.port");
        assert_eq!(found, [port, ("EXAMPLE_SERVER_TIMEOUT_MS", "server.timeout_ms")]);
    }

    #[test]
    fn an_out_of_range_number_names_the_file() {
        let err = error(Some("[server]\nport = 70000\n"), &[]);
        for part in ["server.port", "70000", "settings.toml", "from 0 to 65535"] {
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
