//! The Marketplace's configuration: defaults, an optional TOML file, the tutorial's
//! `RECOMMENDATIONS_HOST`, `MARKETPLACE__…` variables, then flags. Loading and its errors are
//! [`bookshop_common::settings`]'s; here are the keys (docs/configuration.md) and the checks.

use std::{path::PathBuf, time::Duration};

use bookshop_common::net::{HostPort, check_host};
use bookshop_common::settings::{Invalid, Layered, at_least, comma_list, ensure, millis};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{book::MAX_RESULTS, categories::category_key};

pub const ENV_PREFIX: &str = "MARKETPLACE";

/// Unknown keys are errors, so a misspelt key is reported instead of ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub recommendations: RecommendationsSettings,
    pub homepage: HomepageSettings,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    #[serde(rename = "shutdown_timeout_ms", with = "millis")]
    pub shutdown_timeout: Duration,
    #[serde(rename = "header_read_timeout_ms", with = "millis")]
    pub header_read_timeout: Duration,
    #[serde(rename = "idle_timeout_ms", with = "millis")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_event_streams: usize,
    #[serde(rename = "drain_ms", with = "millis")]
    pub drain: Duration,
    pub secure_cookies: SecureCookies,
    #[serde(with = "comma_list")]
    pub trusted_proxies: Vec<IpNet>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecureCookies {
    #[default]
    Auto,
    Always,
    Never,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            host: "0.0.0.0".into(),
            port: 5001,
            shutdown_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_event_streams: 5_000,
            drain: Duration::from_secs(1),
            secure_cookies: SecureCookies::Auto,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecommendationsSettings {
    pub host: String,
    pub port: u16,
    #[serde(rename = "timeout_ms", with = "millis")]
    pub timeout: Duration,
    #[serde(rename = "connect_timeout_ms", with = "millis")]
    pub connect_timeout: Duration,
    pub retry_after_secs: u32,
    #[serde(with = "comma_list")]
    pub addresses: Vec<HostPort>,
    #[serde(rename = "resolve_interval_ms", with = "millis")]
    pub resolve_interval: Duration,
    #[serde(rename = "keepalive_ms", with = "millis")]
    pub keepalive: Duration,
    pub tls: ClientTlsSettings,
}

impl Default for RecommendationsSettings {
    fn default() -> Self {
        RecommendationsSettings {
            host: "localhost".into(),
            port: 50051,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
            retry_after_secs: 5,
            addresses: Vec::new(),
            resolve_interval: Duration::from_secs(5),
            keepalive: Duration::from_secs(20),
            tls: ClientTlsSettings::default(),
        }
    }
}

impl RecommendationsSettings {
    pub fn targets(&self) -> Vec<HostPort> {
        match self.addresses.is_empty() {
            true => vec![HostPort { host: self.host.clone(), port: self.port }],
            false => self.addresses.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientTlsSettings {
    pub ca_path: Option<PathBuf>,
    pub server_name: Option<String>,
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HomepageSettings {
    #[serde(deserialize_with = "home_category")]
    pub category: String,
    pub max_results: u32,
    pub user_id: i32,
    /// Pages show why a catalog save was rejected: for the edit loop, not for a public shop.
    pub show_catalog_errors: bool,
}

impl Default for HomepageSettings {
    fn default() -> Self {
        Self { category: "mystery".into(), max_results: 3, user_id: 1, show_catalog_errors: true }
    }
}

fn home_category<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    let max = bookshop_proto::MAX_CATEGORY_KEY_CHARS;
    let problem = format!(
        "{text:?} cannot be a category key: use a snake_case key of catalog.toml (lower-case \
         letters, digits and `_`, starting with a letter, at most {max} characters), such as \
         mystery"
    );
    category_key(&text).ok_or_else(|| serde::de::Error::custom(problem))
}

impl Layered for Settings {
    const PREFIX: &'static str = ENV_PREFIX;
    /// Its sibling `RECOMMENDATIONS_PORT` is not read: Kubernetes sets it to `tcp://…` in
    /// every pod beside a Service named `recommendations`.
    const ALIASES: &'static [(&'static str, &'static str)] =
        &[("RECOMMENDATIONS_HOST", "recommendations.host")];

    fn validate(&self) -> Result<(), Invalid> {
        let (server, home, rec) = (&self.server, &self.homepage, &self.recommendations);
        let (tls, ms, limit) = (&rec.tls, Duration::from_millis, server.max_connections);
        let range = format!("must be between {} and {}", MAX_RESULTS.start(), MAX_RESULTS.end());
        ensure(MAX_RESULTS.contains(&home.max_results), "homepage.max_results", range)?;
        ensure(home.user_id >= 1, "homepage.user_id", "must be at least 1")?;
        ensure(!server.host.trim().is_empty(), "server.host", "must name an address")?;
        ensure(limit > 0, "server.max_connections", "must be at least 1")?;
        let below = format!(
            "must be below server.max_connections ({limit}), so that pages are still served when every event stream is open"
        );
        ensure(server.max_event_streams < limit, "server.max_event_streams", below)?;
        at_least("server.header_read_timeout_ms", server.header_read_timeout, ms(1))?;
        at_least("server.idle_timeout_ms", server.idle_timeout, ms(1))?;
        check_host(&rec.host).map_err(|problem| {
            let hint = if problem.contains("port") { "; set recommendations.port" } else { "" };
            Invalid { key: "recommendations.host", problem: format!("{problem}{hint}") }
        })?;
        ensure(rec.port > 0, "recommendations.port", "must be between 1 and 65535")?;
        at_least("recommendations.timeout_ms", rec.timeout, ms(1))?;
        at_least("recommendations.connect_timeout_ms", rec.connect_timeout, ms(1))?;
        at_least("recommendations.resolve_interval_ms", rec.resolve_interval, ms(100))?;
        // TCP keepalive counts whole seconds.
        at_least("recommendations.keepalive_ms", rec.keepalive, ms(1000))?;
        ensure(rec.retry_after_secs > 0, "recommendations.retry_after_secs", "must be at least 1")?;
        let (cert, key) = ("recommendations.tls.cert_path", "recommendations.tls.key_path");
        let (has_cert, has_key) = (tls.cert_path.is_some(), tls.key_path.is_some());
        ensure(has_key || !has_cert, cert, format!("needs {key} too"))?;
        ensure(has_cert || !has_key, key, format!("needs {cert} too"))?;
        let needs_ca = has_cert || tls.server_name.is_some();
        let ca = "must be set to use TLS (the CA that signed Recommendations' certificate)";
        ensure(tls.ca_path.is_some() || !needs_ca, "recommendations.tls.ca_path", ca)?;
        let needs_name = tls.ca_path.is_some() && rec.host.parse::<std::net::IpAddr>().is_ok();
        let name = "must be set when recommendations.host is an IP address: the name in Recommendations' certificate";
        ensure(tls.server_name.is_some() || !needs_name, "recommendations.tls.server_name", name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use bookshop_common::settings::env_variable;
    use bookshop_testing::{assert_mentions, load_settings, settings_error};

    use super::*;

    /// The settings from a file and variables, which must load.
    fn loaded(file: Option<&str>, vars: &[(&str, &str)]) -> Settings {
        load_settings(file, vars, &[]).unwrap()
    }

    fn error(file: Option<&str>, vars: &[(&str, &str)]) -> String {
        settings_error::<Settings>(file, vars)
    }

    #[test]
    fn defaults_are_the_seeds_values() {
        let s = loaded(None, &[]);
        assert_eq!(s, Settings::default());
        assert_eq!((s.server.host.as_str(), s.server.port), ("0.0.0.0", 5001));
        let rec = &s.recommendations;
        assert_eq!((rec.host.as_str(), rec.port), ("localhost", 50051));
        assert_eq!(rec.timeout, Duration::from_secs(1));
        assert_eq!(s.homepage.category, "mystery");
        assert_eq!((s.homepage.max_results, s.homepage.user_id), (3, 1));
    }

    #[test]
    fn every_layer_beats_the_one_before() {
        let file = "[server]\nport = 6000\n[recommendations]\nhost = \"from-file\"\ntimeout_ms = 250\n[homepage]\ncategory = \"self_help\"\n";
        let s = loaded(Some(file), &[]);
        assert_eq!(s.server.port, 6000);
        assert_eq!(s.recommendations.host, "from-file");
        assert_eq!(s.recommendations.timeout, Duration::from_millis(250));
        assert_eq!(s.homepage.category, "self_help");
        assert_eq!(s.recommendations.port, 50051, "keys left out keep their defaults");

        let legacy = [("RECOMMENDATIONS_HOST", "legacy")];
        let s = loaded(Some(file), &legacy);
        assert_eq!(s.recommendations.host, "legacy");

        let vars = [
            ("RECOMMENDATIONS_HOST", "legacy"),
            ("MARKETPLACE__RECOMMENDATIONS__HOST", "from-env"),
            ("MARKETPLACE__SERVER__PORT", "7000"),
            ("MARKETPLACE__HOMEPAGE__CATEGORY", "science-fiction"),
        ];
        let s = loaded(Some(file), &vars);
        assert_eq!(s.recommendations.host, "from-env");
        assert_eq!(s.server.port, 7000);
        assert_eq!(s.homepage.category, "science_fiction");

        let flags = [
            ("server.port", "8000"),
            ("recommendations.host", "from-flag"),
            ("recommendations.port", "9000"),
        ];
        let s = load_settings::<Settings>(Some(file), &vars, &flags).unwrap();
        assert_eq!(s.server.port, 8000);
        assert_eq!((s.recommendations.host.as_str(), s.recommendations.port), ("from-flag", 9000));
    }

    #[test]
    fn an_empty_legacy_variable_is_ignored() {
        let s = loaded(None, &[("RECOMMENDATIONS_HOST", " ")]);
        assert_eq!(s.recommendations.host, "localhost");
    }

    #[test]
    fn the_home_category_takes_the_query_spellings() {
        for spelling in ["Self-Help", "SELF_HELP", "self-help"] {
            let vars = [("MARKETPLACE__HOMEPAGE__CATEGORY", spelling)];
            let s = loaded(None, &vars);
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
        let s = loaded(None, &vars);
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn a_malformed_category_names_the_key_the_value_the_variable_and_the_rule() {
        let err = error(None, &[("MARKETPLACE__HOMEPAGE__CATEGORY", "fan tasy")]);
        let parts =
            ["homepage.category", "fan tasy", "MARKETPLACE__HOMEPAGE__CATEGORY", "snake_case"];
        assert_mentions(&err, &parts);
        let err = error(Some("[homepage]\ncategory = \"<poetry>\"\n"), &[]);
        assert_mentions(&err, &["<poetry>", "settings.toml"]);
    }

    #[test]
    fn any_well_formed_key_can_be_the_home_category() {
        let s = loaded(None, &[("MARKETPLACE__HOMEPAGE__CATEGORY", "Poetry")]);
        assert_eq!(s.homepage.category, "poetry");
    }

    #[test]
    fn event_streams_stay_below_the_connections() {
        let vars = [
            ("MARKETPLACE__SERVER__MAX_CONNECTIONS", "100"),
            ("MARKETPLACE__SERVER__MAX_EVENT_STREAMS", "100"),
        ];
        let err = error(None, &vars);
        assert_mentions(&err, &["server.max_event_streams", "100", "max_connections"]);
    }

    #[test]
    fn addresses_are_parsed_once_from_a_list_or_a_string() {
        let vars = [("MARKETPLACE__RECOMMENDATIONS__ADDRESSES", "a:1, [::1]:2,")];
        let s = loaded(None, &vars);
        let targets: Vec<String> =
            s.recommendations.targets().iter().map(ToString::to_string).collect();
        assert_eq!(targets, ["a:1", "[::1]:2"]);
        let file = "[recommendations]\naddresses = [\"b:3\"]\n";
        let s = loaded(Some(file), &[]);
        assert_eq!(s.recommendations.targets()[0].to_string(), "b:3");
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__ADDRESSES", "a:1,b")]);
        assert_mentions(&err, &["recommendations.addresses", "\"b\" must be host:port"]);
    }

    #[test]
    fn a_host_with_a_port_or_a_scheme_is_refused_with_a_hint() {
        let err = error(None, &[("RECOMMENDATIONS_HOST", "recommendations:50051")]);
        let parts = ["recommendations.host", "RECOMMENDATIONS_HOST", "recommendations.port"];
        assert_mentions(&err, &parts);
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__HOST", "http://x")]);
        assert_mentions(&err, &["scheme"]);
    }

    #[test]
    fn zero_timeouts_ports_and_user_ids_are_refused() {
        for key in [
            "recommendations.timeout_ms",
            "recommendations.connect_timeout_ms",
            "recommendations.retry_after_secs",
            "recommendations.keepalive_ms",
            "recommendations.port",
            "homepage.user_id",
            "homepage.max_results",
        ] {
            let variable = env_variable(ENV_PREFIX, key);
            assert_mentions(&error(None, &[(&variable, "0")]), &[key, &variable]);
        }
        // TCP keepalive counts whole seconds; 999 would silently become something else.
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__KEEPALIVE_MS", "999")]);
        assert_mentions(&err, &["recommendations.keepalive_ms", "999"]);
    }

    #[test]
    fn tls_files_come_in_pairs_and_need_a_ca() {
        let err = error(None, &[("MARKETPLACE__RECOMMENDATIONS__TLS__CERT_PATH", "/c.pem")]);
        assert_mentions(&err, &["recommendations.tls.cert_path"]);
        let vars = [
            ("MARKETPLACE__RECOMMENDATIONS__TLS__CERT_PATH", "/c.pem"),
            ("MARKETPLACE__RECOMMENDATIONS__TLS__KEY_PATH", "/c.key"),
        ];
        assert_mentions(&error(None, &vars), &["recommendations.tls.ca_path"]);
        let vars = [
            ("MARKETPLACE__RECOMMENDATIONS__TLS__CA_PATH", "/ca.pem"),
            ("MARKETPLACE__RECOMMENDATIONS__HOST", "10.0.0.1"),
        ];
        assert_mentions(&error(None, &vars), &["recommendations.tls.server_name"]);
    }

    /// Every dotted key of the settings, from the serialized defaults, with whether it is unset
    /// by default.
    fn all_keys() -> Vec<(String, bool)> {
        fn walk(prefix: &str, value: &toml::Value, keys: &mut Vec<(String, bool)>) {
            for (name, child) in value.as_table().unwrap() {
                let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
                match child {
                    toml::Value::Table(_) => walk(&key, child, keys),
                    _ => keys.push((key, false)),
                }
            }
        }
        let mut keys = Vec::new();
        walk("", &toml::Value::try_from(Settings::default()).unwrap(), &mut keys);
        // Options unset by default are not serialized; the TLS ones are the only ones.
        for name in ["ca_path", "server_name", "cert_path", "key_path"] {
            keys.push((format!("recommendations.tls.{name}"), true));
        }
        assert!(keys.len() >= 20, "{keys:?}");
        keys
    }

    #[test]
    fn the_example_file_sets_every_key_to_its_default() {
        let example = include_str!("../marketplace.example.toml");
        let s = loaded(Some(example), &[]);
        assert_eq!(s, Settings::default());
        let parsed: toml::Table = example.parse().unwrap();
        for (key, unset) in all_keys() {
            let name = key.rsplit('.').next().unwrap();
            let present = if unset {
                // Unset by default: shown commented out.
                example.lines().any(|l| l.trim_start().starts_with(&format!("# {name} =")))
            } else {
                let mut value = Some(&parsed);
                let parts: Vec<&str> = key.split('.').collect();
                for part in &parts[..parts.len() - 1] {
                    value = value.and_then(|t| t.get(*part)).and_then(toml::Value::as_table);
                }
                value.is_some_and(|t| t.contains_key(name))
            };
            assert!(present, "{key} missing from the example");
        }
    }

    #[test]
    fn the_configuration_reference_documents_every_key_and_variable() {
        let docs = include_str!("../../docs/configuration.md");
        let marketplace = &docs[docs.find("## Marketplace").unwrap()..];
        for (key, _) in all_keys() {
            let variable = env_variable(ENV_PREFIX, &key);
            assert!(marketplace.contains(&format!("`{key}`")), "{key} undocumented");
            assert!(marketplace.contains(&variable), "{variable} undocumented");
        }
    }
}
