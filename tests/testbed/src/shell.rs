//! Values printed the way mongod prints them in error messages (`{ _id: 1 }`,
//! `ObjectId('…')`, `"text"`), so error strings match what tools parse.

use bson::Bson;

pub fn format_value(value: &Bson) -> String {
    match value {
        Bson::String(s) => format!("{s:?}"),
        Bson::ObjectId(oid) => format!("ObjectId('{oid}')"),
        Bson::Int64(v) => v.to_string(),
        Bson::Int32(v) => v.to_string(),
        Bson::Double(v) => {
            if v.fract() == 0.0 && v.is_finite() {
                format!("{v:.1}")
            } else {
                v.to_string()
            }
        }
        Bson::Decimal128(d) => format!("{d}"),
        Bson::Null => "null".into(),
        Bson::Undefined => "undefined".into(),
        Bson::Boolean(b) => b.to_string(),
        Bson::MinKey => "MinKey".into(),
        Bson::MaxKey => "MaxKey".into(),
        Bson::DateTime(d) => format!("new Date({})", d.timestamp_millis()),
        Bson::Timestamp(t) => format!("Timestamp({}, {})", t.time, t.increment),
        Bson::Document(d) => {
            let fields: Vec<String> = d
                .iter()
                .map(|(k, v)| format!("{k}: {}", format_value(v)))
                .collect();
            if fields.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", fields.join(", "))
            }
        }
        Bson::Array(a) => {
            let items: Vec<String> = a.iter().map(format_value).collect();
            format!("[ {} ]", items.join(", "))
        }
        other => other.to_string(),
    }
}
