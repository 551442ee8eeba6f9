//! How the engine's spans form traces when the binary exports them (OpenTelemetry).
//! Without an exporter both functions are no-ops.
//!
//! In the logs a span sits inside its `tracing` parent (its fields appear on every
//! line). In traces two things differ:
//! - a unit of work inside a long-running one (an applied batch inside a stream that
//!   runs for days, a partition inside the copy phase) starts a trace of its own, linked
//!   to the long-running span: [`detach`]. One trace per phase would hold millions of
//!   spans.
//! - work that a call started in a task of its own (the commit steps after `/commit`)
//!   continues the call's trace without keeping its span open: [`continue_trace`].

use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span`, not entered yet, the root of a new trace linked to the current span.
pub fn detach(span: &Span) {
    let current = Span::current().context();
    // Fails only without an exporter (or once started): then there is no trace anyway.
    if span.set_parent(Context::new()).is_ok() {
        let linked = current.span().span_context().clone();
        span.add_link(linked);
    }
}

/// The trace context of the current span, to continue in another task.
pub fn current() -> Context {
    Span::current().context()
}

/// Makes `span`, not entered yet, a child of `cause` (from [`current`]) in traces.
pub fn continue_trace(span: &Span, cause: Context) {
    if cause.span().span_context().is_valid() {
        let _ = span.set_parent(cause);
    }
}
