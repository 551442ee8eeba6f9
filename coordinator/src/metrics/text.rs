//! Prometheus' text exposition format 0.0.4, written by hand: `# HELP` and `# TYPE`
//! once per family, then its samples, label values and help text escaped.

use std::fmt::Write;

use c2c_engine::metrics::HistogramSnapshot;

/// The `Content-Type` of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample value: integers print exactly, floats as Prometheus spells them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(value: u64) -> Value {
        Value::Unsigned(value)
    }
}

impl From<u32> for Value {
    fn from(value: u32) -> Value {
        Value::Unsigned(u64::from(value))
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Value {
        Value::Signed(value)
    }
}

impl From<f64> for Value {
    fn from(value: f64) -> Value {
        Value::Float(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Unsigned(u64::from(value))
    }
}

fn write_value(out: &mut String, value: Value) {
    let _ = match value {
        Value::Unsigned(value) => write!(out, "{value}"),
        Value::Signed(value) => write!(out, "{value}"),
        Value::Float(value) if value.is_nan() => write!(out, "NaN"),
        Value::Float(value) if value == f64::INFINITY => write!(out, "+Inf"),
        Value::Float(value) if value == f64::NEG_INFINITY => write!(out, "-Inf"),
        Value::Float(value) => write!(out, "{value}"),
    };
}

/// One scrape's text, built family by family.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
    #[cfg(debug_assertions)]
    names: std::collections::HashSet<String>,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Starts a family; its samples follow through the returned writer. A name must
    /// appear once per scrape (checked in debug builds).
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        #[cfg(debug_assertions)]
        debug_assert!(
            self.names.insert(name.to_string()),
            "metric family {name} written twice"
        );
        debug_assert!(valid_name(name), "invalid metric name {name}");
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// A family with one unlabelled sample.
    pub fn single(&mut self, name: &'static str, kind: Kind, help: &str, value: impl Into<Value>) {
        self.family(name, kind, help).sample(&[], value);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

/// Writes the samples of one family.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) -> &mut Self {
        self.line("", labels, None, value.into());
        self
    }

    /// A histogram's `_bucket` series (with `+Inf`), `_sum` and `_count`; observations
    /// (and bounds) are divided by `per_unit` (e.g. 1,000,000 for microseconds → seconds;
    /// 1 keeps them as they are).
    pub fn histogram(
        &mut self,
        labels: &[(&str, &str)],
        histogram: &HistogramSnapshot,
        per_unit: u64,
    ) -> &mut Self {
        for (bound, count) in &histogram.buckets {
            let le = format_float(*bound as f64 / per_unit as f64);
            self.line("_bucket", labels, Some(&le), Value::Unsigned(*count));
        }
        self.line(
            "_bucket",
            labels,
            Some("+Inf"),
            Value::Unsigned(histogram.count),
        );
        let sum = if per_unit == 1 {
            Value::Unsigned(histogram.sum)
        } else {
            Value::Float(histogram.sum as f64 / per_unit as f64)
        };
        self.line("_sum", labels, None, sum);
        self.line("_count", labels, None, Value::Unsigned(histogram.count));
        self
    }

    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: Value) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        let le = le.map(|le| ("le", le));
        let mut all = labels.iter().copied().chain(le).peekable();
        if all.peek().is_some() {
            self.out.push('{');
            for (index, (name, value)) in all.enumerate() {
                debug_assert!(valid_name(name), "invalid label name {name}");
                if index > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_value(self.out, value);
        self.out.push('\n');
    }
}

fn format_float(value: f64) -> String {
    let mut out = String::new();
    write_value(&mut out, Value::Float(value));
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `\` and newline escaped (the format's rule for `# HELP`).
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// `\`, `"` and newline escaped (the format's rule for label values).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes() {
        let mut text = Exposition::new();
        text.single("c2c_up", Kind::Gauge, "Up.\nTwo \\ lines.", 1u64);
        text.family("c2c_things_total", Kind::Counter, "Things.")
            .sample(&[("kind", "a\"b\\c\nd")], 3u64)
            .sample(&[("kind", "plain")], -2i64)
            .sample(&[], f64::INFINITY)
            .sample(&[], 0.25);
        assert_eq!(
            text.finish(),
            "# HELP c2c_up Up.\\nTwo \\\\ lines.\n# TYPE c2c_up gauge\nc2c_up 1\n\
             # HELP c2c_things_total Things.\n# TYPE c2c_things_total counter\n\
             c2c_things_total{kind=\"a\\\"b\\\\c\\nd\"} 3\nc2c_things_total{kind=\"plain\"} -2\n\
             c2c_things_total +Inf\nc2c_things_total 0.25\n"
        );
    }

    #[test]
    fn histograms_have_inf_sum_and_count() {
        let snapshot = HistogramSnapshot {
            buckets: vec![(1_000, 1), (500_000, 3)],
            count: 4,
            sum: 2_501_000,
        };
        let mut text = Exposition::new();
        text.family("c2c_batch_seconds", Kind::Histogram, "Batches.")
            .histogram(&[("side", "x")], &snapshot, 1_000_000);
        assert_eq!(
            text.finish(),
            "# HELP c2c_batch_seconds Batches.\n# TYPE c2c_batch_seconds histogram\n\
             c2c_batch_seconds_bucket{side=\"x\",le=\"0.001\"} 1\n\
             c2c_batch_seconds_bucket{side=\"x\",le=\"0.5\"} 3\n\
             c2c_batch_seconds_bucket{side=\"x\",le=\"+Inf\"} 4\n\
             c2c_batch_seconds_sum{side=\"x\"} 2.501\n\
             c2c_batch_seconds_count{side=\"x\"} 4\n"
        );
    }
}
