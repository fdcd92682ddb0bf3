//! The Marketplace's configuration: defaults, then an optional TOML file, then the seed's
//! `RECOMMENDATIONS_HOST`, then `MARKETPLACE__…` environment variables, then command-line flags
//! (see `docs/configuration.md`).
//!
//! Loading goes through [`bookshop_common::settings::load`]; this module adds the Marketplace's
//! keys, the legacy variable, and the checks the `config` crate cannot make (an unknown category,
//! a zero port), whose errors also name the layer the bad value came from.

use std::{
    net::Ipv6Addr,
    path::{Path, PathBuf},
    time::Duration,
};

use bookshop_common::settings::{SettingsError, Sources, load};
use bookshop_proto::BookCategory;
use config::ConfigError;
use serde::{Deserialize, Serialize};

use crate::params::{self, MAX_RESULTS_RANGE};

/// The environment prefix: `MARKETPLACE__SERVER__PORT` sets `server.port`.
pub const ENV_PREFIX: &str = "MARKETPLACE";

/// The seed's variable naming the Recommendations host. Honoured below `MARKETPLACE__…`.
///
/// Its sibling `RECOMMENDATIONS_PORT` is deliberately **not** read: Kubernetes sets it to
/// `tcp://10.x.y.z:50051` in every pod beside a Service named `recommendations`.
pub const LEGACY_HOST_VARIABLE: &str = "RECOMMENDATIONS_HOST";

/// All settings. Unknown keys are errors, so a misspelt key is reported instead of ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The HTTP listener.
    pub server: ServerSettings,
    /// Where Recommendations is and how long to wait for it.
    pub recommendations: RecommendationsSettings,
    /// What the home page shows when the request does not say.
    pub homepage: HomepageSettings,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to bind (`0.0.0.0` for all IPv4 interfaces, `::` for IPv6 too).
    pub host: String,
    /// HTTP port (0 picks a free port).
    pub port: u16,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_timeout_ms: u64,
    /// How long a client may take to send a request's head (line and headers): bounds
    /// slow-header (Slowloris) clients, including one that connects and sends nothing.
    pub header_read_timeout_ms: u64,
    /// How long a connection may stay without any read or write before it is closed
    /// (keep-alive connections between requests, stalled clients).
    pub idle_timeout_ms: u64,
    /// The most connections served at once; beyond it new connections wait in the OS backlog.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "0.0.0.0".into(),
            port: 5001,
            shutdown_timeout_ms: 10_000,
            header_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            max_connections: 10_000,
        }
    }
}

/// `[recommendations]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendationsSettings {
    /// Host name or IP address of the Recommendations service (no port, no scheme).
    pub host: String,
    /// Its gRPC port.
    pub port: u16,
    /// The deadline of one call, sent to the server as `grpc-timeout`.
    pub timeout_ms: u64,
    /// How long to wait for a TCP connection to be set up.
    pub connect_timeout_ms: u64,
    /// The `Retry-After` of the 503 answered while Recommendations is unavailable.
    pub retry_after_secs: u32,
    /// Replica addresses, `host:port` separated by commas; when set, used instead of `host` and
    /// `port`. Each name is resolved too, so one entry may stand for several replicas.
    pub addresses: String,
    /// How often the replica addresses are resolved again.
    pub resolve_interval_ms: u64,
    /// How long a connection to a replica may go without traffic before it is probed: HTTP/2
    /// pings while calls are in flight, TCP keepalive probes while it is idle.
    pub keepalive_ms: u64,
    /// TLS to Recommendations (off unless `ca_path` is set).
    pub tls: ClientTlsSettings,
}

/// `[recommendations.tls]`: TLS to Recommendations when `ca_path` is set; mutual TLS when the
/// client certificate and key are set too. Files are PEM.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    /// The CA that signed Recommendations' certificate (the only one trusted).
    pub ca_path: Option<PathBuf>,
    /// The name Recommendations' certificate must carry as a subjectAltName; default:
    /// `recommendations.host`.
    pub server_name: Option<String>,
    /// The Marketplace's client certificate, for mutual TLS.
    pub cert_path: Option<PathBuf>,
    /// Its private key.
    pub key_path: Option<PathBuf>,
}

impl Default for RecommendationsSettings {
    fn default() -> Self {
        RecommendationsSettings {
            host: "localhost".into(),
            port: 50051,
            timeout_ms: 1_000,
            connect_timeout_ms: 500,
            retry_after_secs: 5,
            addresses: String::new(),
            resolve_interval_ms: 5_000,
            keepalive_ms: 20_000,
            tls: ClientTlsSettings::default(),
        }
    }
}

impl RecommendationsSettings {
    /// The gRPC endpoint, `http://host:port` (IPv6 addresses bracketed).
    pub fn uri(&self) -> String {
        if self.host.parse::<Ipv6Addr>().is_ok() {
            format!("http://[{}]:{}", self.host, self.port)
        } else {
            format!("http://{}:{}", self.host, self.port)
        }
    }

    /// The per-call deadline.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The TCP connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    /// How often replica addresses are resolved again.
    pub fn resolve_interval(&self) -> Duration {
        Duration::from_millis(self.resolve_interval_ms)
    }

    /// How long a connection may go without traffic before it is probed.
    pub fn keepalive(&self) -> Duration {
        Duration::from_millis(self.keepalive_ms)
    }

    /// The name Recommendations' certificate is checked against.
    pub fn tls_server_name(&self) -> String {
        self.tls
            .server_name
            .clone()
            .unwrap_or_else(|| self.host.clone())
    }

    /// What to resolve: the `addresses` list if set, else `host` and `port`.
    pub fn targets(&self) -> Vec<(String, u16)> {
        let listed: Vec<(String, u16)> = self
            .address_entries()
            .filter_map(|entry| split_host_port(entry).ok())
            .collect();
        if listed.is_empty() {
            vec![(self.host.clone(), self.port)]
        } else {
            listed
        }
    }

    fn address_entries(&self) -> impl Iterator<Item = &str> {
        self.addresses
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
    }
}

/// Splits `host:port` (IPv6 in brackets: `[::1]:50051`).
pub fn split_host_port(entry: &str) -> Result<(String, u16), &'static str> {
    let (host, port) = entry
        .rsplit_once(':')
        .ok_or("must be host:port (IPv6 in brackets, e.g. [::1]:50051)")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err("has no host");
    }
    let port: u16 = port.parse().map_err(|_| "has no valid port (1 to 65535)")?;
    if port == 0 {
        return Err("has no valid port (1 to 65535)");
    }
    Ok((host.to_owned(), port))
}

/// `[homepage]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomepageSettings {
    /// The category of `GET /`; the same spellings as `?category=`, normalised at load time to
    /// the snake_case key (`Science-Fiction` becomes `science_fiction`).
    pub category: String,
    /// How many books to ask for when the request has no `max_results` (1 to 50).
    pub max_results: u32,
    /// The user id sent when the request has neither `?user_id=` nor a valid cookie.
    pub user_id: i32,
}

impl Default for HomepageSettings {
    fn default() -> Self {
        HomepageSettings {
            category: BookCategory::Mystery.key().into(),
            max_results: 3,
            user_id: 1,
        }
    }
}

impl HomepageSettings {
    /// The default category. Valid after [`Settings::load`]; the seed's mystery otherwise.
    pub fn category(&self) -> BookCategory {
        params::parse_category(&self.category).unwrap_or(BookCategory::Mystery)
    }
}

/// Command-line flags that override the configuration.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--port N`
    pub port: Option<u16>,
    /// `--recommendations HOST:PORT`
    pub recommendations: Option<(String, u16)>,
}

impl Settings {
    /// Loads the layered configuration from `sources`, then applies `overrides`, then checks
    /// and normalises the values.
    ///
    /// `RECOMMENDATIONS_HOST` is read from `sources.env` (not from the process), so tests inject
    /// it like any other variable.
    pub fn load(mut sources: Sources, overrides: &Overrides) -> Result<Settings, SettingsError> {
        if let Some(host) = sources
            .env
            .get(LEGACY_HOST_VARIABLE)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            sources
                .legacy
                .insert("recommendations.host".into(), host.to_owned());
        }
        let sources = sources
            .with_override("server.port", overrides.port)
            .with_override(
                "recommendations.host",
                overrides.recommendations.as_ref().map(|(host, _)| host),
            )
            .with_override(
                "recommendations.port",
                overrides.recommendations.as_ref().map(|(_, port)| port),
            );
        let mut settings: Settings = load(ENV_PREFIX, &Settings::default(), &sources)
            .map_err(|error| locate(error, &sources))?;
        settings.validate(&sources)?;
        Ok(settings)
    }

    /// Checks what types alone cannot, and normalises `homepage.category`.
    fn validate(&mut self, sources: &Sources) -> Result<(), SettingsError> {
        let invalid = |key: &'static str, value: &dyn ToString, problem: &str| {
            Err(SettingsError::Invalid {
                key,
                value: value.to_string(),
                problem: format!("{problem} (set by {})", origin_of(key, sources)),
            })
        };

        let home = &mut self.homepage;
        match params::parse_category(&home.category) {
            Ok(category) => home.category = category.key().to_owned(),
            Err(_) => {
                return invalid(
                    "homepage.category",
                    &home.category,
                    &format!(
                        "unknown category; valid values: {}",
                        params::category_keys()
                    ),
                );
            }
        }
        if !MAX_RESULTS_RANGE.contains(&home.max_results) {
            return invalid(
                "homepage.max_results",
                &home.max_results,
                &format!(
                    "must be between {} and {}",
                    MAX_RESULTS_RANGE.start(),
                    MAX_RESULTS_RANGE.end()
                ),
            );
        }
        if home.user_id < 1 {
            return invalid("homepage.user_id", &home.user_id, "must be at least 1");
        }

        let rec = &self.recommendations;
        if let Some(problem) = host_problem(&rec.host) {
            return invalid("recommendations.host", &rec.host, problem);
        }
        if rec.port == 0 {
            return invalid(
                "recommendations.port",
                &rec.port,
                "must be between 1 and 65535",
            );
        }
        if rec.uri().parse::<tonic::transport::Uri>().is_err() {
            return invalid(
                "recommendations.host",
                &rec.host,
                "is not a valid host name or IP address",
            );
        }
        if rec.timeout_ms == 0 {
            return invalid("recommendations.timeout_ms", &0, "must be at least 1");
        }
        for (key, value) in [
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
        ] {
            if value == 0 {
                return invalid(key, &value, "must be at least 1");
            }
        }
        if self.server.max_connections == 0 {
            return invalid("server.max_connections", &0, "must be at least 1");
        }
        for entry in rec.address_entries() {
            let problem = split_host_port(entry).err().or_else(|| {
                split_host_port(entry)
                    .ok()
                    .and_then(|(h, _)| host_problem(&h))
            });
            if let Some(problem) = problem {
                return invalid(
                    "recommendations.addresses",
                    &rec.addresses,
                    &format!("entry {entry:?} {problem}"),
                );
            }
        }
        let tls = &rec.tls;
        if tls.cert_path.is_some() != tls.key_path.is_some() {
            let (key, path) = match (&tls.cert_path, &tls.key_path) {
                (Some(path), _) => ("recommendations.tls.cert_path", path),
                (_, Some(path)) => ("recommendations.tls.key_path", path),
                _ => unreachable!("one of them is set"),
            };
            return invalid(
                key,
                &path.display(),
                "recommendations.tls.cert_path and key_path go together",
            );
        }
        if tls.ca_path.is_none() && (tls.cert_path.is_some() || tls.server_name.is_some()) {
            return invalid(
                "recommendations.tls.ca_path",
                &"",
                "must be set to use TLS (the CA that signed Recommendations' certificate)",
            );
        }
        if tls.ca_path.is_some() {
            let name = rec.tls_server_name();
            if name.parse::<std::net::IpAddr>().is_ok() && tls.server_name.is_none() {
                return invalid(
                    "recommendations.tls.server_name",
                    &"",
                    "must be set when recommendations.host is an IP address: the name in \
                     Recommendations' certificate",
                );
            }
        }
        if rec.resolve_interval_ms < 100 {
            return invalid(
                "recommendations.resolve_interval_ms",
                &rec.resolve_interval_ms,
                "must be at least 100",
            );
        }
        if rec.keepalive_ms < 1_000 {
            // TCP keepalive counts whole seconds.
            return invalid(
                "recommendations.keepalive_ms",
                &rec.keepalive_ms,
                "must be at least 1000",
            );
        }
        if rec.connect_timeout_ms == 0 {
            return invalid(
                "recommendations.connect_timeout_ms",
                &0,
                "must be at least 1",
            );
        }
        if rec.retry_after_secs == 0 {
            return invalid("recommendations.retry_after_secs", &0, "must be at least 1");
        }
        if self.server.host.trim().is_empty() {
            return invalid("server.host", &self.server.host, "must name an address");
        }
        Ok(())
    }

    /// `host:port` to bind.
    pub fn bind_address(&self) -> String {
        if self.server.host.contains(':') && !self.server.host.starts_with('[') {
            format!("[{}]:{}", self.server.host, self.server.port)
        } else {
            format!("{}:{}", self.server.host, self.server.port)
        }
    }

    /// The grace period for in-flight requests at shutdown.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.server.shutdown_timeout_ms)
    }

    /// The server's limits on slow or idle clients.
    pub fn fuse(&self) -> salvo::fuse::FuseConfig {
        salvo::fuse::FuseConfig::default()
            .with_http1_header_timeout(Duration::from_millis(self.server.header_read_timeout_ms))
            .with_connection_idle_timeout(Duration::from_millis(self.server.idle_timeout_ms))
            .with_write_stall_timeout(Duration::from_millis(self.server.idle_timeout_ms))
            .with_request_body_timeout(Duration::from_millis(self.server.header_read_timeout_ms))
    }
}

/// Why `host` cannot be used as `recommendations.host`, if it cannot.
fn host_problem(host: &str) -> Option<&'static str> {
    if host.trim().is_empty() {
        Some("must name a host")
    } else if host.contains("://") {
        Some("must be a host name or IP address, without a scheme")
    } else if host.contains(':') && host.parse::<Ipv6Addr>().is_err() {
        Some("must be a host name or IP address without a port; set recommendations.port")
    } else if host.contains(['/', ' ', '@', '?', '#']) {
        Some("is not a valid host name or IP address")
    } else {
        None
    }
}

/// Which layer set `key`: the names an operator can act on (a flag, a variable, a file).
fn origin_of(key: &str, sources: &Sources) -> String {
    if sources.overrides.iter().any(|(k, _)| k == key) {
        return "a command-line flag".into();
    }
    let variable = format!("{ENV_PREFIX}__{}", key.replace('.', "__"));
    if let Some((name, _)) = sources
        .env
        .iter()
        .find(|(name, value)| name.eq_ignore_ascii_case(&variable) && !value.is_empty())
    {
        return format!("the environment variable {name}");
    }
    if sources.legacy.contains_key(key) {
        return format!("the environment variable {LEGACY_HOST_VARIABLE}");
    }
    if let Some(file) = &sources.file
        && file_sets(file, key)
    {
        return format!("the file {}", file.display());
    }
    "the built-in default".into()
}

/// Names the layer in a `config` crate error that lacks it (the crate leaves it out for a
/// number out of range and for an unknown key), or that only says "the environment".
fn locate(error: SettingsError, sources: &Sources) -> SettingsError {
    let vague = |origin: &Option<String>| origin.as_deref().is_none_or(|o| o == "the environment");
    match error {
        SettingsError::Config(ConfigError::Type {
            origin,
            unexpected,
            expected,
            key: Some(key),
        }) if vague(&origin) => SettingsError::Config(ConfigError::Type {
            origin: Some(origin_of(&key, sources)),
            unexpected,
            expected,
            key: Some(key),
        }),
        SettingsError::Config(ConfigError::Message(message))
            if message.starts_with("unknown field") =>
        {
            locate(
                SettingsError::Config(ConfigError::At {
                    error: Box::new(ConfigError::Message(message)),
                    origin: None,
                    key: None,
                }),
                sources,
            )
        }
        SettingsError::Config(ConfigError::At { error, origin, key }) if vague(&origin) => {
            // serde's message for an unknown key: "unknown field `prot`, expected one of …".
            let field = error
                .to_string()
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(field, _)| field.to_owned());
            let full_key = match (&key, field) {
                (Some(section), Some(field)) => Some(format!("{section}.{field}")),
                (None, Some(field)) => Some(field),
                (Some(key), None) => Some(key.clone()),
                (None, None) => None,
            };
            let origin = full_key.map(|k| origin_of(&k, sources)).or(origin);
            SettingsError::Config(ConfigError::At { error, origin, key })
        }
        other => other,
    }
}

/// Whether the TOML file sets `key` (best effort: only used to word an error message).
fn file_sets(file: &Path, key: &str) -> bool {
    config::Config::builder()
        .add_source(config::File::from(file).format(config::FileFormat::Toml))
        .build()
        .is_ok_and(|c| c.get::<config::Value>(key).is_ok())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load_with(
        file: Option<&str>,
        vars: &[(&str, &str)],
        overrides: Overrides,
    ) -> Result<Settings, SettingsError> {
        let dir = tempfile::tempdir().unwrap();
        let file = file.map(|text| {
            let path = dir.path().join("marketplace.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let sources = Sources {
            file,
            env: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Sources::default()
        };
        Settings::load(sources, &overrides)
    }

    fn error(file: Option<&str>, vars: &[(&str, &str)]) -> String {
        load_with(file, vars, Overrides::default())
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn defaults_are_the_seeds_values() {
        let s = load_with(None, &[], Overrides::default()).unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.bind_address(), "0.0.0.0:5001");
        assert_eq!(s.recommendations.uri(), "http://localhost:50051");
        assert_eq!(s.recommendations.timeout(), Duration::from_secs(1));
        assert_eq!(s.recommendations.connect_timeout_ms, 500);
        assert_eq!(s.homepage.category(), BookCategory::Mystery);
        assert_eq!((s.homepage.max_results, s.homepage.user_id), (3, 1));
    }

    #[test]
    fn the_file_beats_the_defaults() {
        let file = "[server]\nport = 6000\n[recommendations]\nhost = \"from-file\"\ntimeout_ms = 250\n[homepage]\ncategory = \"self_help\"\nmax_results = 5\nuser_id = 9\n";
        let s = load_with(Some(file), &[], Overrides::default()).unwrap();
        assert_eq!(s.server.port, 6000);
        assert_eq!(s.recommendations.host, "from-file");
        assert_eq!(s.recommendations.timeout_ms, 250);
        assert_eq!(s.homepage.category(), BookCategory::SelfHelp);
        assert_eq!((s.homepage.max_results, s.homepage.user_id), (5, 9));
        assert_eq!(
            s.recommendations.port, 50051,
            "keys the file leaves out keep their defaults"
        );
    }

    #[test]
    fn the_legacy_variable_beats_the_file() {
        let file = "[recommendations]\nhost = \"from-file\"\n";
        let s = load_with(
            Some(file),
            &[("RECOMMENDATIONS_HOST", "legacy")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.recommendations.host, "legacy");
    }

    #[test]
    fn an_empty_legacy_variable_is_ignored() {
        let s = load_with(None, &[("RECOMMENDATIONS_HOST", " ")], Overrides::default()).unwrap();
        assert_eq!(s.recommendations.host, "localhost");
    }

    #[test]
    fn prefixed_variables_beat_the_legacy_variable_and_the_file() {
        let file = "[server]\nport = 6000\n[recommendations]\nhost = \"from-file\"\n";
        let vars = [
            ("RECOMMENDATIONS_HOST", "legacy"),
            ("MARKETPLACE__RECOMMENDATIONS__HOST", "from-env"),
            ("MARKETPLACE__RECOMMENDATIONS__PORT", "6061"),
            ("MARKETPLACE__SERVER__PORT", "7000"),
            ("MARKETPLACE__HOMEPAGE__CATEGORY", "science-fiction"),
            ("MARKETPLACE__HOMEPAGE__MAX_RESULTS", "7"),
            ("MARKETPLACE__RECOMMENDATIONS__TIMEOUT_MS", "300"),
        ];
        let s = load_with(Some(file), &vars, Overrides::default()).unwrap();
        assert_eq!(s.recommendations.host, "from-env");
        assert_eq!(s.recommendations.port, 6061);
        assert_eq!(s.server.port, 7000);
        assert_eq!(s.homepage.category, "science_fiction");
        assert_eq!(s.homepage.max_results, 7);
        assert_eq!(s.recommendations.timeout_ms, 300);
    }

    #[test]
    fn command_line_flags_beat_every_other_layer() {
        let file = "[server]\nport = 6000\n";
        let vars = [
            ("RECOMMENDATIONS_HOST", "legacy"),
            ("MARKETPLACE__RECOMMENDATIONS__HOST", "from-env"),
            ("MARKETPLACE__SERVER__PORT", "7000"),
        ];
        let flags = Overrides {
            port: Some(8000),
            recommendations: Some(("from-flag".into(), 9000)),
        };
        let s = load_with(Some(file), &vars, flags).unwrap();
        assert_eq!(s.server.port, 8000);
        assert_eq!(s.recommendations.host, "from-flag");
        assert_eq!(s.recommendations.port, 9000);
    }

    #[test]
    fn the_home_category_takes_the_query_spellings_and_is_normalised() {
        for spelling in ["Self-Help", "SELF_HELP", "self-help"] {
            let s = load_with(
                None,
                &[("MARKETPLACE__HOMEPAGE__CATEGORY", spelling)],
                Overrides::default(),
            )
            .unwrap();
            assert_eq!(s.homepage.category, "self_help", "{spelling}");
        }
    }

    #[test]
    fn kubernetes_service_variables_never_break_start_up() {
        let vars = [
            ("MARKETPLACE_PORT", "tcp://10.0.0.9:5001"),
            ("MARKETPLACE_PORT_5001_TCP", "tcp://10.0.0.9:5001"),
            ("MARKETPLACE_SERVICE_HOST", "10.0.0.9"),
            ("MARKETPLACE_SERVICE_PORT", "5001"),
            ("RECOMMENDATIONS_PORT", "tcp://10.0.0.7:50051"),
            ("RECOMMENDATIONS_SERVICE_PORT", "50051"),
            ("MARKETPLACE_CONFIG", ""),
        ];
        let s = load_with(None, &vars, Overrides::default()).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn an_empty_variable_is_ignored() {
        let s = load_with(
            None,
            &[("MARKETPLACE__SERVER__PORT", "")],
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(s.server.port, 5001);
    }

    #[test]
    fn an_unknown_category_names_the_key_the_value_the_variable_and_the_valid_values() {
        let err = error(None, &[("MARKETPLACE__HOMEPAGE__CATEGORY", "fantasy")]);
        for part in [
            "homepage.category",
            "fantasy",
            "MARKETPLACE__HOMEPAGE__CATEGORY",
            "mystery, science_fiction, self_help",
        ] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
    }

    #[test]
    fn a_bad_value_in_the_file_names_the_file() {
        let err = error(Some("[homepage]\ncategory = \"poetry\"\n"), &[]);
        assert!(
            err.contains("homepage.category")
                && err.contains("poetry")
                && err.contains("marketplace.toml"),
            "{err}"
        );
        let err = error(Some("[homepage]\nmax_results = 0\n"), &[]);
        assert!(
            err.contains("homepage.max_results") && err.contains("marketplace.toml"),
            "{err}"
        );
    }

    #[test]
    fn an_out_of_range_port_names_the_key_the_value_and_the_source() {
        let err = error(None, &[("MARKETPLACE__SERVER__PORT", "70000")]);
        assert!(
            err.contains("server.port")
                && err.contains("70000")
                && err.contains("MARKETPLACE__SERVER__PORT"),
            "{err}"
        );
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__PORT", "0")]);
        assert!(
            err.contains("recommendations.port")
                && err.contains("MARKETPLACE__RECOMMENDATIONS__PORT"),
            "{err}"
        );
    }

    #[test]
    fn an_unparsable_number_names_the_key_the_value_and_the_source() {
        let err = error(
            None,
            &[("MARKETPLACE__RECOMMENDATIONS__TIMEOUT_MS", "soon")],
        );
        assert!(
            err.contains("recommendations.timeout_ms")
                && err.contains("soon")
                && err.contains("MARKETPLACE__RECOMMENDATIONS__TIMEOUT_MS"),
            "{err}"
        );
        let err = error(Some("[homepage]\nmax_results = \"many\"\n"), &[]);
        assert!(
            err.contains("homepage.max_results")
                && err.contains("many")
                && err.contains("marketplace.toml"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_not_silently_ignored() {
        let err = error(Some("[server]\nprot = 1\n"), &[]);
        assert!(
            err.contains("prot") && err.contains("marketplace.toml"),
            "{err}"
        );
        let err = error(Some("[serverr]\nport = 1\n"), &[]);
        assert!(
            err.contains("serverr") && err.contains("marketplace.toml"),
            "{err}"
        );
        let err = error(None, &[("MARKETPLACE__HOMEPAGE__CATEGROY", "mystery")]);
        assert!(
            err.contains("categroy") && err.contains("MARKETPLACE__HOMEPAGE__CATEGROY"),
            "{err}"
        );
    }

    #[test]
    fn a_host_with_a_port_or_a_scheme_is_refused_with_a_hint() {
        let err = error(None, &[("RECOMMENDATIONS_HOST", "recommendations:50051")]);
        assert!(
            err.contains("recommendations.host")
                && err.contains("RECOMMENDATIONS_HOST")
                && err.contains("recommendations.port"),
            "{err}"
        );
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__HOST", "http://x")]);
        assert!(err.contains("scheme"), "{err}");
    }

    #[test]
    fn zero_timeouts_and_user_ids_are_refused() {
        for (var, key) in [
            (
                "MARKETPLACE__RECOMMENDATIONS__TIMEOUT_MS",
                "recommendations.timeout_ms",
            ),
            (
                "MARKETPLACE__RECOMMENDATIONS__CONNECT_TIMEOUT_MS",
                "recommendations.connect_timeout_ms",
            ),
            (
                "MARKETPLACE__RECOMMENDATIONS__RETRY_AFTER_SECS",
                "recommendations.retry_after_secs",
            ),
            (
                "MARKETPLACE__RECOMMENDATIONS__KEEPALIVE_MS",
                "recommendations.keepalive_ms",
            ),
            ("MARKETPLACE__HOMEPAGE__USER_ID", "homepage.user_id"),
        ] {
            let err = error(None, &[(var, "0")]);
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn keepalive_under_a_second_is_refused() {
        // TCP keepalive counts whole seconds; 999 would silently become something else.
        let err = error(
            None,
            &[("MARKETPLACE__RECOMMENDATIONS__KEEPALIVE_MS", "999")],
        );
        assert!(
            err.contains("recommendations.keepalive_ms") && err.contains("999"),
            "{err}"
        );
    }

    #[test]
    fn a_named_config_file_that_does_not_exist_is_an_error() {
        let sources = Sources {
            file: Some("/nonexistent/marketplace.toml".into()),
            ..Sources::default()
        };
        let err = Settings::load(sources, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/marketplace.toml"), "{err}");
    }

    /// Every dotted key of the settings, from the serialized defaults.
    fn all_keys() -> Vec<(String, bool)> {
        let value = serde_json::to_value(Settings::default()).unwrap();
        let mut keys = Vec::new();
        leaf_keys("", &value, &mut keys);
        assert!(keys.len() >= 11, "{keys:?}");
        keys
    }

    /// Dotted keys of every leaf, with whether the default is unset (`None`).
    fn leaf_keys(prefix: &str, value: &serde_json::Value, keys: &mut Vec<(String, bool)>) {
        for (name, child) in value.as_object().unwrap() {
            let key = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            match child {
                serde_json::Value::Object(_) => leaf_keys(&key, child, keys),
                other => keys.push((key, other.is_null())),
            }
        }
    }

    #[test]
    fn the_example_file_sets_every_key_to_its_default() {
        let example = include_str!("../marketplace.example.toml");
        let s = load_with(Some(example), &[], Overrides::default()).unwrap();
        assert_eq!(s, Settings::default());
        let parsed = config::Config::builder()
            .add_source(config::File::from_str(example, config::FileFormat::Toml))
            .build()
            .unwrap();
        for (key, unset) in all_keys() {
            if unset {
                // Unset by default: shown commented out.
                let name = key.rsplit('.').next().unwrap();
                assert!(
                    example
                        .lines()
                        .any(|l| l.trim_start().starts_with(&format!("# {name} ="))),
                    "{key} missing from the example (as a comment)"
                );
            } else {
                assert!(
                    parsed.get::<config::Value>(&key).is_ok(),
                    "{key} missing from the example"
                );
            }
        }
    }

    #[test]
    fn the_configuration_reference_documents_every_key_and_variable() {
        let docs = include_str!("../../docs/configuration.md");
        let marketplace = &docs[docs.find("## Marketplace").unwrap()..];
        for (key, _) in all_keys() {
            let variable = format!("MARKETPLACE__{}", key.replace('.', "__").to_uppercase());
            assert!(
                marketplace.contains(&format!("`{key}`")),
                "{key} undocumented"
            );
            assert!(marketplace.contains(&variable), "{variable} undocumented");
        }
    }

    #[test]
    fn ipv6_addresses_are_bracketed() {
        let mut s = Settings::default();
        s.server.host = "::".into();
        s.recommendations.host = "::1".into();
        assert_eq!(s.bind_address(), "[::]:5001");
        assert_eq!(s.recommendations.uri(), "http://[::1]:50051");
        let mut sources = Sources::default();
        sources
            .overrides
            .push(("recommendations.host".into(), "::1".into()));
        assert!(s.validate(&sources).is_ok());
    }
}
