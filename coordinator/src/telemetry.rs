//! Traces: OpenTelemetry export over OTLP/gRPC, installed next to the JSON log layer
//! when the standard variables ask for it (`OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none` turn it off). Without them nothing is installed.
//!
//! The SDK and the exporter read the other standard variables themselves: the
//! sampler (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`), the batch span
//! processor (`OTEL_BSP_*`), the exporter's timeout, headers and compression
//! (`OTEL_EXPORTER_OTLP_*`), span limits, and the resource (`OTEL_SERVICE_NAME`,
//! default `c2c`; `OTEL_RESOURCE_ATTRIBUTES`). Every process adds
//! `service.instance.id` (its id: `--id`, or the worker's id) and `c2c.role`.
//!
//! What is exported: the spans and events of c2c's own code, from INFO up (libraries'
//! spans stay out). The W3C trace-context propagator is installed with the exporter,
//! so calls to the workers carry `traceparent` (see `c2c_api::trace_context`).
//! Failed exports are dropped silently: the SDK's own logs are compiled out, and a
//! collector that is down costs a retry per batch, never the migration.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::level_filters::LevelFilter;
use tracing::Subscriber;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// `service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) names one.
pub const DEFAULT_SERVICE_NAME: &str = "c2c";
/// The resource attribute naming the process's role.
pub const ROLE_ATTRIBUTE: &str = "c2c.role";
/// How long exit waits for the last spans to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
const TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
const SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
const TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const PROTOCOLS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
];

/// Which process exports (the `c2c.role` resource attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Run,
    Coordinator,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Run => "run",
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
        }
    }
}

/// What the environment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// No endpoint variable, or export turned off.
    Off,
    /// OTLP over gRPC to `endpoint`.
    Otlp { endpoint: String },
}

/// Reads the variables through `var` (`std::env::var` in the binary, a map in tests).
pub fn requested(var: impl Fn(&str) -> Option<String>) -> Requested {
    let set = |name: &str| var(name).filter(|value| !value.trim().is_empty());
    if set(SDK_DISABLED).is_some_and(|value| value.trim().eq_ignore_ascii_case("true")) {
        return Requested::Off;
    }
    if set(TRACES_EXPORTER).is_some_and(|value| value.trim().eq_ignore_ascii_case("none")) {
        return Requested::Off;
    }
    match set(TRACES_ENDPOINT).or_else(|| set(ENDPOINT)) {
        Some(endpoint) => Requested::Otlp { endpoint },
        None => Requested::Off,
    }
}

fn environment(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The exporter's pipeline, kept for the life of the process: dropping it flushes the
/// spans still buffered and shuts the exporter down.
pub struct Traces {
    provider: SdkTracerProvider,
    endpoint: String,
    /// Variables set to something this build does not do, named for a warning.
    ignored: Vec<String>,
}

/// Starting the export failed (an unusable endpoint, say): the process runs without it.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {reason}")]
pub struct TracesError {
    pub endpoint: String,
    pub reason: String,
}

impl Traces {
    /// The pipeline the environment asks for, if any. Call it inside the tokio runtime:
    /// the gRPC channel lives there.
    pub fn from_env(role: Role, process_id: &str) -> Result<Option<Traces>, TracesError> {
        Traces::start(role, process_id, environment)
    }

    /// As [`Traces::from_env`], reading the variables through `var`. The SDK and
    /// the exporter read the remaining standard variables from the environment.
    pub fn start(
        role: Role,
        process_id: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Traces>, TracesError> {
        let Requested::Otlp { endpoint } = requested(&var) else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| TracesError {
                endpoint: endpoint.clone(),
                reason: error.to_string(),
            })?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource(role, process_id))
            .build();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        let ignored = PROTOCOLS
            .iter()
            .filter_map(|name| var(name).map(|value| (name, value)))
            .filter(|(_, value)| !value.trim().is_empty() && value.trim() != "grpc")
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        Ok(Some(Traces {
            provider,
            endpoint,
            ignored,
        }))
    }

    /// Where the spans go.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Variables this build cannot honour (an OTLP protocol other than gRPC).
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }

    /// The layer that turns c2c's spans into exported ones.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    {
        let tracer = self.provider.tracer("c2c");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(exported())
    }

    /// Exports what is buffered and stops the exporter (also done on drop).
    pub fn shutdown(&self) {
        let provider = self.provider.clone();
        let flush = move || {
            // Already shut down, or the collector is unreachable: nothing to do.
            let _ = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
        };
        // The export runs on the runtime this thread may be driving: let it go on.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime)
                if runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                tokio::task::block_in_place(flush)
            }
            _ => flush(),
        }
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// c2c's spans and events, from INFO up; nothing from libraries.
pub fn exported() -> Targets {
    Targets::new().with_target("c2c", LevelFilter::INFO)
}

/// `service.name` (the standard variables, else `c2c`), `service.instance.id` (the
/// process's id) and `c2c.role`, over what `OTEL_RESOURCE_ATTRIBUTES` adds.
pub fn resource(role: Role, process_id: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::from_static_str("service.name"))
        .map(|name| name.to_string())
        .filter(|name| !name.starts_with("unknown_service"));
    Resource::builder()
        .with_service_name(named.unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string()))
        .with_attributes([
            KeyValue::new("service.instance.id", process_id.to_string()),
            KeyValue::new(ROLE_ATTRIBUTE, role.as_str()),
        ])
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn variables(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    #[test]
    fn nothing_is_installed_without_the_variables() {
        assert_eq!(requested(variables(&[])), Requested::Off);
        let traces = Traces::start(Role::Worker, "w1", variables(&[])).expect("no error");
        assert!(traces.is_none(), "an exporter without OTEL_* variables");
        // Set but empty counts as unset.
        assert_eq!(requested(variables(&[(ENDPOINT, " ")])), Requested::Off);
    }

    #[test]
    fn either_endpoint_variable_turns_export_on_the_traces_one_first() {
        assert_eq!(
            requested(variables(&[(ENDPOINT, "http://collector:4317")])),
            Requested::Otlp {
                endpoint: "http://collector:4317".into()
            }
        );
        assert_eq!(
            requested(variables(&[
                (ENDPOINT, "http://collector:4317"),
                (TRACES_ENDPOINT, "http://traces:4317"),
            ])),
            Requested::Otlp {
                endpoint: "http://traces:4317".into()
            }
        );
    }

    #[test]
    fn sdk_disabled_or_exporter_none_turns_it_off() {
        let endpoint = (ENDPOINT, "http://collector:4317");
        assert_eq!(
            requested(variables(&[endpoint, (SDK_DISABLED, "TRUE")])),
            Requested::Off
        );
        assert_eq!(
            requested(variables(&[endpoint, (TRACES_EXPORTER, "none")])),
            Requested::Off
        );
        assert_ne!(
            requested(variables(&[endpoint, (SDK_DISABLED, "false")])),
            Requested::Off
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_exporter_is_built_with_an_endpoint_and_shuts_down_quietly() {
        // Nothing listens there: building is lazy and shutting down gives up in time.
        let traces = Traces::start(
            Role::Coordinator,
            "c1",
            variables(&[
                (ENDPOINT, "http://127.0.0.1:9"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ]),
        )
        .expect("built")
        .expect("requested");
        assert_eq!(
            traces.ignored(),
            ["OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"]
        );
        drop(traces);
    }

    #[test]
    fn the_resource_names_the_process_and_its_role() {
        let resource = resource(Role::Worker, "w7");
        let get = |key: &'static str| {
            resource
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|value| value.to_string())
        };
        assert_eq!(get("service.instance.id").as_deref(), Some("w7"));
        assert_eq!(get(ROLE_ATTRIBUTE).as_deref(), Some("worker"));
        // OTEL_SERVICE_NAME is not set under `cargo test` unless the caller sets it.
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            assert_eq!(get("service.name").as_deref(), Some(DEFAULT_SERVICE_NAME));
        }
    }
}
