//! mongod's `BSONElement::toString` / `BSONObj::toString` rendering, which appears verbatim in
//! update error messages ("Cannot create field 'b' in element {a: 1}"). Tools sometimes match
//! on these strings, so the shape (spaces, quotes, `.0` on whole doubles) follows mongod.

use bson::{Bson, Document};

/// `name: value`, as `BSONElement::toString(true)` prints it.
pub(crate) fn element(name: &str, value: &Bson) -> String {
    format!("{name}: {}", value_str(value))
}

/// `{ a: 1, b: "x" }`; an empty document prints as `{}`.
pub(crate) fn document(doc: &Document) -> String {
    if doc.is_empty() {
        return "{}".to_string();
    }
    let parts: Vec<String> = doc.iter().map(|(k, v)| element(k, v)).collect();
    format!("{{ {} }}", parts.join(", "))
}

pub(crate) fn value_str(value: &Bson) -> String {
    match value {
        Bson::Double(d) => double_str(*d),
        Bson::Int32(i) => i.to_string(),
        Bson::Int64(i) => i.to_string(),
        Bson::Decimal128(d) => format!("NumberDecimal(\"{d}\")"),
        Bson::String(s) => format!("\"{s}\""),
        Bson::Symbol(s) => format!("\"{s}\""),
        Bson::Boolean(b) => b.to_string(),
        Bson::Null => "null".to_string(),
        Bson::Undefined => "undefined".to_string(),
        Bson::MinKey => "MinKey".to_string(),
        Bson::MaxKey => "MaxKey".to_string(),
        Bson::ObjectId(o) => format!("ObjectId('{o}')"),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Timestamp(t) => format!("Timestamp({}, {})", t.time, t.increment),
        Bson::Document(d) => document(d),
        Bson::Array(a) => {
            if a.is_empty() {
                "[]".to_string()
            } else {
                let parts: Vec<String> = a.iter().map(value_str).collect();
                format!("[ {} ]", parts.join(", "))
            }
        }
        Bson::RegularExpression(r) => format!("/{}/{}", r.pattern, r.options),
        Bson::JavaScriptCode(c) => c.clone(),
        Bson::JavaScriptCodeWithScope(c) => c.code.clone(),
        Bson::Binary(b) => format!("BinData({}, {})", u8::from(b.subtype), hex(&b.bytes)),
        Bson::DbPointer(_) => "DBRef(...)".to_string(),
    }
}

fn double_str(d: f64) -> String {
    if d.is_nan() {
        "nan.0".to_string()
    } else if d.is_infinite() {
        if d > 0.0 { "inf.0" } else { "-inf.0" }.to_string()
    } else if d == d.trunc() && d.abs() < 1e16 {
        // mongod prints whole doubles with a trailing ".0" so they differ from ints.
        format!("{d:.1}")
    } else {
        format!("{d}")
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// mongod's `typeName()` for a value, used in TypeMismatch messages.
pub(crate) fn type_name(value: &Bson) -> &'static str {
    crate::query::expr::type_name(Some(value))
}
