//! The service's configuration: defaults, then an optional TOML file, then
//! `RECOMMENDATIONS__…` variables, then flags (docs/configuration.md). Loading and its errors
//! are [`bookshop_common::settings`]'s; here are the keys and their checks.

use std::{path::PathBuf, time::Duration};

use bookshop_common::settings::{Invalid, Layered, at_least, ensure, millis};
use serde::{Deserialize, Serialize};

use crate::{catalog, selection::Selection, watch::WatchMode};

pub const ENV_PREFIX: &str = "RECOMMENDATIONS";

/// Unknown keys are errors, so a misspelt key is reported instead of ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub catalog: CatalogSettings,
    pub recommend: RecommendSettings,
    pub tls: TlsSettings,
    pub metrics: MetricsSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// A client's shorter `grpc-timeout` wins.
    #[serde(rename = "request_timeout_ms", with = "millis")]
    pub request_timeout: Duration,
    pub concurrency_limit_per_connection: usize,
    #[serde(rename = "shutdown_timeout_ms", with = "millis")]
    pub shutdown_timeout: Duration,
    /// A plaintext listener serving only `grpc.health.v1`, for probes that cannot speak TLS.
    pub health_port: Option<u16>,
    pub max_connections: usize,
    #[serde(rename = "handshake_timeout_ms", with = "millis")]
    pub handshake_timeout: Duration,
    #[serde(rename = "idle_timeout_ms", with = "millis")]
    pub idle_timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "0.0.0.0".into(),
            port: 50051,
            request_timeout: Duration::from_secs(5),
            concurrency_limit_per_connection: 256,
            shutdown_timeout: Duration::from_secs(5),
            health_port: None,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogSettings {
    pub path: PathBuf,
    pub watch: WatchMode,
    #[serde(rename = "debounce_ms", with = "millis")]
    pub debounce: Duration,
    #[serde(rename = "poll_interval_ms", with = "millis")]
    pub poll_interval: Duration,
    /// How long a changed file must stay the same, unless renamed in place or closed by its writer.
    #[serde(rename = "settle_ms", with = "millis")]
    pub settle: Duration,
    pub max_bytes: u64,
}

impl Default for CatalogSettings {
    fn default() -> Self {
        CatalogSettings {
            path: PathBuf::from("catalog.toml"),
            watch: WatchMode::Events,
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_secs(1),
            settle: Duration::from_millis(500),
            max_bytes: catalog::DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendSettings {
    pub selection: Selection,
    /// Books returned when a request leaves `max_results` at 0.
    pub default_max_results: u32,
    pub max_results_cap: u32,
}

impl Default for RecommendSettings {
    fn default() -> Self {
        Self { selection: Selection::Random, default_max_results: 3, max_results_cap: 50 }
    }
}

/// TLS when `cert_path` and `key_path` are set (PEM); client certificates if `client_ca_path` too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub client_ca_path: Option<PathBuf>,
}

impl TlsSettings {
    pub fn enabled(&self) -> bool {
        self.cert_path.is_some()
    }
}

/// Prometheus text at `GET /metrics` on a plaintext listener of its own (on `server.host`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    pub enabled: bool,
    pub port: u16,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings { enabled: true, port: 9464 }
    }
}

impl Layered for Settings {
    const PREFIX: &'static str = ENV_PREFIX;

    fn validate(&self) -> Result<(), Invalid> {
        let (server, tls, ms) = (&self.server, &self.tls, Duration::from_millis);
        let (default, cap) = (self.recommend.default_max_results, self.recommend.max_results_cap);
        ensure(default > 0, "recommend.default_max_results", "must be at least 1")?;
        let problem = "must be at least recommend.default_max_results (and fit an int32)";
        ensure(cap >= default && cap <= i32::MAX as u32, "recommend.max_results_cap", problem)?;
        at_least("catalog.poll_interval_ms", self.catalog.poll_interval, ms(50))?;
        at_least("server.request_timeout_ms", server.request_timeout, ms(1))?;
        at_least("server.handshake_timeout_ms", server.handshake_timeout, ms(1))?;
        // Longer than the 30 s between pings, so a client that answers them never counts as silent.
        at_least("server.idle_timeout_ms", server.idle_timeout, ms(60_000))?;
        ensure(!self.catalog.path.as_os_str().is_empty(), "catalog.path", "must name a file")?;
        ensure(server.max_connections > 0, "server.max_connections", "must be at least 1")?;
        let concurrency = server.concurrency_limit_per_connection;
        ensure(concurrency > 0, "server.concurrency_limit_per_connection", "must be at least 1")?;
        let (cert, key) = (tls.cert_path.is_some(), tls.key_path.is_some());
        ensure(key || !cert, "tls.cert_path", "needs tls.key_path too")?;
        ensure(cert || !key, "tls.key_path", "needs tls.cert_path too")?;
        let problem = "client certificates need TLS: set tls.cert_path and tls.key_path too";
        ensure(tls.enabled() || tls.client_ca_path.is_none(), "tls.client_ca_path", problem)?;
        let health_port = server.port == 0 || server.health_port != Some(server.port);
        ensure(health_port, "server.health_port", "must differ from server.port")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bookshop_common::settings::Sources;
    use bookshop_testing::{assert_mentions, load_settings, settings_error};

    use super::*;

    fn load(file: Option<&str>, vars: &[(&str, &str)], flags: &[(&str, &str)]) -> Settings {
        load_settings(file, vars, flags).unwrap()
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let settings = load(None, &[], &[]);
        assert_eq!(settings, Settings::default());
        assert_eq!(settings.server.port, 50051);
        assert_eq!(settings.catalog.path, PathBuf::from("catalog.toml"));
        assert_eq!(settings.recommend.default_max_results, 3);
        assert_eq!(settings.recommend.max_results_cap, 50);
    }

    #[test]
    fn the_file_beats_defaults_env_beats_the_file_and_flags_beat_env() {
        let file = "[server]\nport = 6000\n[catalog]\npath = \"/from/file.toml\"\nwatch = \"poll\"\n[recommend]\nselection = \"per_user\"\n";
        let from_file = load(Some(file), &[], &[]);
        assert_eq!(from_file.server.port, 6000);
        assert_eq!(from_file.catalog.watch, WatchMode::Poll);
        assert_eq!(from_file.recommend.selection, Selection::PerUser);

        let vars = [
            ("RECOMMENDATIONS__SERVER__PORT", "7000"),
            ("RECOMMENDATIONS__CATALOG__PATH", "/from/env.toml"),
        ];
        let from_env = load(Some(file), &vars, &[]);
        assert_eq!(from_env.server.port, 7000);
        assert_eq!(from_env.catalog.path, PathBuf::from("/from/env.toml"));
        assert_eq!(from_env.catalog.watch, WatchMode::Poll, "untouched keys keep the file's value");

        let flags = [("catalog.path", "/from/flag.toml"), ("server.port", "8000")];
        let from_flags = load(Some(file), &vars, &flags);
        assert_eq!(from_flags.server.port, 8000);
        assert_eq!(from_flags.catalog.path, PathBuf::from("/from/flag.toml"));
    }

    fn error(vars: &[(&str, &str)]) -> String {
        settings_error::<Settings>(None, vars)
    }

    #[test]
    fn a_bad_value_names_the_key_and_the_value() {
        let err = error(&[("RECOMMENDATIONS__SERVER__PORT", "fifty")]);
        assert_mentions(&err, &["server.port", "fifty"]);
        let err = error(&[("RECOMMENDATIONS__CATALOG__WATCH", "sometimes")]);
        assert_mentions(&err, &["catalog.watch", "sometimes"]);
        let err = error(&[("RECOMMENDATIONS__RECOMMEND__MAX_RESULTS_CAP", "2")]);
        assert_mentions(&err, &["recommend.max_results_cap", "2"]);
    }

    #[test]
    fn an_unknown_key_is_an_error_not_silently_ignored() {
        let err = settings_error::<Settings>(Some("[server]\nprot = 1\n"), &[]);
        assert_mentions(&err, &["prot"]);
        assert_mentions(&error(&[("RECOMMENDATIONS__CATALOG__PTAH", "x")]), &["ptah"]);
    }

    #[test]
    fn the_example_file_lists_every_key_with_its_default() {
        let text = include_str!("../recommendations.example.toml");
        let example: toml::Table = text.parse().unwrap();
        let defaults = toml::Table::try_from(Settings::default()).unwrap();
        assert_eq!(example, defaults);
        let mut sources = Sources::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, text).unwrap();
        sources.file = Some(path);
        assert_eq!(
            bookshop_common::settings::load::<Settings>(&sources).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn tls_files_come_in_pairs_and_client_certificates_need_tls() {
        let err = error(&[("RECOMMENDATIONS__TLS__CERT_PATH", "/c.pem")]);
        assert_mentions(&err, &["tls.cert_path", "/c.pem"]);
        let err = error(&[("RECOMMENDATIONS__TLS__CLIENT_CA_PATH", "/ca.pem")]);
        assert_mentions(&err, &["tls.client_ca_path"]);
        let vars = [
            ("RECOMMENDATIONS__TLS__CERT_PATH", "/c.pem"),
            ("RECOMMENDATIONS__TLS__KEY_PATH", "/c.key"),
            ("RECOMMENDATIONS__TLS__CLIENT_CA_PATH", "/ca.pem"),
            ("RECOMMENDATIONS__SERVER__HEALTH_PORT", "50052"),
        ];
        let settings = load(None, &vars, &[]);
        assert!(settings.tls.enabled());
        assert_eq!(settings.server.health_port, Some(50052));
    }
}
