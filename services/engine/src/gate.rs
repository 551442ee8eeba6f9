//! The write gate: scale-out fencing on the data plane.
//!
//! A worker may only write while it holds its etcd lease; once the lease can no longer
//! be confirmed (measured on the worker's own monotonic clock) its share may already run
//! on another worker. A process stopped (SIGSTOP, a long GC-like pause, a partition)
//! past its lease must not write even one more batch when it wakes, before any
//! background task noticed: so every copy batch and every applied batch checks the gate
//! right before writing, rather than relying on cancellation alone.

use std::fmt;
use std::sync::Arc;

use crate::error::{EngineError, Result};

type Check = Arc<dyn Fn() -> bool + Send + Sync>;

/// Open unless built with a check that says otherwise.
#[derive(Clone, Default)]
pub struct WriteGate {
    check: Option<Check>,
}

impl WriteGate {
    /// A gate that is open while `is_open()` is true.
    pub fn new(is_open: impl Fn() -> bool + Send + Sync + 'static) -> WriteGate {
        WriteGate {
            check: Some(Arc::new(is_open)),
        }
    }

    pub fn is_open(&self) -> bool {
        self.check.as_ref().is_none_or(|check| check())
    }

    /// `Err(EngineError::Fenced)` once closed: the caller stops without writing.
    pub fn check(&self) -> Result<()> {
        if self.is_open() {
            Ok(())
        } else {
            Err(EngineError::Fenced(
                "this worker's lease expired, so its share may run elsewhere; it stopped writing"
                    .into(),
            ))
        }
    }
}

impl fmt::Debug for WriteGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGate")
            .field("open", &self.is_open())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[test]
    fn closes_when_the_check_says_so() {
        let lease = Arc::new(AtomicBool::new(true));
        let gate = WriteGate::new({
            let lease = lease.clone();
            move || lease.load(Ordering::Relaxed)
        });
        assert!(gate.check().is_ok());
        lease.store(false, Ordering::Relaxed);
        assert!(matches!(gate.check(), Err(EngineError::Fenced(_))));
        assert!(WriteGate::default().check().is_ok());
    }
}
