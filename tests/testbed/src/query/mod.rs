//! The query language: dotted paths, the filter matcher (with type bracketing),
//! aggregation expressions, projections and sort orders.

pub mod expr;
pub mod matcher;
pub mod path;
pub mod projection;
pub mod sort;
