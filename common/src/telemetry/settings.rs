//! The `OTEL_*` variables: whether traces are on, where spans go, how they are sampled and
//! queued. Every value that cannot be used is an error naming the variable and the value.

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

/// How spans leave the process (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP over gRPC (`grpc`), usually port 4317.
    Grpc,
    /// OTLP over HTTP with protobuf bodies (`http/protobuf`, the specification's default),
    /// usually port 4318.
    HttpProtobuf,
}

impl std::fmt::Display for Protocol {
    /// As `OTEL_EXPORTER_OTLP_PROTOCOL` spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Where and how to export spans, when traces are on.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The URL spans are sent to: for HTTP the full URL (`…/v1/traces`).
    pub endpoint: String,
    /// gRPC or HTTP.
    pub protocol: Protocol,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which traces are recorded.
    pub sampler: Sampler,
    /// How long one export may take before it counts as failed (`OTEL_EXPORTER_OTLP_TIMEOUT`).
    pub export_timeout: Duration,
    /// How often queued spans are exported (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// Spans queued for export at most; more are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
}

/// Why traces could not be set up: each names the variable and its value.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A variable has a value we cannot use.
    #[error("{variable}={value:?} is not valid: {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// Its value.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// The exporter could not be made for this endpoint.
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
}

fn invalid(variable: &'static str, value: &str, expected: &'static str) -> TelemetryError {
    TelemetryError::Invalid {
        variable,
        value: value.to_owned(),
        expected,
    }
}

/// Defaults of the variables we parse ourselves (the specification's).
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_SCHEDULE_DELAY: Duration = Duration::from_secs(5);
const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

impl TraceSettings {
    /// Reads the `OTEL_*` variables; `None` when traces are off. `service` is the default
    /// `service.name`.
    pub fn from_env(service: &str) -> Result<Option<TraceSettings>, TelemetryError> {
        Self::from_vars(service, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with the variables from `var` (empty counts as unset, as
    /// the specification says).
    pub fn from_vars(
        service: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<TraceSettings>, TelemetryError> {
        let var = |name: &str| var(name).filter(|value| !value.trim().is_empty());
        // OTEL_SDK_DISABLED=true wins over everything else.
        if let Some(value) = var("OTEL_SDK_DISABLED") {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => return Err(invalid("OTEL_SDK_DISABLED", &value, "true or false")),
            }
        }
        if let Some(value) = var("OTEL_TRACES_EXPORTER") {
            match value.trim() {
                "none" => return Ok(None),
                "otlp" => {}
                _ => return Err(invalid("OTEL_TRACES_EXPORTER", &value, "otlp or none")),
            }
        }
        let protocol = match [
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ]
        .into_iter()
        .find_map(|name| var(name).map(|value| (name, value)))
        {
            None => Protocol::HttpProtobuf,
            Some((name, value)) => match value.trim() {
                "grpc" => Protocol::Grpc,
                "http/protobuf" => Protocol::HttpProtobuf,
                _ => return Err(invalid_protocol(name, &value)),
            },
        };
        // The exporter would read these itself; without gzip built in, say so rather than
        // send uncompressed spans to a collector that was told otherwise.
        for variable in [
            "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
            "OTEL_EXPORTER_OTLP_COMPRESSION",
        ] {
            if let Some(value) = var(variable).filter(|value| value.trim() != "none") {
                return Err(invalid(
                    variable,
                    &value,
                    "none (compression is not supported)",
                ));
            }
        }
        // The signal's own endpoint is used as it is; the general one is a base URL, to which
        // HTTP adds the signal's path.
        let endpoint = if let Some(url) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            check_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim())?;
            url.trim().to_owned()
        } else if let Some(url) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            check_endpoint("OTEL_EXPORTER_OTLP_ENDPOINT", url.trim())?;
            let base = url.trim().trim_end_matches('/');
            match protocol {
                Protocol::Grpc => base.to_owned(),
                Protocol::HttpProtobuf => format!("{base}/v1/traces"),
            }
        } else {
            return Ok(None);
        };
        Ok(Some(TraceSettings {
            endpoint,
            protocol,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| service.to_owned()),
            sampler: sampler(var("OTEL_TRACES_SAMPLER"), var("OTEL_TRACES_SAMPLER_ARG"))?,
            export_timeout: millis_var(&var, "OTEL_EXPORTER_OTLP_TIMEOUT", DEFAULT_EXPORT_TIMEOUT)?,
            schedule_delay: millis_var(&var, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY)?,
            max_queue_size: match var("OTEL_BSP_MAX_QUEUE_SIZE") {
                None => DEFAULT_MAX_QUEUE_SIZE,
                Some(value) => value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|&size| size > 0)
                    .ok_or_else(|| {
                        invalid("OTEL_BSP_MAX_QUEUE_SIZE", &value, "a whole number above 0")
                    })?,
            },
        }))
    }
}

fn invalid_protocol(variable: &'static str, value: &str) -> TelemetryError {
    invalid(
        variable,
        value,
        "grpc or http/protobuf (http/json is not supported)",
    )
}

/// Plain `http://host:port…`: the exporter here has no TLS (a collector or agent next to the
/// service is the usual set-up).
fn check_endpoint(variable: &'static str, url: &str) -> Result<(), TelemetryError> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        invalid(
            variable,
            url,
            "an http:// URL such as http://localhost:4317 (https is not supported)",
        )
    })?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid(variable, url, "an http:// URL with a host"));
    }
    Ok(())
}

fn millis_var(
    var: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: Duration,
) -> Result<Duration, TelemetryError> {
    match var(variable) {
        None => Ok(default),
        Some(value) => value
            .trim()
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| invalid(variable, &value, "a whole number of milliseconds")),
    }
}

/// `OTEL_TRACES_SAMPLER` and its argument (the ratio, default 1).
fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, TelemetryError> {
    let ratio = || match &arg {
        None => Ok(1.0),
        Some(value) => value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|ratio| (0.0..=1.0).contains(ratio))
            .ok_or_else(|| {
                invalid(
                    "OTEL_TRACES_SAMPLER_ARG",
                    value,
                    "a ratio from 0 to 1, such as 0.25",
                )
            }),
    };
    let Some(name) = name else {
        return Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    };
    let parent_based = |root| Ok(Sampler::ParentBased(Box::new(root)));
    match name.trim() {
        "always_on" => Ok(Sampler::AlwaysOn),
        "always_off" => Ok(Sampler::AlwaysOff),
        "traceidratio" => Ok(Sampler::TraceIdRatioBased(ratio()?)),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        _ => Err(invalid(
            "OTEL_TRACES_SAMPLER",
            &name,
            "always_on, always_off, traceidratio, parentbased_always_on, \
             parentbased_always_off or parentbased_traceidratio",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, TelemetryError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        TraceSettings::from_vars("marketplace", |name| vars.get(name).cloned())
    }

    fn error(vars: &[(&str, &str)]) -> String {
        settings(vars).unwrap_err().to_string()
    }

    #[test]
    fn traces_are_off_without_an_endpoint() {
        assert!(settings(&[]).unwrap().is_none());
        assert!(settings(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        assert!(
            settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn sdk_disabled_wins_and_exporter_none_turns_traces_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")])
                .unwrap()
                .is_none()
        );
        assert!(
            settings(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")])
                .unwrap()
                .is_none()
        );
        assert!(
            settings(&[endpoint, ("OTEL_SDK_DISABLED", "false")])
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn the_general_endpoint_gets_the_signal_path_for_http_only() {
        let grpc = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(grpc.endpoint, "http://jaeger:4317");
        assert_eq!(grpc.protocol, Protocol::Grpc);
        let http = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(http.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(http.protocol, Protocol::HttpProtobuf);
        let own = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/x"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint, "http://jaeger:4318/x");
    }

    #[test]
    fn the_service_name_defaults_to_the_services_and_the_sampler_to_parent_based() {
        let defaults = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
            .unwrap()
            .unwrap();
        assert_eq!(defaults.service_name, "marketplace");
        assert_eq!(
            format!("{:?}", defaults.sampler),
            format!("{:?}", Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        let set = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_SERVICE_NAME", "shop-web"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(set.service_name, "shop-web");
        assert_eq!(
            format!("{:?}", set.sampler),
            format!(
                "{:?}",
                Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(0.25)))
            )
        );
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_value() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        for (vars, variable, value) in [
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
            ),
            (
                vec![endpoint, ("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
                "sometimes",
            ),
            (
                vec![
                    endpoint,
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "1.5",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "collector:4317",
            ),
            (
                vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:4318")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://c:4318",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
                "OTEL_EXPORTER_OTLP_COMPRESSION",
                "gzip",
            ),
            (
                vec![endpoint, ("OTEL_SDK_DISABLED", "yes")],
                "OTEL_SDK_DISABLED",
                "yes",
            ),
            (
                vec![endpoint, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "0",
            ),
            (
                vec![endpoint, ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "10s",
            ),
        ] {
            let message = error(&vars);
            assert!(
                message.contains(variable) && message.contains(&format!("{value:?}")),
                "{message}"
            );
        }
    }
}
