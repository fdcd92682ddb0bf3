//! The `OTEL_*` variables the SDK would take silently wrong (it falls back, or misbehaves, and
//! says nothing), or that this build cannot honour: each is an error naming it and its value.
//! Everything else the SDK and the exporter read for themselves.

use std::{fmt, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{variable}={value:?} is not valid: {expected}")]
    Invalid { variable: &'static str, value: String, expected: &'static str },
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Grpc,
    HttpProtobuf,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Where spans go and how they queue, as the variables say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exporter {
    /// For HTTP the full URL (`…/v1/traces`), as the exporter would make it.
    pub(crate) endpoint: String,
    pub(crate) protocol: Protocol,
    pub(crate) max_queue_size: usize,
    /// `OTEL_BSP_SCHEDULE_DELAY` and `OTEL_EXPORTER_OTLP_TIMEOUT`, when set.
    pub(crate) schedule_delay: Option<Duration>,
    pub(crate) timeout: Option<Duration>,
}

const SAMPLERS: [&str; 6] = [
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
];

/// The exporter the variables `var` gives (empty ones count as unset), or `None` when they
/// leave traces off.
pub(super) fn exporter(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Exporter>, TelemetryError> {
    let invalid = |variable, value: &str, expected| TelemetryError::Invalid {
        variable,
        value: value.to_owned(),
        expected,
    };
    let first =
        |names: [&'static str; 2]| names.into_iter().find_map(|name| Some((name, var(name)?)));
    match var("OTEL_SDK_DISABLED").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("false") => {}
        Some("true") => return Ok(None),
        Some(value) => return Err(invalid("OTEL_SDK_DISABLED", value, "true or false")),
    }
    match var("OTEL_TRACES_EXPORTER").as_deref().map(str::trim) {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(value) => return Err(invalid("OTEL_TRACES_EXPORTER", value, "otlp or none")),
    }
    let protocol =
        match first(["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]) {
            None => Protocol::HttpProtobuf,
            Some((_, value)) if value.trim() == "grpc" => Protocol::Grpc,
            Some((_, value)) if value.trim() == "http/protobuf" => Protocol::HttpProtobuf,
            Some((name, value)) => {
                return Err(invalid(
                    name,
                    &value,
                    "grpc or http/protobuf (http/json is not supported)",
                ));
            }
        };
    if let Some((name, value)) =
        first(["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"])
        && value.trim() != "none"
    {
        return Err(invalid(name, &value, "none (compression is not supported)"));
    }
    // The signal's own endpoint is used as it is; to the general one HTTP adds the signal's path.
    let Some((name, url)) =
        first(["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"])
    else {
        return Ok(None);
    };
    let url = url.trim();
    match url.strip_prefix("http://") {
        None => {
            return Err(invalid(
                name,
                url,
                "an http:// URL such as http://localhost:4317 (https is not supported)",
            ));
        }
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            return Err(invalid(name, url, "an http:// URL with a host"));
        }
        Some(_) => {}
    }
    let endpoint = match (name, protocol) {
        ("OTEL_EXPORTER_OTLP_ENDPOINT", Protocol::HttpProtobuf) => {
            format!("{}/v1/traces", url.trim_end_matches('/'))
        }
        _ => url.trim_end_matches('/').to_owned(),
    };
    if let Some(sampler) = var("OTEL_TRACES_SAMPLER")
        && !SAMPLERS.contains(&sampler.trim())
    {
        let expected = "always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio";
        return Err(invalid("OTEL_TRACES_SAMPLER", &sampler, expected));
    }
    if let Some(ratio) = var("OTEL_TRACES_SAMPLER_ARG")
        && !ratio.trim().parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
    {
        return Err(invalid(
            "OTEL_TRACES_SAMPLER_ARG",
            &ratio,
            "a ratio from 0 to 1, such as 0.25",
        ));
    }
    let millis = |names: &[&'static str]| -> Result<Option<Duration>, TelemetryError> {
        let Some((name, value)) = names.iter().find_map(|name| Some((*name, var(name)?))) else {
            return Ok(None);
        };
        let ms = value.trim().parse();
        Ok(Some(Duration::from_millis(
            ms.map_err(|_| invalid(name, &value, "a whole number of milliseconds"))?,
        )))
    };
    let timeout = millis(&["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"])?;
    let schedule_delay = millis(&["OTEL_BSP_SCHEDULE_DELAY"])?;
    let max_queue_size = match var("OTEL_BSP_MAX_QUEUE_SIZE") {
        None => 2048,
        Some(value) => match value.trim().parse() {
            Ok(size) if size > 0 => size,
            _ => {
                return Err(invalid("OTEL_BSP_MAX_QUEUE_SIZE", &value, "a whole number above 0"));
            }
        },
    };
    Ok(Some(Exporter { endpoint, protocol, max_queue_size, schedule_delay, timeout }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::HashMap;

    use super::*;

    fn exporter_of(vars: &[(&str, &str)]) -> Result<Option<Exporter>, TelemetryError> {
        let vars: HashMap<&str, &str> = vars.iter().copied().collect();
        exporter(|name| vars.get(name).map(|v| v.to_string()).filter(|v| !v.trim().is_empty()))
    }

    #[test]
    fn traces_are_off_without_an_endpoint_or_when_disabled() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
        assert!(exporter_of(&[]).unwrap().is_none());
        assert!(exporter_of(&[("OTEL_SERVICE_NAME", "x")]).unwrap().is_none());
        assert!(exporter_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")]).unwrap().is_none());
        assert!(exporter_of(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap().is_none());
        assert!(exporter_of(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap().is_none());
        assert!(exporter_of(&[endpoint, ("OTEL_SDK_DISABLED", "false")]).unwrap().is_some());
    }

    #[test]
    fn the_general_endpoint_gets_the_signal_path_for_http_only() {
        let grpc = exporter_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        let grpc = grpc.unwrap().unwrap();
        assert_eq!((grpc.endpoint.as_str(), grpc.protocol), ("http://jaeger:4317", Protocol::Grpc));
        let http =
            exporter_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318")]).unwrap().unwrap();
        assert_eq!(http.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!((http.protocol, http.max_queue_size), (Protocol::HttpProtobuf, 2048));
        let own = exporter_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/x"),
        ]);
        assert_eq!(own.unwrap().unwrap().endpoint, "http://jaeger:4318/x");
    }

    #[test]
    fn invalid_values_name_the_variable_and_the_value() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317");
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_SDK_DISABLED", "yes"),
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "0"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
        ] {
            let message = exporter_of(&[endpoint, (variable, value)]).unwrap_err().to_string();
            assert!(message.contains(&format!("{variable}={value:?}")), "{message}");
        }
        for (variable, value) in [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://c:4318"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http:///v1"),
        ] {
            let message = exporter_of(&[(variable, value)]).unwrap_err().to_string();
            assert!(message.contains(&format!("{variable}={value:?}")), "{message}");
        }
    }
}
