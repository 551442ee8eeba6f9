use std::io::Write;
use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use tracing_subscriber::layer::SubscriberExt;

use super::*;
use crate::config::Verbosity;
use crate::logging::{self, LogSink, LOG_FILE_NAME};

fn record(level: Level, target: &str, fields: &[(&str, Value)]) -> Record {
    let mut recorded = Fields::default();
    for (name, value) in fields {
        recorded.insert(name, value.clone());
    }
    Record {
        level,
        time: FixedOffset::west_opt(4 * 3600)
            .unwrap()
            .with_ymd_and_hms(2022, 6, 21, 11, 15, 33)
            .unwrap(),
        process_id: "shard02".into(),
        target: target.into(),
        fields: recorded,
    }
}

fn parse(line: &str) -> serde_json::Map<String, Value> {
    assert!(line.ends_with('\n'), "{line:?}");
    assert_eq!(line.matches('\n').count(), 1, "one line: {line:?}");
    match serde_json::from_str(line).expect("JSON") {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn keys_in_order(line: &str) -> Vec<String> {
    // serde_json's map sorts, so read the order from the text.
    let map = parse(line);
    let mut keys: Vec<(usize, String)> = map
        .keys()
        .map(|key| (line.find(&format!("\"{key}\":")).expect("key"), key.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, key)| key).collect()
}

#[test]
fn a_line_has_mongosyncs_fields_in_mongosyncs_order() {
    let line = format_line(record(
        Level::INFO,
        "c2c_engine::copy::writer",
        &[
            ("message", Value::from("partition copied")),
            ("namespace", Value::from("db.c")),
            ("documents", Value::from(42u64)),
            ("done", Value::from(true)),
        ],
    ));
    let map = parse(&line);
    assert_eq!(map["level"], "info");
    assert_eq!(map["time"], "2022-06-21T11:15:33.000-04:00");
    assert_eq!(map["mongosyncID"], "shard02");
    assert_eq!(map["componentName"], "Collection Copy");
    assert_eq!(map["namespace"], "db.c");
    assert_eq!(map["documents"], 42);
    assert_eq!(map["done"], true);
    assert_eq!(map["message"], "partition copied");
    assert_eq!(
        keys_in_order(&line),
        [
            "level",
            "time",
            "mongosyncID",
            "componentName",
            "namespace",
            "documents",
            "done",
            "message"
        ]
    );
}

#[test]
fn trace_export_fields_are_not_logged() {
    let line = format_line(record(
        Level::WARN,
        "c2c_coordinator::cluster::fanout",
        &[
            ("otel.kind", Value::from("client")),
            ("otel.name", Value::from("c2c.v1.Worker/Commit")),
            ("rpc", Value::from("Commit")),
            ("message", Value::from("worker call failed")),
        ],
    ));
    assert_eq!(
        keys_in_order(&line),
        [
            "level",
            "time",
            "mongosyncID",
            "componentName",
            "rpc",
            "message"
        ]
    );
}

#[test]
fn levels_are_lowercase() {
    for (level, name) in [
        (Level::TRACE, "trace"),
        (Level::DEBUG, "debug"),
        (Level::INFO, "info"),
        (Level::WARN, "warn"),
        (Level::ERROR, "error"),
    ] {
        let map = parse(&format_line(record(level, "c2c", &[])));
        assert_eq!(map["level"], name);
        assert_eq!(map["message"], "");
    }
}

#[test]
fn component_names_come_from_the_field_or_the_target() {
    assert_eq!(
        component_of("c2c_engine::cea::crud"),
        Some("Change Event Application")
    );
    assert_eq!(
        component_of("c2c_engine::cea"),
        Some("Change Event Application")
    );
    assert_eq!(component_of("c2c_engine::retry"), Some("Engine"));
    assert_eq!(
        component_of("c2c_coordinator::api::routes"),
        Some("REST API")
    );
    assert_eq!(component_of("c2c::process::worker"), Some("Worker"));
    assert_eq!(component_of("c2c"), Some("Process"));
    // A prefix must end at a module boundary.
    assert_eq!(component_of("c2c_engine::copyright"), Some("Engine"));
    assert_eq!(component_of("h2::codec"), None);
    assert_eq!(component_of("c2cx"), None);

    let explicit = format_line(record(
        Level::INFO,
        "c2c_engine::copy",
        &[("componentName", Value::from("Verifier"))],
    ));
    assert_eq!(parse(&explicit)["componentName"], "Verifier");
    let library = format_line(record(Level::INFO, "hyper::proto", &[]));
    assert!(!parse(&library).contains_key("componentName"), "{library}");
}

#[test]
fn fields_named_like_the_lines_own_keys_are_renamed() {
    let line = format_line(record(
        Level::WARN,
        "c2c",
        &[("time", Value::from("12s")), ("level", Value::from(3))],
    ));
    let map = parse(&line);
    assert_eq!(map["level"], "warn");
    assert_eq!(map["field.time"], "12s");
    assert_eq!(map["field.level"], 3);
}

#[test]
fn long_values_are_cut_at_1024_characters() {
    let long = "é".repeat(3000);
    let exact = "x".repeat(MAX_FIELD_CHARS);
    let line = format_line(record(
        Level::ERROR,
        "c2c",
        &[
            ("message", Value::from(long.clone())),
            ("error", Value::from(long.clone())),
            ("exact", Value::from(exact.clone())),
            ("count", Value::from(u64::MAX)),
        ],
    ));
    let map = parse(&line);
    for name in ["message", "error"] {
        let text = map[name].as_str().unwrap();
        let kept = text.strip_suffix(TRUNCATED_MARK).expect("marked");
        assert_eq!(kept.chars().count(), MAX_FIELD_CHARS);
        assert!(long.starts_with(kept));
    }
    assert_eq!(map["exact"], exact.as_str());
    assert_eq!(map["count"], u64::MAX);
}

/// A writer the tests read back.
#[derive(Clone, Default)]
struct Buffer(Arc<parking_lot::Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn lines(&self) -> Vec<serde_json::Map<String, Value>> {
        let text = String::from_utf8(self.0.lock().clone()).unwrap();
        text.split_inclusive('\n').map(parse).collect()
    }
}

#[test]
fn fatal_and_panic_are_marked_errors_and_filter_as_mongosyncs_levels() {
    let emit = || {
        tracing::warn!(target: "c2c", "a warning");
        tracing::error!(target: "c2c", "an error");
        tracing::error!(target: "c2c", fatal = true, "the end");
        tracing::error!(target: "c2c", panic = true, "a panic");
        // A marker on a lower level changes nothing.
        tracing::info!(target: "c2c", fatal = true, "not fatal");
    };
    let levels = |verbosity| -> Vec<(String, String)> {
        capture(verbosity, emit)
            .iter()
            .map(|line| {
                assert!(
                    line.get("fatal").is_none() || line["level"] == "info",
                    "{line:?}"
                );
                (
                    line["level"].as_str().unwrap().to_string(),
                    line["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let pair = |level: &str, message: &str| (level.to_string(), message.to_string());
    assert_eq!(
        levels(Verbosity::Error),
        [
            pair("error", "an error"),
            pair("fatal", "the end"),
            pair("panic", "a panic")
        ]
    );
    assert_eq!(
        levels(Verbosity::Fatal),
        [pair("fatal", "the end"), pair("panic", "a panic")]
    );
    assert_eq!(levels(Verbosity::Panic), [pair("panic", "a panic")]);
    assert_eq!(levels(Verbosity::Info).len(), 5);
}

/// Runs `body` with a subscriber writing through `JsonLayer` at `verbosity`.
fn capture(verbosity: Verbosity, body: impl FnOnce()) -> Vec<serde_json::Map<String, Value>> {
    let buffer = Buffer::default();
    let sink = Arc::new(LogSink::writer(Box::new(buffer.clone())));
    let layer = JsonLayer::new(sink, ProcessId::new("w1")).with_filter(logging::filter(verbosity));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, body);
    buffer.lines()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot apply the batch")]
struct Outer(#[source] std::io::Error);

#[test]
fn events_carry_their_spans_fields_and_error_chains() {
    let lines = capture(Verbosity::Debug, || {
        let span = tracing::info_span!(
            "partition",
            namespace = "db.c",
            partition = 7u64,
            componentName = "Collection Copy",
            bytes = tracing::field::Empty
        );
        let _entered = span.enter();
        span.record("bytes", 2048u64);
        let error = Outer(std::io::Error::other("disk full"));
        tracing::warn!(
            error = &error as &(dyn std::error::Error + 'static),
            partition = 8u64,
            ratio = 0.5,
            "batch {} failed",
            3
        );
    });
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["level"], "warn");
    assert_eq!(line["mongosyncID"], "w1");
    assert_eq!(line["componentName"], "Collection Copy");
    assert_eq!(line["namespace"], "db.c");
    assert_eq!(line["bytes"], 2048);
    // The event's own value wins over its span's.
    assert_eq!(line["partition"], 8);
    assert_eq!(line["ratio"], 0.5);
    assert_eq!(line["error"], "cannot apply the batch: disk full");
    assert_eq!(line["message"], "batch 3 failed");
    let time = line["time"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(time).expect("RFC 3339 with offset");
}

#[test]
fn the_process_id_can_be_set_after_start() {
    let buffer = Buffer::default();
    let sink = Arc::new(LogSink::writer(Box::new(buffer.clone())));
    let id = ProcessId::new("coordinator");
    let subscriber = tracing_subscriber::registry().with(JsonLayer::new(sink, id.clone()));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("before");
        id.set("host-27182");
        tracing::info!("after");
    });
    let lines = buffer.lines();
    assert_eq!(lines[0]["mongosyncID"], "coordinator");
    assert_eq!(lines[1]["mongosyncID"], "host-27182");
}

#[test]
fn verbosity_filters_c2c_and_caps_libraries_at_info() {
    let emit = || {
        tracing::debug!(target: "c2c_engine::copy", "own debug");
        tracing::info!(target: "c2c_engine::copy", "own info");
        tracing::debug!(target: "h2::proto", "library debug");
        tracing::info!(target: "h2::proto", "library info");
        tracing::trace!(target: "c2c", "own trace");
    };
    let messages = |verbosity| -> Vec<String> {
        capture(verbosity, emit)
            .iter()
            .map(|line| line["message"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        messages(Verbosity::Debug),
        ["own debug", "own info", "library info"]
    );
    assert_eq!(messages(Verbosity::Info), ["own info", "library info"]);
    assert_eq!(messages(Verbosity::Warn), Vec::<String>::new());
    assert_eq!(messages(Verbosity::Fatal), Vec::<String>::new());
    assert_eq!(messages(Verbosity::Trace).len(), 5);
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("c2c-log-unit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn rotation_renames_with_mongosyncs_time_stamp() {
    let dir = temp_dir("stamp");
    let now =
        Utc.with_ymd_and_hms(2024, 5, 1, 10, 11, 12).unwrap() + chrono::Duration::milliseconds(345);
    // Nothing to rotate: no file, then an empty one.
    assert_eq!(logging::rotate_existing(&dir, now).unwrap(), None);
    std::fs::write(dir.join(LOG_FILE_NAME), "").unwrap();
    assert_eq!(logging::rotate_existing(&dir, now).unwrap(), None);

    std::fs::write(dir.join(LOG_FILE_NAME), "first\n").unwrap();
    let rotated = logging::rotate_existing(&dir, now).unwrap().unwrap();
    assert_eq!(rotated, dir.join("c2c-2024-05-01T10-11-12.345.log"));
    std::fs::write(dir.join(LOG_FILE_NAME), "second\n").unwrap();
    let again = logging::rotate_existing(&dir, now).unwrap().unwrap();
    assert_eq!(again, dir.join("c2c-2024-05-01T10-11-12.345-1.log"));
    assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "first\n");
    assert_eq!(std::fs::read_to_string(&again).unwrap(), "second\n");
    assert!(!dir.join(LOG_FILE_NAME).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_sink_rotates_at_start_and_on_demand() {
    let dir = temp_dir("sink");
    std::fs::write(dir.join(LOG_FILE_NAME), "from the last run\n").unwrap();
    let (sink, rotated) = LogSink::file(&dir).unwrap();
    let rotated = rotated.expect("the last run's file is rotated");
    assert_eq!(
        std::fs::read_to_string(&rotated).unwrap(),
        "from the last run\n"
    );
    assert_eq!(sink.path(), Some(dir.join(LOG_FILE_NAME)));
    sink.write_line(b"one\n");
    let second = sink.rotate().unwrap().expect("rotated");
    assert_ne!(second, rotated);
    assert_eq!(std::fs::read_to_string(&second).unwrap(), "one\n");
    sink.write_line(b"two\n");
    assert_eq!(
        std::fs::read_to_string(dir.join(LOG_FILE_NAME)).unwrap(),
        "two\n"
    );
    // Moved away by someone else (logrotate): reopened, nothing renamed.
    std::fs::rename(dir.join(LOG_FILE_NAME), dir.join("moved.log")).unwrap();
    assert_eq!(sink.rotate().unwrap(), None);
    sink.write_line(b"three\n");
    assert_eq!(
        std::fs::read_to_string(dir.join(LOG_FILE_NAME)).unwrap(),
        "three\n"
    );
    assert_eq!(names_in(&dir).len(), 4, "{:?}", names_in(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}
