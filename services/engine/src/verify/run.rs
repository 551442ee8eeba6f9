//! The verifier's loop: one task that owns the range map and drives bounded jobs (scan
//! a segment, check a range, check a namespace) while both clusters' change streams mark
//! ranges dirty. Jobs only read the clusters and run as their own tasks; every change
//! to the map and the store happens here, in order, so nothing races.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::oid::ObjectId;
use bson::{Document, Timestamp};
use mongodb::Client;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::clock::{destination_time, source_time, AppliedClock};
use super::confirm::{confirm, Verdict};
use super::namespaces::{check_namespace, extra_on_destination, IndexRule};
use super::ranges::{LowerBound, Marked, NamespaceRanges, Range, RangeMap, Segment, Side2};
use super::scan::{differences, hash_and_cut, hash_range, Bounds, HashedRange, RangeHash};
use super::store::{RangeState, SegmentRecord, StreamPositions, VerifierStore};
use super::{Mismatch, VerifierPhase};
use crate::cea::event::{token_time, Event, EventKind};
use crate::cea::reader::{Reader, StartAt};
use crate::cea::spill::{Spill, SpillConfig};
use crate::error::{EngineError, Result, Side};
use crate::filter::NamespaceFilter;
use crate::metadata::{Metadata, NamespaceKind};
use crate::namespace::Namespace;
use crate::options::BuildIndexes;
use crate::progress::Progress;

/// How often dirty marks and stream positions are persisted and the status refreshed.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// How often the streams' buffered events are taken.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// RAM each verifier stream may buffer before spilling to disk.
const VERIFIER_SPILL_MEMORY: usize = 8 << 20;
/// A range whose documents kept changing is checked again after this long.
const UNSETTLED_RETRY: Duration = Duration::from_secs(2);
/// A newly dirty range waits this long before it is hashed again, so the changes of a
/// busy range are verified together rather than one re-hash per change.
const DIRTY_DELAY: Duration = Duration::from_millis(500);
/// A namespace-level difference must be seen this many times in a row.
const NAMESPACE_STRIKES: u32 = 3;
/// After a mismatch, how long the verifier goes on collecting others before it fails.
const FAILURE_GRACE: Duration = Duration::from_secs(20);

/// Everything the verifier needs; clusters are the current direction's.
#[derive(Clone)]
pub struct VerifierSetup {
    pub source: Client,
    pub destination: Client,
    /// Where `__c2c_internal` lives (the request's destination).
    pub metadata: Metadata,
    pub store: VerifierStore,
    pub filter: NamespaceFilter,
    pub build_indexes: BuildIndexes,
    pub reversed: bool,
    pub applied: AppliedClock,
    /// Its `verification` is updated.
    pub progress: Arc<Progress>,
    pub spill_dir: PathBuf,
    /// Jobs at once (reads on both clusters).
    pub concurrency: usize,
}

/// Cheap to clone: every job runs as its own task with a clone.
#[derive(Clone)]
pub struct Verifier {
    setup: Arc<VerifierSetup>,
}

enum Job {
    Scan {
        ns: Namespace,
        epoch: u64,
        segment: usize,
        bounds: Bounds,
    },
    Check {
        ns: Namespace,
        epoch: u64,
        key: LowerBound,
        generation: u64,
        bounds: Bounds,
        /// A fresh range's source hash and when it was read (else the source is read).
        known: Option<(RangeHash, Timestamp)>,
        initial: bool,
    },
    Namespace {
        ns: Namespace,
        epoch: u64,
    },
    ExtraNamespaces,
}

/// Which job a result belongs to, so a failed read can be tried again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum JobKey {
    Scan(Namespace, usize),
    Check(Namespace, Option<String>),
    Namespace(Namespace),
    Extra,
}

impl JobKey {
    fn of(job: &Job) -> JobKey {
        match job {
            Job::Scan { ns, segment, .. } => JobKey::Scan(ns.clone(), *segment),
            Job::Check { ns, key, .. } => {
                JobKey::Check(ns.clone(), key.0.as_ref().map(|id| format!("{id:?}")))
            }
            Job::Namespace { ns, .. } => JobKey::Namespace(ns.clone()),
            Job::ExtraNamespaces => JobKey::Extra,
        }
    }
}

/// Consecutive failed reads of one job before the verifier gives up.
const MAX_JOB_FAILURES: u32 = 5;

enum Done {
    Scanned {
        ns: Namespace,
        epoch: u64,
        segment: usize,
        ranges: Vec<HashedRange>,
        at: Timestamp,
    },
    Checked {
        ns: Namespace,
        epoch: u64,
        key: LowerBound,
        generation: u64,
        outcome: CheckOutcome,
    },
    NamespaceChecked {
        epoch: u64,
        ns: Namespace,
        mismatches: Vec<Mismatch>,
    },
    ExtraChecked(Vec<Mismatch>),
}

struct CheckOutcome {
    /// When the source was read: changes before it are verified by this check.
    source_read_at: Timestamp,
    ranges: Vec<(HashedRange, RangeHash)>,
    mismatches: Vec<Mismatch>,
    unsettled: bool,
    initial: bool,
}

/// One side's verifier stream.
struct Stream {
    spill: Arc<Spill>,
    task: JoinHandle<Result<()>>,
    progress: Arc<Progress>,
    token: Option<Document>,
    watermark: Timestamp,
    side: Side2,
}

/// The loop's state.
struct Work {
    map: RangeMap,
    /// Consecutive failed reads per job.
    job_failures: HashMap<JobKey, u32>,
    /// Bumped when DDL resets a namespace: results of older jobs are dropped.
    epochs: HashMap<Namespace, u64>,
    /// Namespaces (collections and views) whose options and indexes need checking.
    namespace_checks: VecDeque<Namespace>,
    namespaces_in_flight: BTreeSet<Namespace>,
    extra_check_pending: bool,
    extra_in_flight: bool,
    /// Ranges marked dirty since the last checkpoint.
    unsaved_dirty: Vec<ObjectId>,
    /// Source hash and read time of ranges scanned but not checked yet.
    fresh: HashMap<ObjectId, Timestamp>,
    not_before: HashMap<ObjectId, Instant>,
    collections: BTreeSet<Namespace>,
    /// When the first mismatch was confirmed.
    failed_at: Option<Instant>,
    segment_seq: u64,
}

const ZERO: Timestamp = Timestamp {
    time: 0,
    increment: 0,
};

impl Verifier {
    pub fn new(setup: VerifierSetup) -> Verifier {
        Verifier {
            setup: Arc::new(setup),
        }
    }

    /// Verifies until cancelled (`EngineError::Cancelled`) or a confirmed mismatch
    /// (`EngineError::Fatal` naming every difference).
    pub async fn run(&self, cancel: CancellationToken) -> Result<()> {
        self.drive(cancel, None).await
    }

    /// Commit's final pass, with the source frozen: returns once every change up to now
    /// on both clusters is verified and every range is clean.
    pub async fn finish(&self, cancel: CancellationToken) -> Result<()> {
        let targets = (
            source_time(&self.setup.source).await?,
            destination_time(&self.setup.destination).await?,
        );
        self.drive(cancel, Some(targets)).await
    }

    fn status(&self) -> &super::VerificationStatus {
        &self.setup.progress.verification
    }

    async fn drive(
        &self,
        cancel: CancellationToken,
        finish: Option<(Timestamp, Timestamp)>,
    ) -> Result<()> {
        let store = &self.setup.store;
        let positions = match store.load_positions().await? {
            Some(positions) if positions.reversed == self.setup.reversed => positions,
            _ => self.fresh_start().await?,
        };
        self.ensure_segments().await?;
        let mut work = self.load_work().await?;
        if work.failed_at.is_some() {
            return Err(self.failure());
        }
        let run = cancel.child_token();
        let _stop_streams = run.clone().drop_guard();
        let marks = if finish.is_some() {
            Duration::ZERO
        } else {
            Duration::from_secs(1)
        };
        let mut streams = [
            self.open_stream(Side2::Source, &positions, marks, &run)?,
            self.open_stream(Side2::Destination, &positions, marks, &run)?,
        ];
        self.status().set_phase(VerifierPhase::InitialHashing);
        tracing::info!(
            final_pass = finish.is_some(),
            collections = work.collections.len(),
            "verifier started"
        );
        // Jobs are tasks, not futures this loop polls: while the loop awaits a write of
        // its own, an unpolled job can hold what that write waits for. The driver's
        // session pool is a tokio mutex that hands itself to a queued waiter, and a
        // waiting job nobody polled kept it forever: the verifier, and the change
        // events applied through the same client, stopped for good.
        let mut jobs: JoinSet<(JobKey, Result<Done>)> = JoinSet::new();
        let mut checkpoint = tokio::time::interval(CHECKPOINT_EVERY);
        let mut poll = tokio::time::interval(POLL_EVERY);
        let concurrency = self.setup.concurrency.max(1);
        let outcome = loop {
            let grace_over = work
                .failed_at
                .is_some_and(|at| at.elapsed() > FAILURE_GRACE);
            if !grace_over {
                while jobs.len() < concurrency {
                    let Some(job) = self.next_job(&mut work) else {
                        break;
                    };
                    let key = JobKey::of(&job);
                    let (verifier, token) = (self.clone(), run.clone());
                    jobs.spawn(
                        async move { (key, verifier.execute(job, token).await) }
                            .instrument(tracing::Span::current()),
                    );
                }
            }
            if work.failed_at.is_some() && jobs.is_empty() && (grace_over || self.idle(&work)) {
                break Err(self.failure());
            }
            if let Some((source_target, destination_target)) = finish {
                if jobs.is_empty()
                    && self.idle(&work)
                    && streams[0].watermark >= source_target
                    && streams[1].watermark >= destination_target
                {
                    self.save_checkpoint(&mut work, &streams).await?;
                    self.refresh_status(&work, &streams);
                    break Ok(());
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break Err(EngineError::Cancelled),
                Some(joined) = jobs.join_next(), if !jobs.is_empty() => {
                    let (key, done) = match joined {
                        Ok(finished) => finished,
                        Err(error) => break Err(EngineError::Fatal(format!(
                            "a verifier job ended abnormally: {error}"
                        ))),
                    };
                    match done {
                        Ok(done) => {
                            work.job_failures.remove(&key);
                            self.apply(done, &mut work).await?
                        }
                        Err(EngineError::Cancelled) => break Err(EngineError::Cancelled),
                        // A read that failed (a collection dropped or renamed under the
                        // cursor, a killed cursor, a network error after the driver's
                        // retries) is tried again; DDL events reset what changed.
                        Err(error @ EngineError::Mongo { .. }) => {
                            if let Err(error) = self.retry_later(key, error, &mut work) {
                                break Err(error);
                            }
                        }
                        Err(error) => break Err(error),
                    }
                }
                _ = poll.tick() => {
                    for stream in streams.iter_mut() {
                        if stream.task.is_finished() {
                            let ended = (&mut stream.task).await;
                            return Err(match ended {
                                Ok(Err(error)) => error,
                                _ => EngineError::Fatal("a verifier change stream stopped".into()),
                            });
                        }
                        self.take_events(stream, &mut work).await?;
                    }
                }
                _ = checkpoint.tick() => {
                    self.save_checkpoint(&mut work, &streams).await?;
                    self.refresh_status(&work, &streams);
                }
            }
        };
        run.cancel();
        // Jobs only read; whatever they were reading is read again on the next run.
        jobs.shutdown().await;
        for stream in &mut streams {
            let _ = (&mut stream.task).await;
        }
        outcome
    }

    /// Puts a job whose read failed back to be done again (a little later), or gives up
    /// after [`MAX_JOB_FAILURES`] failures in a row.
    fn retry_later(&self, key: JobKey, error: EngineError, work: &mut Work) -> Result<()> {
        let failures = work.job_failures.entry(key.clone()).or_insert(0);
        *failures += 1;
        if *failures > MAX_JOB_FAILURES {
            return Err(error);
        }
        tracing::warn!(job = ?key, error = %error, attempt = *failures, "verifier read failed; trying again");
        let later = Instant::now() + Duration::from_secs(u64::from(*failures));
        match key {
            JobKey::Scan(ns, segment) => {
                if let Some(scanned) = work
                    .map
                    .namespaces
                    .get_mut(&ns)
                    .and_then(|entry| entry.segments.get_mut(segment))
                {
                    scanned.scanning = false;
                }
            }
            JobKey::Check(ns, min) => {
                if let Some(entry) = work.map.namespaces.get_mut(&ns) {
                    let failed = entry.ranges.values_mut().find(|range| {
                        range.in_flight
                            && range.bounds.min.as_ref().map(|id| format!("{id:?}")) == min
                    });
                    if let Some(range) = failed {
                        range.in_flight = false;
                        work.not_before.insert(range.id, later);
                    }
                }
            }
            JobKey::Namespace(ns) => {
                work.namespaces_in_flight.remove(&ns);
                if !work.namespace_checks.contains(&ns) {
                    work.namespace_checks.push_back(ns);
                }
            }
            JobKey::Extra => {
                work.extra_in_flight = false;
                work.extra_check_pending = true;
            }
        }
        Ok(())
    }

    /// Nothing left to scan or check (the streams may still bring marks).
    fn idle(&self, work: &Work) -> bool {
        work.map.settled()
            && work.namespace_checks.is_empty()
            && work.namespaces_in_flight.is_empty()
            && !work.extra_check_pending
            && !work.extra_in_flight
    }

    fn failure(&self) -> EngineError {
        let text = format!(
            "verification found {} difference(s) between source and destination: {}",
            self.status().mismatch_count.load(Ordering::Relaxed),
            self.status().describe_mismatches()
        );
        tracing::error!(problem = %text, "verification failed");
        EngineError::Fatal(text)
    }

    /// A new verification of the current direction: everything forgotten, streams from
    /// now.
    async fn fresh_start(&self) -> Result<StreamPositions> {
        let store = &self.setup.store;
        store.clear().await?;
        // Taken before anything is read: every later change is in the streams.
        let source_start = source_time(&self.setup.source).await?;
        let destination_start = destination_time(&self.setup.destination).await?;
        let positions = StreamPositions {
            reversed: self.setup.reversed,
            source_token: None,
            destination_token: None,
            source_start: Some(source_start),
            destination_start: Some(destination_start),
        };
        store.save_positions(&positions).await?;
        Ok(positions)
    }

    /// Segments (the copy's partitions, else the whole collection) for every verified
    /// collection that has none yet: all of them on a fresh start, and scaled out the
    /// databases a stream shard gained.
    async fn ensure_segments(&self) -> Result<()> {
        let store = &self.setup.store;
        let existing: BTreeSet<Namespace> = store
            .load_segments()
            .await?
            .into_iter()
            .map(|segment| segment.ns)
            .collect();
        let partitions = self.setup.metadata.load_partitions().await?;
        for record in self.setup.metadata.load_namespaces().await? {
            if record.kind != NamespaceKind::Collection
                || !self.setup.filter.matches(&record.ns)
                || existing.contains(&record.ns)
            {
                continue;
            }
            let mut bounds: Vec<Bounds> = partitions
                .iter()
                .filter(|partition| partition.ns == record.ns)
                .map(|partition| Bounds {
                    min: partition.min.clone(),
                    max: partition.max.clone(),
                })
                .collect();
            if bounds.is_empty() {
                bounds.push(Bounds::ALL);
            }
            for (index, bounds) in bounds.into_iter().enumerate() {
                store
                    .save_segment(&SegmentRecord {
                        id: format!("{}#{index:06}", record.ns),
                        ns: record.ns.clone(),
                        bounds,
                        done: false,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn load_work(&self) -> Result<Work> {
        let store = &self.setup.store;
        let mut map = RangeMap::default();
        let mut collections = BTreeSet::new();
        let mut namespace_checks = VecDeque::new();
        let mut source_estimate = 0u64;
        let filter = &self.setup.filter;
        for record in self.setup.metadata.load_namespaces().await? {
            if !filter.matches(&record.ns) {
                continue;
            }
            namespace_checks.push_back(record.ns.clone());
            if record.kind == NamespaceKind::Collection {
                collections.insert(record.ns.clone());
                map.namespaces.entry(record.ns.clone()).or_default();
                source_estimate += record.estimated_documents;
            }
        }
        // Scaled out, a shard that lost a database keeps its old records: not ours now.
        for segment in store.load_segments().await? {
            if !filter.matches(&segment.ns) {
                continue;
            }
            collections.insert(segment.ns.clone());
            map.namespaces
                .entry(segment.ns.clone())
                .or_default()
                .segments
                .push(Segment {
                    record: segment,
                    scanning: false,
                    pending: Vec::new(),
                    overflowed: false,
                });
        }
        for record in store.load_ranges().await? {
            if !filter.matches(&record.ns) {
                continue;
            }
            let ns = record.ns.clone();
            let range = Range::from_record(record);
            map.namespaces
                .entry(ns)
                .or_default()
                .ranges
                .insert(LowerBound(range.bounds.min.clone()), range);
        }
        let status = self.status();
        status.enabled.store(true, Ordering::Relaxed);
        status
            .source
            .estimated_documents
            .store(source_estimate, Ordering::Relaxed);
        status
            .destination
            .estimated_documents
            .store(source_estimate, Ordering::Relaxed);
        status
            .total_collections
            .store(collections.len() as u64, Ordering::Relaxed);
        let hashed: u64 = map
            .namespaces
            .values()
            .flat_map(|entry| entry.ranges.values())
            .map(|range| range.source.documents)
            .sum();
        status
            .source
            .hashed_documents
            .store(hashed, Ordering::Relaxed);
        let hashed: u64 = map
            .namespaces
            .values()
            .flat_map(|entry| entry.ranges.values())
            .filter_map(|range| range.destination.map(|hash| hash.documents))
            .sum();
        status
            .destination
            .hashed_documents
            .store(hashed, Ordering::Relaxed);
        let mut failed_at = None;
        for mismatch in store.load_mismatches().await? {
            let _ = status.record(mismatch);
            failed_at = Some(Instant::now());
        }
        Ok(Work {
            map,
            job_failures: HashMap::new(),
            epochs: HashMap::new(),
            namespace_checks,
            namespaces_in_flight: BTreeSet::new(),
            extra_check_pending: true,
            extra_in_flight: false,
            unsaved_dirty: Vec::new(),
            fresh: HashMap::new(),
            not_before: HashMap::new(),
            collections,
            failed_at,
            segment_seq: 0,
        })
    }

    fn open_stream(
        &self,
        side: Side2,
        positions: &StreamPositions,
        marks: Duration,
        cancel: &CancellationToken,
    ) -> Result<Stream> {
        let (client, token, start, name) = match side {
            Side2::Source => (
                &self.setup.source,
                &positions.source_token,
                positions.source_start,
                "source",
            ),
            Side2::Destination => (
                &self.setup.destination,
                &positions.destination_token,
                positions.destination_start,
                "destination",
            ),
        };
        let start_at = match (token, start) {
            (Some(token), _) => StartAt::After(token.clone()),
            (None, Some(time)) => StartAt::OperationTime(time),
            (None, None) => {
                return Err(EngineError::Metadata(
                    "the verifier's stream positions are missing".into(),
                ))
            }
        };
        let dir = self
            .setup
            .spill_dir
            .join(format!("verifier-{name}-{}", rand::random::<u32>()));
        // The verifier takes what its streams buffered every 100 ms; a little RAM is
        // plenty, and the rest waits on disk (the memory bound holds under bursts).
        let spill = Arc::new(Spill::new(SpillConfig {
            memory_bytes: VERIFIER_SPILL_MEMORY,
            ..SpillConfig::new(dir)
        })?);
        let progress = Arc::new(Progress::default());
        let reader = Reader::new(
            client.clone(),
            self.setup.filter.clone(),
            start_at,
            spill.clone(),
            progress.clone(),
        )
        .mark_every(marks);
        let task = tokio::spawn(reader.run(cancel.clone()));
        Ok(Stream {
            spill,
            task,
            progress,
            token: token.clone(),
            watermark: token
                .as_ref()
                .and_then(token_time)
                .or(start)
                .unwrap_or(ZERO),
            side,
        })
    }

    /// Picks the next job: namespace checks, then ranges to check, then segments.
    fn next_job(&self, work: &mut Work) -> Option<Job> {
        if work.extra_check_pending && !work.extra_in_flight {
            work.extra_check_pending = false;
            work.extra_in_flight = true;
            return Some(Job::ExtraNamespaces);
        }
        if let Some(ns) = work.namespace_checks.pop_front() {
            if work.namespaces_in_flight.contains(&ns) {
                work.namespace_checks.push_back(ns);
            } else {
                work.namespaces_in_flight.insert(ns.clone());
                let epoch = *work.epochs.get(&ns).unwrap_or(&0);
                return Some(Job::Namespace { ns, epoch });
            }
        }
        let now = Instant::now();
        for (ns, entry) in work.map.namespaces.iter_mut() {
            let epoch = *work.epochs.get(ns).unwrap_or(&0);
            for (key, range) in entry.ranges.iter_mut() {
                if !range.needs_check()
                    || work.not_before.get(&range.id).is_some_and(|at| *at > now)
                {
                    continue;
                }
                range.in_flight = true;
                let known = match (range.state, work.fresh.get(&range.id)) {
                    (RangeState::Unchecked, Some(at)) => Some((range.source, *at)),
                    _ => None,
                };
                return Some(Job::Check {
                    ns: ns.clone(),
                    epoch,
                    key: key.clone(),
                    generation: range.generation,
                    bounds: range.bounds.clone(),
                    known,
                    initial: range.state == RangeState::Unchecked,
                });
            }
            for (index, segment) in entry.segments.iter_mut().enumerate() {
                if !segment.record.done && !segment.scanning {
                    segment.scanning = true;
                    return Some(Job::Scan {
                        ns: ns.clone(),
                        epoch,
                        segment: index,
                        bounds: segment.record.bounds.clone(),
                    });
                }
            }
        }
        None
    }

    async fn execute(&self, job: Job, cancel: CancellationToken) -> Result<Done> {
        let setup = &self.setup;
        match job {
            Job::Scan {
                ns,
                epoch,
                segment,
                bounds,
            } => {
                let hashed = &self.status().source.hashed_documents;
                let ranges = hash_and_cut(&setup.source, &ns, &bounds, || {
                    hashed.fetch_add(1, Ordering::Relaxed);
                })
                .await?;
                let at = source_time(&setup.source).await?;
                Ok(Done::Scanned {
                    ns,
                    epoch,
                    segment,
                    ranges,
                    at,
                })
            }
            Job::Check {
                ns,
                epoch,
                key,
                generation,
                bounds,
                known,
                initial,
            } => {
                let outcome = self
                    .check_range(&ns, &bounds, known, initial, &cancel)
                    .await?;
                Ok(Done::Checked {
                    ns,
                    epoch,
                    key,
                    generation,
                    outcome,
                })
            }
            Job::Namespace { ns, epoch } => {
                let mismatches = self
                    .settled_namespace_check(&cancel, |source, destination| {
                        let ns = ns.clone();
                        let rule = IndexRule::DuringSync(setup.build_indexes);
                        async move { check_namespace(&source, &destination, &ns, rule).await }
                    })
                    .await?;
                Ok(Done::NamespaceChecked {
                    epoch,
                    ns,
                    mismatches,
                })
            }
            Job::ExtraNamespaces => {
                let filter = setup.filter.clone();
                let mismatches = self
                    .settled_namespace_check(&cancel, |source, destination| {
                        let filter = filter.clone();
                        async move { extra_on_destination(&source, &destination, &filter).await }
                    })
                    .await?;
                Ok(Done::ExtraChecked(mismatches))
            }
        }
    }

    /// Runs a namespace-level check once everything up to the source's latest write
    /// is applied; a difference counts only when it holds [`NAMESPACE_STRIKES`] times.
    async fn settled_namespace_check<F, Fut>(
        &self,
        cancel: &CancellationToken,
        check: F,
    ) -> Result<Vec<Mismatch>>
    where
        F: Fn(Client, Client) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<Mismatch>>>,
    {
        let mut found = Vec::new();
        for strike in 0..NAMESPACE_STRIKES {
            if strike > 0 {
                tokio::select! {
                    _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                    _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                }
            }
            let at = source_time(&self.setup.source).await?;
            self.setup.applied.wait_for(at, cancel).await?;
            found = check(self.setup.source.clone(), self.setup.destination.clone()).await?;
            if found.is_empty() {
                return Ok(found);
            }
        }
        Ok(found)
    }

    async fn check_range(
        &self,
        ns: &Namespace,
        bounds: &Bounds,
        known: Option<(RangeHash, Timestamp)>,
        initial: bool,
        cancel: &CancellationToken,
    ) -> Result<CheckOutcome> {
        let setup = &self.setup;
        let (ranges, at) = match known {
            Some((hash, at)) => (
                vec![HashedRange {
                    bounds: bounds.clone(),
                    hash,
                }],
                at,
            ),
            None => {
                let ranges = hash_and_cut(&setup.source, ns, bounds, || {}).await?;
                (ranges, source_time(&setup.source).await?)
            }
        };
        setup.applied.wait_for(at, cancel).await?;
        let mut outcome = CheckOutcome {
            source_read_at: at,
            ranges: Vec::with_capacity(ranges.len()),
            mismatches: Vec::new(),
            unsettled: false,
            initial,
        };
        for range in ranges {
            let on_destination =
                hash_range(&setup.destination, ns, &range.bounds, Side::Destination).await?;
            if on_destination != range.hash {
                let found =
                    differences(&setup.source, &setup.destination, ns, &range.bounds).await?;
                if found.is_empty() {
                    // Changed between the two reads; the next check tells.
                    outcome.unsettled = true;
                }
                let kinds: HashMap<String, _> = found
                    .iter()
                    .map(|(id, kind)| (id.to_string(), *kind))
                    .collect();
                let ids = found.into_iter().map(|(id, _)| id).collect();
                let verdicts = confirm(
                    &setup.source,
                    &setup.destination,
                    ns,
                    ids,
                    &setup.applied,
                    cancel,
                )
                .await?;
                for (id, verdict) in verdicts {
                    match verdict {
                        Verdict::Equal => {}
                        Verdict::Unsettled => outcome.unsettled = true,
                        Verdict::Mismatch(kind) => {
                            let seen_as = kinds.get(&id.to_string()).copied().unwrap_or(kind);
                            outcome.mismatches.push(Mismatch {
                                ns: ns.clone(),
                                id: Some(id),
                                kind: kind.as_str().to_string(),
                                detail: if seen_as == kind {
                                    String::new()
                                } else {
                                    format!("first seen as {}", seen_as.as_str())
                                },
                            });
                        }
                    }
                }
            }
            outcome.ranges.push((range, on_destination));
        }
        Ok(outcome)
    }

    async fn apply(&self, done: Done, work: &mut Work) -> Result<()> {
        let store = &self.setup.store;
        match done {
            Done::Scanned {
                ns,
                epoch,
                segment,
                ranges,
                at,
            } => {
                if work.epochs.get(&ns).copied().unwrap_or(0) != epoch {
                    return Ok(());
                }
                let Some(entry) = work.map.namespaces.get_mut(&ns) else {
                    return Ok(());
                };
                for hashed in ranges {
                    let range = Range {
                        id: ObjectId::new(),
                        bounds: hashed.bounds,
                        state: RangeState::Unchecked,
                        source: hashed.hash,
                        destination: None,
                        generation: 0,
                        in_flight: false,
                        source_dirty_at: None,
                        destination_dirty_at: None,
                    };
                    store.save_range(&range.record(&ns)).await?;
                    work.fresh.insert(range.id, at);
                    entry
                        .ranges
                        .insert(LowerBound(range.bounds.min.clone()), range);
                }
                let (pending, overflowed, bounds) = {
                    let scanned = &mut entry.segments[segment];
                    scanned.scanning = false;
                    scanned.record.done = true;
                    store.save_segment(&scanned.record).await?;
                    (
                        std::mem::take(&mut scanned.pending),
                        scanned.overflowed,
                        scanned.record.bounds.clone(),
                    )
                };
                // Changes seen while the segment was read: the new ranges are read again.
                if overflowed {
                    for range in entry.ranges.values_mut() {
                        if let Some(min) = &range.bounds.min {
                            if !bounds.contains(min) {
                                continue;
                            }
                        }
                        range.generation += 1;
                        range.state = RangeState::Dirty;
                        work.unsaved_dirty.push(range.id);
                    }
                } else {
                    for id in pending {
                        if let Some(Marked::NewlyDirty(range)) =
                            work.map.mark(&ns, &id, Side2::Source, at.time)
                        {
                            work.unsaved_dirty.push(range);
                        }
                    }
                }
            }
            Done::Checked {
                ns,
                epoch,
                key,
                generation,
                outcome,
            } => {
                if work.epochs.get(&ns).copied().unwrap_or(0) != epoch {
                    return Ok(());
                }
                let Some(entry) = work.map.namespaces.get_mut(&ns) else {
                    return Ok(());
                };
                let Some(old) = entry.ranges.remove(&key) else {
                    return Ok(());
                };
                work.fresh.remove(&old.id);
                work.not_before.remove(&old.id);
                let touched = old.generation != generation;
                // A range with confirmed mismatches is done: they are reported.
                let settled = !touched && !outcome.unsettled;
                if outcome.initial {
                    let hashed: u64 = outcome.ranges.iter().map(|(_, d)| d.documents).sum();
                    self.status()
                        .destination
                        .hashed_documents
                        .fetch_add(hashed, Ordering::Relaxed);
                }
                for (index, (hashed, on_destination)) in outcome.ranges.into_iter().enumerate() {
                    let range = Range {
                        id: if index == 0 { old.id } else { ObjectId::new() },
                        bounds: hashed.bounds,
                        state: if settled {
                            RangeState::Clean
                        } else {
                            RangeState::Dirty
                        },
                        source: hashed.hash,
                        destination: Some(on_destination),
                        generation: 0,
                        in_flight: false,
                        // Touched during the check: only changes since its read are
                        // unverified (both clocks are close enough for the lag).
                        source_dirty_at: match (settled, touched) {
                            (true, _) => None,
                            (false, true) => Some(outcome.source_read_at.time),
                            (false, false) => old.source_dirty_at,
                        },
                        destination_dirty_at: match (settled, touched) {
                            (true, _) => None,
                            (false, true) => Some(outcome.source_read_at.time),
                            (false, false) => old.destination_dirty_at,
                        },
                    };
                    if touched {
                        work.not_before
                            .insert(range.id, Instant::now() + DIRTY_DELAY);
                    } else if outcome.unsettled {
                        work.not_before
                            .insert(range.id, Instant::now() + UNSETTLED_RETRY);
                    }
                    store.save_range(&range.record(&ns)).await?;
                    entry
                        .ranges
                        .insert(LowerBound(range.bounds.min.clone()), range);
                }
                self.record_mismatches(outcome.mismatches, work).await?;
            }
            Done::NamespaceChecked {
                epoch,
                ns,
                mismatches,
            } => {
                work.namespaces_in_flight.remove(&ns);
                if work.epochs.get(&ns).copied().unwrap_or(0) == epoch {
                    self.record_mismatches(mismatches, work).await?;
                }
            }
            Done::ExtraChecked(mismatches) => {
                work.extra_in_flight = false;
                self.record_mismatches(mismatches, work).await?;
            }
        }
        Ok(())
    }

    async fn record_mismatches(&self, mismatches: Vec<Mismatch>, work: &mut Work) -> Result<()> {
        for mismatch in mismatches {
            if !self.status().record(mismatch.clone()) {
                continue;
            }
            tracing::error!(mismatch = %mismatch, "verification mismatch");
            self.setup.store.save_mismatch(&mismatch).await?;
            work.failed_at.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Takes what a stream buffered: CRUD marks ranges dirty, DDL resets namespaces.
    async fn take_events(&self, stream: &mut Stream, work: &mut Work) -> Result<()> {
        loop {
            let batch = stream.spill.pop_batch(1000).await?;
            if batch.is_empty() {
                return Ok(());
            }
            for event in batch {
                self.take_event(&event, stream.side, work).await?;
                stream.token = Some(event.token);
                stream.watermark = stream.watermark.max(event.cluster_time);
            }
        }
    }

    async fn take_event(&self, event: &Event, side: Side2, work: &mut Work) -> Result<()> {
        if let (Some(ns), Some(id)) = (event.kind.crud_ns(), event.kind.document_id()) {
            if let Some(Marked::NewlyDirty(range)) =
                work.map.mark(ns, id, side, event.cluster_time.time)
            {
                work.unsaved_dirty.push(range);
                work.not_before
                    .entry(range)
                    .or_insert_with(|| Instant::now() + DIRTY_DELAY);
            }
            return Ok(());
        }
        let affected: Vec<Namespace> = match &event.kind {
            EventKind::Create { ns, .. }
            | EventKind::Drop { ns }
            | EventKind::CreateIndexes { ns, .. }
            | EventKind::DropIndexes { ns, .. }
            | EventKind::Modify { ns, .. } => vec![ns.clone()],
            EventKind::Rename { from, to, .. } => vec![from.clone(), to.clone()],
            EventKind::DropDatabase { db } => work
                .collections
                .iter()
                .filter(|ns| &ns.db == db)
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        let index_only = matches!(
            event.kind,
            EventKind::CreateIndexes { .. } | EventKind::DropIndexes { .. }
        );
        for ns in affected {
            if !self.setup.filter.matches(&ns) {
                continue;
            }
            if !work.namespace_checks.contains(&ns) {
                work.namespace_checks.push_back(ns.clone());
            }
            // Index changes leave the documents alone; anything else scans again.
            if !index_only {
                self.reset_namespace(&ns, work).await?;
            }
        }
        Ok(())
    }

    /// Forgets a namespace's ranges and scans it again whole (after DDL changed it).
    async fn reset_namespace(&self, ns: &Namespace, work: &mut Work) -> Result<()> {
        tracing::info!(namespace = %ns, "verifier re-scans a namespace after DDL");
        *work.epochs.entry(ns.clone()).or_insert(0) += 1;
        self.setup.store.forget_namespace(ns).await?;
        work.segment_seq += 1;
        let segment = SegmentRecord {
            id: format!("{ns}#r{:06}", work.segment_seq),
            ns: ns.clone(),
            bounds: Bounds::ALL,
            done: false,
        };
        self.setup.store.save_segment(&segment).await?;
        if let Some(old) = work.map.namespaces.get(ns) {
            for range in old.ranges.values() {
                work.fresh.remove(&range.id);
                work.not_before.remove(&range.id);
            }
        }
        work.map.namespaces.insert(
            ns.clone(),
            NamespaceRanges {
                ranges: Default::default(),
                segments: vec![Segment {
                    record: segment,
                    scanning: false,
                    pending: Vec::new(),
                    overflowed: false,
                }],
            },
        );
        work.collections.insert(ns.clone());
        Ok(())
    }

    /// Dirty marks first, then the positions past their events.
    async fn save_checkpoint(&self, work: &mut Work, streams: &[Stream; 2]) -> Result<()> {
        let store = &self.setup.store;
        if !work.unsaved_dirty.is_empty() {
            store.mark_dirty(&work.unsaved_dirty).await?;
            work.unsaved_dirty.clear();
        }
        let mut positions = store.load_positions().await?.unwrap_or_default();
        positions.reversed = self.setup.reversed;
        if streams[0].token.is_some() {
            positions.source_token = streams[0].token.clone();
        }
        if streams[1].token.is_some() {
            positions.destination_token = streams[1].token.clone();
        }
        store.save_positions(&positions).await
    }

    fn refresh_status(&self, work: &Work, streams: &[Stream; 2]) {
        let status = self.status();
        let (source_dirty, destination_dirty) = work.map.oldest_dirty();
        for (stream, dirty, side) in [
            (&streams[0], source_dirty, &status.source),
            (&streams[1], destination_dirty, &status.destination),
        ] {
            let now = stream.progress.source_latest_secs.load(Ordering::Relaxed);
            let behind = dirty.map_or(stream.watermark.time, |at| at.min(stream.watermark.time));
            let lag = if now == 0 || behind == 0 {
                0
            } else {
                (now - i64::from(behind)).max(0)
            };
            side.lag_seconds.store(lag, Ordering::Relaxed);
        }
        let scanned = work
            .map
            .namespaces
            .values()
            .filter(|entry| {
                entry.scanned()
                    && entry
                        .ranges
                        .values()
                        .all(|range| range.state != RangeState::Unchecked)
            })
            .count();
        status
            .scanned_collections
            .store(scanned as u64, Ordering::Relaxed);
        status
            .total_collections
            .store(work.map.namespaces.len() as u64, Ordering::Relaxed);
        let initial_done = scanned == work.map.namespaces.len()
            && work.namespace_checks.is_empty()
            && work.namespaces_in_flight.is_empty()
            && !work.extra_check_pending
            && !work.extra_in_flight;
        status.set_phase(if initial_done {
            VerifierPhase::StreamHashing
        } else {
            VerifierPhase::InitialHashing
        });
    }
}
