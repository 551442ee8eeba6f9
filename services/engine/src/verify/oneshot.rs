//! `c2c verify`: the verifier's comparison as a one-shot pass over any two clusters
//! (after a migration, or between two copies made some other way). Same canonical
//! hashing, same `_id` ranges, same confirmation by re-fetching, exact index comparison;
//! nothing is kept per document, so memory stays flat whatever the size.
//!
//! Collections are split into segments (sampled `_id` bounds, as the copy plans its
//! partitions) and segments are verified in parallel; each segment streams the source,
//! cut into ranges, and hashes the same ranges on the destination.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use mongodb::Client;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use super::clock::AppliedClock;
use super::confirm::{confirm, Verdict};
use super::namespaces::{check_namespace, extra_on_destination, IndexRule};
use super::scan::{differences, hash_and_cut, hash_range, Bounds};
use super::{Mismatch, MAX_REPORTED};
use crate::discovery::{self, SourceNamespace};
use crate::error::{Result, Side};
use crate::filter::NamespaceFilter;
use crate::metadata::NamespaceKind;
use crate::partition;

/// Segment size the one-shot pass aims at.
const SEGMENT_BYTES: u64 = 32 << 20;

/// Counters a caller can watch while the pass runs.
#[derive(Debug, Default)]
pub struct OneShotProgress {
    pub namespaces: AtomicU64,
    pub segments_total: AtomicU64,
    pub segments_done: AtomicU64,
    pub source_documents: AtomicU64,
    pub destination_documents: AtomicU64,
    pub estimated_documents: AtomicU64,
}

#[derive(Debug, Default)]
pub struct OneShotReport {
    pub namespaces: u64,
    pub source_documents: u64,
    pub destination_documents: u64,
    /// Up to [`MAX_REPORTED`].
    pub mismatches: Vec<Mismatch>,
    pub mismatch_count: u64,
}

impl OneShotReport {
    pub fn is_equal(&self) -> bool {
        self.mismatch_count == 0
    }
}

#[derive(Default)]
struct Found {
    kept: Vec<Mismatch>,
    count: u64,
}

impl Found {
    fn add(&mut self, mismatches: Vec<Mismatch>) {
        for mismatch in mismatches {
            self.count += 1;
            if self.kept.len() < MAX_REPORTED {
                self.kept.push(mismatch);
            }
        }
    }
}

/// Compares everything `filter` selects on both clusters; `concurrency` segments at once.
pub async fn verify_clusters(
    source: &Client,
    destination: &Client,
    filter: &NamespaceFilter,
    concurrency: usize,
    progress: Arc<OneShotProgress>,
    cancel: CancellationToken,
) -> Result<OneShotReport> {
    let found = Mutex::new(Found::default());
    let extra = extra_on_destination(source, destination, filter).await?;
    found.lock().add(extra);
    let namespaces = discovery::discover(source, filter).await?;
    progress
        .namespaces
        .store(namespaces.len() as u64, Ordering::Relaxed);
    progress.estimated_documents.store(
        namespaces.iter().map(|n| n.estimated_documents).sum(),
        Ordering::Relaxed,
    );
    let mut segments: Vec<(SourceNamespace, Bounds)> = Vec::new();
    for namespace in &namespaces {
        let differences =
            check_namespace(source, destination, &namespace.ns, IndexRule::Restored).await?;
        found.lock().add(differences);
        if namespace.kind != NamespaceKind::Collection {
            continue;
        }
        for planned in partition::plan(source, namespace, SEGMENT_BYTES).await? {
            segments.push((
                namespace.clone(),
                Bounds {
                    min: planned.min,
                    max: planned.max,
                },
            ));
        }
    }
    progress
        .segments_total
        .store(segments.len() as u64, Ordering::Relaxed);
    let results: Vec<Result<()>> = stream::iter(segments)
        .map(|(namespace, bounds)| {
            let (found, progress, cancel) = (&found, &progress, &cancel);
            async move {
                let mismatches =
                    verify_segment(source, destination, &namespace, &bounds, progress, cancel)
                        .await?;
                found.lock().add(mismatches);
                progress.segments_done.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    for result in results {
        result?;
    }
    let found = found.into_inner();
    Ok(OneShotReport {
        namespaces: namespaces.len() as u64,
        source_documents: progress.source_documents.load(Ordering::Relaxed),
        destination_documents: progress.destination_documents.load(Ordering::Relaxed),
        mismatches: found.kept,
        mismatch_count: found.count,
    })
}

async fn verify_segment(
    source: &Client,
    destination: &Client,
    namespace: &SourceNamespace,
    bounds: &Bounds,
    progress: &OneShotProgress,
    cancel: &CancellationToken,
) -> Result<Vec<Mismatch>> {
    let ns = &namespace.ns;
    let ranges = hash_and_cut(source, ns, bounds, || {
        progress.source_documents.fetch_add(1, Ordering::Relaxed);
    })
    .await?;
    let mut mismatches = Vec::new();
    for range in ranges {
        let on_destination = hash_range(destination, ns, &range.bounds, Side::Destination).await?;
        progress
            .destination_documents
            .fetch_add(on_destination.documents, Ordering::Relaxed);
        if on_destination == range.hash {
            continue;
        }
        let candidates = differences(source, destination, ns, &range.bounds).await?;
        let kinds: Vec<_> = candidates.iter().map(|(_, kind)| *kind).collect();
        let ids = candidates.into_iter().map(|(id, _)| id).collect();
        // Nothing applies changes here: re-fetching only rules out a write in flight.
        let verdicts = confirm(source, destination, ns, ids, &AppliedClock::Frozen, cancel).await?;
        for ((id, verdict), first_seen) in verdicts.into_iter().zip(kinds) {
            let (kind, detail) = match verdict {
                Verdict::Equal => continue,
                Verdict::Mismatch(kind) => (kind, String::new()),
                // Still changing after every round: report what the merge saw.
                Verdict::Unsettled => (first_seen, "kept changing while verified".to_string()),
            };
            mismatches.push(Mismatch {
                ns: ns.clone(),
                id: Some(id),
                kind: kind.as_str().to_string(),
                detail,
            });
        }
    }
    Ok(mismatches)
}
