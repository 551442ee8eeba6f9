//! Reads the source's cluster-wide change stream from T0 (or after a checkpoint), keeps
//! what the filter selects and pushes it into the spill. It runs from the start of the
//! copy, so a copy longer than the oplog window still succeeds: the events are already
//! safe in the spill when they roll off the source.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document, RawDocumentBuf, Timestamp};
use mongodb::change_stream::event::ResumeToken;
use mongodb::change_stream::ChangeStream;
use mongodb::error::{Error, ErrorKind};
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use super::event::{token_time, Event, EventKind, ParseError};
use super::spill::Spill;
use crate::error::{EngineError, Result};
use crate::filter::NamespaceFilter;
use crate::namespace::is_excluded_database;
use crate::progress::Progress;
use crate::retry::{is_transient, retry, MAX_ATTEMPTS};

/// Where the stream starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StartAt {
    /// T0: every event at or after it (first start).
    OperationTime(Timestamp),
    /// A resume token: every event strictly after it (restart from a checkpoint).
    After(Document),
}

/// mongod's ChangeStreamHistoryLost and CappedPositionLost: the start point rolled off.
const HISTORY_LOST: [i32; 2] = [286, 136];

pub struct Reader {
    source: Client,
    filter: NamespaceFilter,
    start: StartAt,
    spill: Arc<Spill>,
    progress: Arc<Progress>,
    keepalive_every: Duration,
    mark_every: Duration,
}

/// What the reader has pushed so far: a reopened stream resumes after `token`.
struct Position {
    token: Option<Document>,
    time: Timestamp,
    pushed_at: Instant,
}

impl Reader {
    pub fn new(
        source: Client,
        filter: NamespaceFilter,
        start: StartAt,
        spill: Arc<Spill>,
        progress: Arc<Progress>,
    ) -> Reader {
        Reader {
            source,
            filter,
            start,
            spill,
            progress,
            keepalive_every: Duration::from_secs(2),
            mark_every: Duration::from_secs(1),
        }
    }

    /// How often `appendOplogNote` is written to the source (default 2 s).
    pub fn keepalive_every(mut self, every: Duration) -> Reader {
        self.keepalive_every = every;
        self
    }

    /// How often an idle stream records a high-water mark (default 1 s). Commit's drain
    /// uses zero: it waits for the mark past Tc, and every second counts before canWrite.
    pub fn mark_every(mut self, every: Duration) -> Reader {
        self.mark_every = every;
        self
    }

    /// Reads until cancelled (then `EngineError::Cancelled`) or a fatal error.
    pub async fn run(self, cancel: CancellationToken) -> Result<()> {
        // The keepalive runs as its own task so a pending getMore is never interrupted
        // (dropping a driver cursor future mid-request would poison the stream).
        let keepalive_cancel = cancel.child_token();
        let _stop_keepalive = keepalive_cancel.clone().drop_guard();
        tokio::spawn(keepalive(
            self.source.clone(),
            self.keepalive_every,
            keepalive_cancel,
        ));

        let start_time = match &self.start {
            StartAt::OperationTime(time) => *time,
            StartAt::After(token) => token_time(token).unwrap_or(Timestamp {
                time: 0,
                increment: 0,
            }),
        };
        let mut position = Position {
            token: None,
            time: start_time,
            pushed_at: Instant::now(),
        };
        let mut failures = 0;
        loop {
            let error = tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                outcome = self.read(&mut position, &mut failures) => match outcome {
                    Ok(never) => match never {},
                    Err(ReadError::Engine(error)) => return Err(error),
                    Err(ReadError::Driver(error)) => error,
                },
            };
            // The driver already resumed once on its own; reopen ourselves after the last
            // pushed event (re-reading filtered-out events is harmless).
            failures += 1;
            if !is_transient(&error) || failures >= MAX_ATTEMPTS {
                return Err(classify(error));
            }
            tracing::warn!(error = %error, failures, "change stream failed; reopening after the last pushed event");
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(200) * failures) => {}
            }
        }
    }

    /// Opens the stream at `position` and reads it; returns only with an error.
    async fn read(
        &self,
        position: &mut Position,
        failures: &mut u32,
    ) -> Result<Infallible, ReadError> {
        let mut stream = self.open(position).await?;
        loop {
            let next = stream.next_if_any().await?;
            *failures = 0;
            if let Some(raw) = next {
                self.handle(&raw, position).await?;
            }
            // Also after a filtered-out event: its token is a valid resume point.
            if let Some(token) = stream.resume_token() {
                self.maybe_mark(token, position).await?;
            }
        }
    }

    async fn open(&self, position: &Position) -> Result<ChangeStream<RawDocumentBuf>, ReadError> {
        let resume = match (&position.token, &self.start) {
            (Some(token), _) | (None, StartAt::After(token)) => Some(to_resume_token(token)?),
            (None, StartAt::OperationTime(_)) => None,
        };
        let pipeline: Vec<Document> = self.filter.stream_match().into_iter().collect();
        let stream = retry("open change stream", || {
            let watch = self
                .source
                .watch()
                .pipeline(pipeline.clone())
                .show_expanded_events(true)
                .batch_size(1000)
                .max_await_time(Duration::from_millis(500));
            match (&resume, &self.start) {
                (Some(token), _) => watch.resume_after(token.clone()),
                (None, StartAt::OperationTime(time)) => watch.start_at_operation_time(*time),
                (None, StartAt::After(_)) => watch,
            }
        })
        .await?;
        Ok(stream.with_type::<RawDocumentBuf>())
    }

    async fn handle(&self, raw: &RawDocumentBuf, position: &mut Position) -> Result<()> {
        let document = raw
            .to_document()
            .map_err(|e| EngineError::Fatal(format!("unreadable change event: {e}")))?;
        let event = match Event::parse(&document, raw.as_bytes().len()) {
            Ok(event) => event,
            // Operations c2c does not apply are only fatal where they touch synced data.
            Err(ParseError::Unsupported { ns: Some(ns), .. }) if !self.filter.matches(&ns) => {
                return Ok(())
            }
            Err(error) => {
                return Err(EngineError::Fatal(format!(
                    "{error}; the migration cannot continue"
                )))
            }
        };
        self.progress
            .source_latest_secs
            .fetch_max(i64::from(event.cluster_time.time), Ordering::Relaxed);
        if self.selects(&event.kind) {
            self.push(event, position).await?;
        }
        Ok(())
    }

    /// Whether the applier needs this event.
    fn selects(&self, kind: &EventKind) -> bool {
        match kind {
            EventKind::Insert { ns, .. }
            | EventKind::Replace { ns, .. }
            | EventKind::Update { ns, .. }
            | EventKind::Delete { ns, .. }
            | EventKind::Create { ns, .. }
            | EventKind::Drop { ns }
            | EventKind::CreateIndexes { ns, .. }
            | EventKind::DropIndexes { ns, .. }
            | EventKind::Modify { ns, .. } => self.filter.matches(ns),
            // Renames across the filter boundary reach the applier, which refuses them.
            EventKind::Rename { from, to, .. } => {
                self.filter.matches(from) || self.filter.matches(to)
            }
            EventKind::DropDatabase { db } => !is_excluded_database(db),
            EventKind::HighWaterMark => false,
        }
    }

    async fn push(&self, event: Event, position: &mut Position) -> Result<()> {
        position.token = Some(event.token.clone());
        position.time = event.cluster_time;
        position.pushed_at = Instant::now();
        self.spill.push(event).await?;
        self.progress
            .events_buffered
            .store(self.spill.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Records the stream's read position: always for lag, and as a high-water mark in
    /// the spill at most every `mark_every`, so idle periods still checkpoint.
    async fn maybe_mark(&self, token: ResumeToken, position: &mut Position) -> Result<()> {
        let Ok(bson::Bson::Document(token)) = bson::to_bson(&token) else {
            return Ok(());
        };
        let Some(time) = token_time(&token) else {
            return Ok(());
        };
        self.progress
            .source_latest_secs
            .fetch_max(i64::from(time.time), Ordering::Relaxed);
        if time > position.time
            && position.pushed_at.elapsed() >= self.mark_every
            && position.token.as_ref() != Some(&token)
        {
            self.push(Event::high_water_mark(token, time), position)
                .await?;
        }
        Ok(())
    }
}

fn to_resume_token(token: &Document) -> Result<ResumeToken> {
    bson::from_bson(bson::Bson::Document(token.clone()))
        .map_err(|e| EngineError::Fatal(format!("unusable resume token {token}: {e}")))
}

/// Why reading stopped: a driver error may be worth a reopen, an engine error is final.
enum ReadError {
    Driver(Error),
    Engine(EngineError),
}

impl From<Error> for ReadError {
    fn from(error: Error) -> ReadError {
        ReadError::Driver(error)
    }
}

impl From<EngineError> for ReadError {
    fn from(error: EngineError) -> ReadError {
        ReadError::Engine(error)
    }
}

fn classify(error: Error) -> EngineError {
    if let ErrorKind::Command(command) = &*error.kind {
        if HISTORY_LOST.contains(&command.code) {
            return EngineError::HistoryLost(command.message.clone());
        }
    }
    EngineError::source(error)
}

/// Writes a no-op to the source's oplog every `every`, so the stream's high-water mark
/// (and with it the measured lag) advances while the source is idle.
async fn keepalive(source: Client, every: Duration, cancel: CancellationToken) {
    let admin = source.database("admin");
    let note = doc! {"appendOplogNote": 1, "data": {"c2c": "keepalive"}};
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = retry("appendOplogNote", || admin.run_command(note.clone())) => outcome,
        };
        if let Err(error) = outcome {
            tracing::warn!(error = %error, "appendOplogNote on the source failed; lag may look stale while idle");
        }
    }
}
