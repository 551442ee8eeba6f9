//! Update documents: operators, replacements and pipelines, applied as mongod 5.0+ does.

pub mod diff;
