//! The `OTEL_*` variables the SDK would take silently wrong, or this build cannot honour, checked.

use std::{fmt, time::Duration};

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("{variable}={value:?} is not valid: {expected}")]
    Invalid { variable: &'static str, value: String, expected: &'static str },
    #[error("cannot set up the OTLP exporter: {0}")]
    Exporter(String),
}

fn invalid(variable: &'static str, value: &str, expected: &'static str) -> TelemetryError {
    TelemetryError::Invalid { variable, value: value.to_owned(), expected }
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exporter {
    /// For HTTP the full URL (`…/v1/traces`), as the exporter would make it.
    pub(crate) endpoint: String,
    pub(crate) protocol: Protocol,
    pub(crate) max_queue_size: usize,
    pub(crate) schedule_delay: Option<Duration>,
}

/// The exporter the variables `var` gives (empty ones count as unset), or `None` for no traces.
pub(super) fn exporter(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Option<Exporter>, TelemetryError> {
    // The first of `names` that is set: a signal's own variable comes before the general one.
    let first = |names: &[&'static str]| names.iter().find_map(|&name| Some((name, var(name)?)));
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
    let protocol = first(&["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]);
    let protocol = match protocol {
        None => Protocol::HttpProtobuf,
        Some((_, value)) if value.trim() == "grpc" => Protocol::Grpc,
        Some((_, value)) if value.trim() == "http/protobuf" => Protocol::HttpProtobuf,
        Some((name, value)) => {
            let expected = "grpc or http/protobuf (http/json is not supported)";
            return Err(invalid(name, &value, expected));
        }
    };
    if let Some((name, value)) =
        first(&["OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION"])
        && value.trim() != "none"
    {
        return Err(invalid(name, &value, "none (compression is not supported)"));
    }
    let endpoint = first(&["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]);
    let Some((name, url)) = endpoint else { return Ok(None) };
    let url = url.trim();
    let Some(host_and_path) = url.strip_prefix("http://") else {
        let expected = "an http:// URL such as http://localhost:4317 (https is not supported)";
        return Err(invalid(name, url, expected));
    };
    if host_and_path.is_empty() || host_and_path.starts_with('/') {
        return Err(invalid(name, url, "an http:// URL with a host"));
    }
    let authority = host_and_path.split(['/', '?', '#']).next().unwrap_or_default();
    if let Some((credentials, _)) = authority.rsplit_once('@') {
        // Shown without them: the error is logged.
        let expected = "an http:// URL without credentials, which are not sent \
                        (OTEL_EXPORTER_OTLP_HEADERS=authorization=… sends them)";
        return Err(invalid(name, &url.replacen(credentials, "…", 1), expected));
    }
    if authority.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'))
        && authority.parse::<crate::net::HostPort>().is_err()
    {
        return Err(invalid(name, url, "an http:// URL with a host and a port from 1 to 65535"));
    }
    // The signal's own endpoint is used as it is; to the general one HTTP adds the signal's path.
    let url = url.trim_end_matches('/');
    let general_http = name == "OTEL_EXPORTER_OTLP_ENDPOINT" && protocol == Protocol::HttpProtobuf;
    let endpoint = if general_http { format!("{url}/v1/traces") } else { url.to_owned() };
    if let Some(sampler) = var("OTEL_TRACES_SAMPLER") {
        let trimmed = sampler.trim();
        let root = trimmed.strip_prefix("parentbased_").unwrap_or(trimmed);
        if !matches!(root, "always_on" | "always_off" | "traceidratio") {
            let expected = "always_on, always_off, traceidratio, parentbased_always_on, \
                            parentbased_always_off or parentbased_traceidratio";
            return Err(invalid("OTEL_TRACES_SAMPLER", &sampler, expected));
        }
    }
    if let Some(ratio) = var("OTEL_TRACES_SAMPLER_ARG")
        && !ratio.trim().parse::<f64>().is_ok_and(|r| (0.0..=1.0).contains(&r))
    {
        let expected = "a ratio from 0 to 1, such as 0.25";
        return Err(invalid("OTEL_TRACES_SAMPLER_ARG", &ratio, expected));
    }
    let millis = |names: &[&'static str]| {
        let Some((name, value)) = first(names) else { return Ok(None) };
        let parsed = value.trim().parse().map(Duration::from_millis);
        parsed.map(Some).map_err(|_| invalid(name, &value, "a whole number of milliseconds"))
    };
    // Checked only: the exporter reads the timeout from the process itself.
    millis(&["OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"])?;
    let schedule_delay = millis(&["OTEL_BSP_SCHEDULE_DELAY"])?;
    // The queue is allocated whole at start.
    let max_queue_size =
        var("OTEL_BSP_MAX_QUEUE_SIZE").map_or(Ok(2048), |value| match value.trim().parse() {
            Ok(size @ 1..=65_536) => Ok(size),
            _ => Err(invalid("OTEL_BSP_MAX_QUEUE_SIZE", &value, "a number from 1 to 65536")),
        })?;
    Ok(Some(Exporter { endpoint, protocol, max_queue_size, schedule_delay }))
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
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1000000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "1e12"),
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
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:99999"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://[::1]:0/v1"),
        ] {
            let message = exporter_of(&[(variable, value)]).unwrap_err().to_string();
            assert!(message.contains(&format!("{variable}={value:?}")), "{message}");
        }
        for good in ["http://[::1]/v1", "http://[::1]:4318", "http://c:4318/a:b", "http://c?x=@"] {
            let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", good);
            assert!(exporter_of(&[endpoint]).is_ok(), "{good}");
        }
    }

    #[test]
    fn credentials_in_the_endpoint_are_refused_and_never_shown() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://user:secret@c:4317/v1");
        let message = exporter_of(&[endpoint]).unwrap_err().to_string();
        assert!(!message.contains("secret") && !message.contains("user"), "{message}");
        assert!(message.contains("http://…@c:4317/v1"), "{message}");
    }
}
