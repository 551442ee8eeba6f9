//! Change-event application: read the source's change stream from T0 (also while the
//! copy runs), buffer with bounded memory, and apply idempotently to the destination.

pub mod apply;
pub mod event;
pub mod reader;
pub mod spill;
