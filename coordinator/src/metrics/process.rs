//! What every process exports about itself: `c2c_build_info` and the engine's
//! process-wide counters (zero where the process applies nothing, e.g. a follower).

use c2c_engine::metrics::{EventType, RetryKind, ENGINE};

use super::text::{Exposition, Kind};

/// `c2c_build_info{version, id} 1`: the process id is a label here only, not on every
/// metric (Prometheus' `instance` tells processes apart).
pub fn build_info(text: &mut Exposition, id: &str) {
    text.family(
        "c2c_build_info",
        Kind::Gauge,
        "Always 1: the c2c version and this process's id (--id).",
    )
    .sample(&[("version", env!("CARGO_PKG_VERSION")), ("id", id)], 1u64);
}

pub fn engine(text: &mut Exposition) {
    let mut applied = text.family(
        "c2c_applier_events_total",
        Kind::Counter,
        "Change events this process applied to the destination, by operationType.",
    );
    for event_type in EventType::ALL {
        applied.sample(&[("type", event_type.as_str())], ENGINE.applied(event_type));
    }
    text.family(
        "c2c_applier_batch_events",
        Kind::Histogram,
        "Change events per batch this process applied (high-water marks excluded).",
    )
    .histogram(&[], &ENGINE.apply_batch_events.snapshot(), 1);
    text.family(
        "c2c_applier_batch_duration_seconds",
        Kind::Histogram,
        "Time this process took to apply and checkpoint one batch of change events.",
    )
    .histogram(&[], &ENGINE.apply_batch_micros.snapshot(), 1_000_000);
    let mut retries = text.family(
        "c2c_retries_total",
        Kind::Counter,
        "Calls to a cluster this process repeated after a transient error, by what failed.",
    );
    for kind in RetryKind::ALL {
        retries.sample(&[("kind", kind.as_str())], ENGINE.retries(kind));
    }
    let mut exhausted = text.family(
        "c2c_retries_exhausted_total",
        Kind::Counter,
        "Calls to a cluster this process gave up on after its last attempt failed transiently.",
    );
    for kind in RetryKind::ALL {
        exhausted.sample(&[("kind", kind.as_str())], ENGINE.retries_exhausted(kind));
    }
}
