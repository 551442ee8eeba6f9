//! W3C trace context (`traceparent`, `tracestate`) in gRPC metadata and HTTP headers, so
//! one `/commit` is one trace across the coordinator and its workers.
//!
//! The propagator is OpenTelemetry's global one: the binary installs the W3C propagator
//! together with its exporter (when `OTEL_EXPORTER_OTLP_ENDPOINT` asks for one). Without
//! it every function here is a no-op, so nothing is injected and nothing extracted.
//!
//! - clients: [`TraceContext`] (a tonic interceptor) injects the current span's context
//!   into every call's metadata; [`inject_headers`] does the same for an HTTP request;
//! - servers: [`set_parent_from_metadata`] / [`set_parent_from_headers`] make the remote
//!   span the parent of the server span, which must not have been entered yet.

use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::Context;
use tonic::codegen::http::header::{HeaderName, HeaderValue};
use tonic::codegen::http::HeaderMap;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A tonic interceptor that carries the current span's trace context to the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceContext;

impl tonic::service::Interceptor for TraceContext {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_metadata(request.metadata_mut());
        Ok(request)
    }
}

/// Writes the current span's trace context into `metadata`.
pub fn inject_metadata(metadata: &mut MetadataMap) {
    inject(&mut MetadataInjector(metadata));
}

/// Writes the current span's trace context into `headers`.
pub fn inject_headers(headers: &mut HeaderMap) {
    inject(&mut HeaderInjector(headers));
}

fn inject(injector: &mut dyn Injector) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, injector)
    });
}

/// The remote parent a request's metadata names (an empty context without one).
pub fn extract_metadata(metadata: &MetadataMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&MetadataExtractor(metadata))
    })
}

/// The remote parent a request's headers name (an empty context without one).
pub fn extract_headers(headers: &HeaderMap) -> Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Makes the span the request's metadata names the parent of `span` (the server span
/// of the call). Nothing happens without a valid `traceparent`, so `span` stays a
/// child of the current span or a root.
pub fn set_parent_from_metadata(span: &tracing::Span, metadata: &MetadataMap) {
    set_remote_parent(span, extract_metadata(metadata));
}

/// As [`set_parent_from_metadata`], for an HTTP request's headers.
pub fn set_parent_from_headers(span: &tracing::Span, headers: &HeaderMap) {
    set_remote_parent(span, extract_headers(headers));
}

fn set_remote_parent(span: &tracing::Span, parent: Context) {
    use opentelemetry::trace::TraceContextExt;
    if parent.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed or the span already
        // started; either way the span keeps its local parent.
        let _ = span.set_parent(parent);
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) else {
            return;
        };
        self.0.insert(key, value);
    }
}

struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                tonic::metadata::KeyRef::Ascii(key) => Some(key.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) else {
            return;
        };
        self.0.insert(name, value);
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}
