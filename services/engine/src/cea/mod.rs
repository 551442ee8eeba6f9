//! Change-event application: read the source's change stream from T0 (also while the
//! copy runs), buffer with bounded memory, and apply idempotently to the destination.
//!
//! `reader` → `spill` → `apply` (with `crud` for parallel lanes and `ddl` for barriers);
//! `event` is the typed change event they pass along.

pub mod apply;
mod codec;
mod crud;
mod ddl;
pub mod event;
mod lanes;
pub mod reader;
pub mod spill;

pub use apply::{Applier, ApplierOptions};
pub use event::{Event, EventKind};
pub use reader::{Reader, StartAt};
pub use spill::{Spill, SpillConfig};
