//! The JSON line of one log event, as mongosync writes it:
//!
//! ```json
//! {"level":"info","time":"2024-05-01T10:11:12.345+02:00","mongosyncID":"coordinator",
//!  "componentName":"Collection Copy","namespace":"db.c","message":"partition copied"}
//! ```
//!
//! `level` is lowercase; `time` is local time in RFC 3339 with its offset;
//! `mongosyncID` is the process's id; `componentName` is an explicit `componentName`
//! field (of the event or an enclosing span) or else derived from the event's target
//! (see [`component_of`]); then the fields of the enclosing spans (outermost first) and
//! of the event, and `message` last. String values longer than [`MAX_FIELD_CHARS`] are
//! cut there (mongosync 1.7+ does the same). Fields named `otel.*` are instructions to
//! the trace export (span name, kind, status) and are not written.

use std::sync::Arc;

use chrono::{DateTime, FixedOffset, SecondsFormat};
use parking_lot::RwLock;
use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::logging::LogSink;

/// Longest string value written whole, in characters.
pub const MAX_FIELD_CHARS: usize = 1024;
/// Appended to a value cut at `MAX_FIELD_CHARS`.
pub const TRUNCATED_MARK: &str = "…[truncated]";
/// The field that names a component explicitly.
pub const COMPONENT_FIELD: &str = "componentName";
/// An ERROR event with `fatal = true` is written as `"level":"fatal"`: the error that
/// ends the process, as mongosync marks it. Tracing has no level above ERROR.
pub const FATAL_FIELD: &str = "fatal";
/// An ERROR event with `panic = true` is written as `"level":"panic"`: a panic.
pub const PANIC_FIELD: &str = "panic";

/// Written by the line itself; an event field of the same name is renamed `field.<name>`.
const RESERVED: [&str; 3] = ["level", "time", "mongosyncID"];

/// Target prefixes (module paths) and the component they log as; the longest match
/// wins. Targets outside c2c (libraries) get no `componentName`.
const COMPONENTS: &[(&str, &str)] = &[
    ("c2c_engine", "Engine"),
    ("c2c_engine::cea", "Change Event Application"),
    ("c2c_engine::copy", "Collection Copy"),
    ("c2c_engine::partition", "Collection Copy"),
    ("c2c_engine::indexes", "Index Builder"),
    ("c2c_engine::cutover", "Commit"),
    ("c2c_engine::discovery", "Namespace Discovery"),
    ("c2c_engine::migration", "Migration"),
    ("c2c_engine::share", "Migration"),
    ("c2c_coordinator", "Coordinator"),
    ("c2c_coordinator::api", "REST API"),
    ("c2c_coordinator::grpc", "gRPC API"),
    ("c2c_coordinator::server", "API Server"),
    ("c2c_coordinator::config", "Configuration"),
    ("c2c_coordinator::logging", "Logging"),
    ("c2c_coordinator::cluster", "Scale-out"),
    ("c2c_coordinator::scaled", "Scale-out"),
    ("c2c_coordinator::scaled::worker_node", "Worker"),
    ("c2c_membership", "Membership"),
    ("c2c_worker", "Worker"),
    ("c2c", "Process"),
    ("c2c::process::coordinator", "Coordinator"),
    ("c2c::process::worker", "Worker"),
];

/// The component an event of `target` belongs to, if it is one of c2c's.
pub fn component_of(target: &str) -> Option<&'static str> {
    COMPONENTS
        .iter()
        .filter(|(prefix, _)| {
            target == *prefix
                || target
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, component)| *component)
}

/// The process's id as written in `mongosyncID`; settable once the id is known.
#[derive(Debug, Clone)]
pub struct ProcessId(Arc<RwLock<String>>);

impl ProcessId {
    pub fn new(id: &str) -> ProcessId {
        ProcessId(Arc::new(RwLock::new(id.to_string())))
    }

    pub fn set(&self, id: &str) {
        *self.0.write() = id.to_string();
    }

    pub fn get(&self) -> String {
        self.0.read().clone()
    }
}

/// Fields in the order they were recorded; a later value of a name replaces the earlier.
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    pub fn insert(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(known, _)| known == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name.to_string(), value)),
        }
    }

    fn remove(&mut self, name: &str) -> Option<Value> {
        let index = self.0.iter().position(|(known, _)| known == name)?;
        Some(self.0.remove(index).1)
    }

    fn extend(&mut self, other: &Fields) {
        for (name, value) in &other.0 {
            self.insert(name, value.clone());
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field.name(), Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field.name(), Value::String(value.to_string()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field.name(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field.name(), Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let number = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.insert(field.name(), number);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field.name(), Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field.name(), Value::String(error_chain(value)));
    }
}

/// An error with its chain of causes, `outer: inner: root` (a TLS or DNS failure is often
/// only named deep in it); a cause whose text the chain already holds is not repeated.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// One event, ready to be written.
#[derive(Debug, Clone)]
pub struct Record {
    pub level: Level,
    pub time: DateTime<FixedOffset>,
    pub process_id: String,
    pub target: String,
    pub fields: Fields,
}

/// mongosync's lowercase level names.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warn",
        Level::ERROR => "error",
    }
}

/// `value` cut to `MAX_FIELD_CHARS` characters when it is a longer string.
pub fn truncate(value: Value) -> Value {
    match value {
        Value::String(text) => match text.char_indices().nth(MAX_FIELD_CHARS) {
            Some((cut, _)) => Value::String(format!("{}{TRUNCATED_MARK}", &text[..cut])),
            None => Value::String(text),
        },
        other => other,
    }
}

/// The JSON line of `record`, with its trailing newline.
pub fn format_line(record: Record) -> String {
    let Record {
        level,
        time,
        process_id,
        mut target,
        mut fields,
    } = record;
    // Events from the `log` crate carry their real target as a field.
    if let Some(Value::String(log_target)) = fields.remove("log.target") {
        target = log_target;
    }
    for name in ["log.module_path", "log.file", "log.line"] {
        fields.remove(name);
    }
    fields.0.retain(|(name, _)| !name.starts_with("otel."));
    let marked = |fields: &mut Fields, name: &str| {
        level == Level::ERROR && fields.remove(name) == Some(Value::Bool(true))
    };
    let level_text = if marked(&mut fields, PANIC_FIELD) {
        "panic"
    } else if marked(&mut fields, FATAL_FIELD) {
        "fatal"
    } else {
        level_name(level)
    };
    let message = fields
        .remove("message")
        .unwrap_or_else(|| Value::String(String::new()));
    let component = fields
        .remove(COMPONENT_FIELD)
        .or_else(|| component_of(&target).map(|name| Value::String(name.to_string())));

    let mut line: Vec<(String, Value)> = Vec::with_capacity(fields.0.len() + 5);
    line.push(("level".into(), Value::from(level_text)));
    line.push((
        "time".into(),
        Value::from(time.to_rfc3339_opts(SecondsFormat::Millis, false)),
    ));
    line.push(("mongosyncID".into(), Value::from(process_id)));
    if let Some(component) = component {
        line.push((COMPONENT_FIELD.into(), component));
    }
    for (name, value) in fields.0 {
        let name = if RESERVED.contains(&name.as_str()) {
            format!("field.{name}")
        } else {
            name
        };
        line.push((name, value));
    }
    line.push(("message".into(), message));

    // Written by hand to keep this order (serde_json's map sorts its keys).
    let mut text = String::from("{");
    for (index, (name, value)) in line.into_iter().enumerate() {
        if index > 0 {
            text.push(',');
        }
        text.push_str(&Value::from(name).to_string());
        text.push(':');
        text.push_str(&truncate(value).to_string());
    }
    text.push_str("}\n");
    text
}

/// The `tracing` layer that writes every event as a JSON line to the sink.
pub struct JsonLayer {
    sink: Arc<LogSink>,
    process_id: ProcessId,
}

impl JsonLayer {
    pub fn new(sink: Arc<LogSink>, process_id: ProcessId) -> JsonLayer {
        JsonLayer { sink, process_id }
    }
}

impl<S> Layer<S> for JsonLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        context: Context<'_, S>,
    ) {
        let Some(span) = context.span(id) else {
            return;
        };
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        context: Context<'_, S>,
    ) {
        let Some(span) = context.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(fields) = extensions.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, context: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = context.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    fields.extend(span_fields);
                }
            }
        }
        event.record(&mut fields);
        let metadata = event.metadata();
        let record = Record {
            level: *metadata.level(),
            time: chrono::Local::now().fixed_offset(),
            process_id: self.process_id.get(),
            target: metadata.target().to_string(),
            fields,
        };
        self.sink.write_line(format_line(record).as_bytes());
    }
}

#[cfg(test)]
#[path = "log_format_tests.rs"]
mod tests;
