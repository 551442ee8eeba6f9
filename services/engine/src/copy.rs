//! Copying one `_id` partition from the source to the destination.
//!
//! Reads use index bounds (`hint {_id: 1}` + `min`/`max`), which follow the canonical
//! BSON order across types; `$gt`/`$lt` would bracket by type and silently skip `_id`s of
//! other types. Reading the next batch overlaps with writing the current one, so at most
//! two batches (plus the driver's cursor buffer) are in memory per partition.
//!
//! Resume: after each batch is durably written (write concern majority), the partition's
//! last `_id` is checkpointed (beside the next batch's write, so the checkpoint may trail
//! by one batch; that batch is then written again and skipped as duplicates; the last
//! batch's checkpoint is the record that marks the partition done). A restart
//! reads again from `min: {_id: last}` (inclusive) and drops the first document if it is
//! `last` itself, so nothing is copied twice. A
//! batch that was partly written before a crash or a retried network error gives
//! duplicate-key errors on its already written documents: those are expected and skipped
//! (the change stream later brings every document to its latest state anyway).

use bson::{doc, Bson, RawDocumentBuf};
use mongodb::error::{Error, ErrorKind};
use mongodb::options::{CollectionOptions, Hint, ReadConcern, WriteConcern};
use mongodb::{Client, Collection, Cursor};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::bson_order;
use crate::error::{EngineError, Result};
use crate::metadata::{Metadata, PartitionRecord};
use crate::progress::Progress;
use crate::retry::retry;

/// A written batch stops at this many bytes. Each partition in flight holds about four
/// batches (filling, writing, the encoded command, the cursor's reply), and up to eight
/// partitions run at loadLevel 4, so this bounds the copy's memory to roughly 130 MiB
/// whatever the dataset; a single larger document still goes alone in its own batch.
const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// … or at this many documents, so small documents still checkpoint regularly.
const BATCH_DOCUMENTS: usize = 4_000;
/// `DuplicateKey`.
const DUPLICATE_KEY: i32 = 11000;
/// `CollectionUUIDMismatch`: the named collection is not the one with that UUID.
const COLLECTION_UUID_MISMATCH: i32 = 361;
/// `IDLUnknownField`: a source before 6.0 refusing `collectionUUID`.
const UNKNOWN_FIELD: i32 = 40415;
/// Renames of one collection followed during its copy before giving up.
const MAX_RENAMES_FOLLOWED: u32 = 10;

/// What one `copy_partition` call copied (the partition's running totals, including
/// earlier runs, are in its metadata record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub documents: u64,
    pub bytes: u64,
}

/// Copies one partition, resuming after `partition.last`, and records it done; see the
/// module docs.
pub async fn copy_partition(
    source: &Client,
    destination: &Client,
    metadata: &Metadata,
    partition: &PartitionRecord,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CopyStats> {
    let copied = copy_documents(source, destination, metadata, partition, progress, cancel).await?;
    CopiedPartition::record_if_copied(copied, metadata, cancel).await
}

/// [`copy_partition`] holding one of `slots` (the loadLevel bound) while it reads and
/// writes documents; the slot goes back before the finish record, so the next
/// partition's first read overlaps it.
pub async fn copy_partition_in_slot(
    slots: &Semaphore,
    source: &Client,
    destination: &Client,
    metadata: &Metadata,
    partition: &PartitionRecord,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<CopyStats> {
    let slot = tokio::select! {
        biased;
        _ = cancel.cancelled() => return Err(EngineError::Cancelled),
        slot = slots.acquire() => slot.map_err(|_| EngineError::Cancelled)?,
    };
    let copied = copy_documents(source, destination, metadata, partition, progress, cancel).await?;
    drop(slot);
    CopiedPartition::record_if_copied(copied, metadata, cancel).await
}

/// A partition whose documents are all written (with write concern majority) but not yet
/// recorded as done. Recording it is one more round trip that holds no batch in memory,
/// which is why [`copy_partition_in_slot`] gives its slot back first.
#[derive(Debug)]
#[must_use = "a copied partition is only done once record_done has been called"]
pub struct CopiedPartition {
    id: String,
    /// `_id` of the last document written and not yet checkpointed.
    last: Option<Bson>,
    /// The partition's running totals, earlier runs included.
    documents: u64,
    bytes: u64,
    stats: CopyStats,
}

impl CopiedPartition {
    /// Records `copied` done; nothing for a partition that was already done.
    async fn record_if_copied(
        copied: Option<CopiedPartition>,
        metadata: &Metadata,
        cancel: &CancellationToken,
    ) -> Result<CopyStats> {
        match copied {
            Some(copied) => copied.record_done(metadata, cancel).await,
            None => Ok(CopyStats::default()),
        }
    }

    /// Writes the partition's finish record. A crash before it only means the partition
    /// is read again from its last checkpoint, its documents skipped as duplicates.
    pub async fn record_done(
        self,
        metadata: &Metadata,
        cancel: &CancellationToken,
    ) -> Result<CopyStats> {
        cancellable(
            cancel,
            metadata.finish_partition(&self.id, self.last.as_ref(), self.documents, self.bytes),
        )
        .await??;
        tracing::debug!(partition = %self.id, documents = self.stats.documents, bytes = self.stats.bytes, "partition copied");
        Ok(self.stats)
    }
}

/// Copies one partition's documents, resuming after `partition.last`; None if the
/// partition was already done. See the module docs.
pub async fn copy_documents(
    source: &Client,
    destination: &Client,
    metadata: &Metadata,
    partition: &PartitionRecord,
    progress: &Progress,
    cancel: &CancellationToken,
) -> Result<Option<CopiedPartition>> {
    let mut stats = CopyStats::default();
    if partition.done {
        return Ok(None);
    }
    let read_options = CollectionOptions::builder()
        .read_concern(ReadConcern::majority())
        .build();
    let write_options = CollectionOptions::builder()
        .write_concern(WriteConcern::majority())
        .build();
    let target = destination
        .database(&partition.ns.db)
        .collection_with_options::<RawDocumentBuf>(&partition.ns.coll, write_options);
    let mut reader = Reader {
        source: source.clone(),
        collection: source
            .database(&partition.ns.db)
            .collection_with_options(&partition.ns.coll, read_options),
        uuid: partition.uuid,
        follows: 0,
        min: partition.min.clone(),
        max: partition.max.clone(),
        after: partition.last.clone(),
        cursor: None,
        skip_equal_to_after: false,
        pending: Batch::default(),
        carry: None,
        exhausted: false,
        in_fill: false,
    };
    let (mut documents, mut bytes) = (partition.documents, partition.bytes);

    let mut current = cancellable(cancel, reader.next_batch()).await??;
    // The last `_id` written but not yet checkpointed, with the totals then. Its
    // checkpoint is written beside the next batch's write and read rather than alone in
    // between (each one waited for a round trip behind the other partitions' inserts),
    // and the last one goes into the partition's finish record: a partition copied in
    // one batch costs a read, a write and the finish.
    let mut unsaved: Option<(Bson, u64, u64)> = None;
    while let Some(batch) = current {
        progress.write_gate.lock().check()?;
        let span = tracing::info_span!(
            "copy_batch",
            documents = batch.documents.len(),
            bytes = batch.bytes
        );
        // Write this batch while reading the next one.
        let previous = unsaved.take();
        let (written, next, checkpointed) = cancellable(cancel, async {
            tokio::join!(write_batch(&target, &batch), reader.next_batch(), async {
                match &previous {
                    Some((last, documents, bytes)) => {
                        metadata
                            .checkpoint_partition(&partition.id, last, *documents, *bytes)
                            .await
                    }
                    None => Ok(()),
                }
            })
        })
        .instrument(span)
        .await?;
        written?;
        checkpointed?;
        let count = batch.documents.len() as u64;
        progress.add_copied(count, batch.bytes);
        stats.documents += count;
        stats.bytes += batch.bytes;
        documents += count;
        bytes += batch.bytes;
        unsaved = batch.last.map(|last| (last, documents, bytes));
        current = next?;
    }
    Ok(Some(CopiedPartition {
        id: partition.id.clone(),
        last: unsaved.map(|(last, _, _)| last),
        documents,
        bytes,
        stats,
    }))
}

/// Runs `work` unless `cancel` fires first (then the work is dropped mid-flight, which is
/// safe: anything it wrote past the last checkpoint is skipped as a duplicate on resume).
async fn cancellable<T>(
    cancel: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Result<T> {
    tokio::select! {
        biased;
        _ = cancel.cancelled() => Err(EngineError::Cancelled),
        out = work => Ok(out),
    }
}

#[derive(Debug, Default)]
struct Batch {
    documents: Vec<RawDocumentBuf>,
    bytes: u64,
    /// `_id` of the last document in the batch.
    last: Option<Bson>,
}

/// The source side: an `_id`-bounded cursor that reopens after the last `_id` it handed
/// out when a read fails, so a retried read neither loses nor repeats documents.
struct Reader {
    source: Client,
    /// Where the partition's collection is now (its planned name, or the one it was
    /// renamed to during the copy).
    collection: Collection<RawDocumentBuf>,
    /// The collection's UUID: reads name it (`collectionUUID`), so a renamed collection
    /// is refused instead of read as an empty namespace. None for records planned
    /// without one, or when the source does not know the option (before 6.0).
    uuid: Option<bson::Uuid>,
    /// Renames followed so far (bounded: a collection renamed faster than it can be
    /// found fails the copy instead of looping).
    follows: u32,
    min: Option<Bson>,
    max: Option<Bson>,
    /// The last `_id` read (initially the checkpoint): a reopened cursor starts there.
    after: Option<Bson>,
    cursor: Option<Cursor<RawDocumentBuf>>,
    skip_equal_to_after: bool,
    /// The batch being filled; survives a failed read so a retry continues it.
    pending: Batch,
    /// A document that did not fit in the previous batch.
    carry: Option<(RawDocumentBuf, Bson)>,
    exhausted: bool,
    /// Set while `fill` runs: still set on entry means the last attempt was dropped
    /// (call timeout) mid-read, and its cursor must not be trusted.
    in_fill: bool,
}

impl Reader {
    /// The next batch, or None when the range is exhausted.
    async fn next_batch(&mut self) -> Result<Option<Batch>> {
        if self.exhausted && self.carry.is_none() {
            return Ok(None);
        }
        let state = tokio::sync::Mutex::new(&mut *self);
        retry("read partition", || async {
            state.lock().await.fill().await
        })
        .await
        .map_err(EngineError::source)?;
        let batch = std::mem::take(&mut self.pending);
        Ok((!batch.documents.is_empty()).then_some(batch))
    }

    /// Adds documents to `pending` until it is full or the range ends. On error the
    /// cursor is dropped; the next call reopens it after the last `_id` taken.
    async fn fill(&mut self) -> Result<(), Error> {
        if std::mem::replace(&mut self.in_fill, true) {
            self.cursor = None;
        }
        if let Some((document, id)) = self.carry.take() {
            self.push(document, id);
        }
        while !self.exhausted && !self.full() {
            if self.cursor.is_none() {
                match self.open().await {
                    Ok(cursor) => self.cursor = Some(cursor),
                    Err(error) if command_code(&error) == Some(COLLECTION_UUID_MISMATCH) => {
                        self.follow_rename().await?;
                        continue;
                    }
                    Err(error)
                        if self.uuid.is_some()
                            && matches!(command_code(&error), Some(UNKNOWN_FIELD)) =>
                    {
                        tracing::warn!(collection = %self.namespace(), "the source does not know find's collectionUUID (MongoDB before 6.0); reading by name, so a rename during the copy is not followed");
                        self.uuid = None;
                        continue;
                    }
                    Err(error) => return Err(error),
                }
                self.skip_equal_to_after = self.after.is_some();
            }
            let Some(cursor) = self.cursor.as_mut() else {
                continue;
            };
            let advanced = cursor.advance().await;
            let document = match advanced {
                Ok(true) => cursor.current().to_raw_document_buf(),
                Ok(false) => {
                    self.exhausted = true;
                    self.cursor = None;
                    break;
                }
                Err(error) => {
                    self.cursor = None;
                    return Err(error);
                }
            };
            let id = document_id(&document)?;
            if std::mem::take(&mut self.skip_equal_to_after)
                && self
                    .after
                    .as_ref()
                    .is_some_and(|after| bson_order::equal(after, &id))
            {
                continue;
            }
            let size = document.as_bytes().len() as u64;
            self.after = Some(id.clone());
            if !self.pending.documents.is_empty() && self.pending.bytes + size > BATCH_BYTES {
                self.carry = Some((document, id));
                break;
            }
            self.push(document, id);
        }
        self.in_fill = false;
        Ok(())
    }

    fn full(&self) -> bool {
        self.carry.is_some()
            || self.pending.documents.len() >= BATCH_DOCUMENTS
            || self.pending.bytes >= BATCH_BYTES
    }

    fn push(&mut self, document: RawDocumentBuf, id: Bson) {
        self.pending.bytes += document.as_bytes().len() as u64;
        self.pending.documents.push(document);
        self.pending.last = Some(id);
    }

    fn namespace(&self) -> String {
        self.collection.namespace().to_string()
    }

    /// The collection's UUID no longer names the collection being read: it was renamed
    /// (read on under its new name, writing to the same destination collection, which
    /// the change stream's rename event later moves) or dropped (nothing left to copy;
    /// the stream's drop event removes what was copied).
    async fn follow_rename(&mut self) -> Result<(), Error> {
        let Some(uuid) = self.uuid else {
            return Err(Error::custom(
                "collection UUID mismatch without a UUID".to_string(),
            ));
        };
        self.follows += 1;
        if self.follows > MAX_RENAMES_FOLLOWED {
            return Err(Error::custom(format!(
                "the collection being copied ({uuid}) was renamed more than {MAX_RENAMES_FOLLOWED} times during the copy"
            )));
        }
        let from = self.namespace();
        match locate_collection(&self.source, uuid, &self.collection.namespace().db).await? {
            Some(ns) => {
                tracing::info!(from = %from, to = %ns, "the collection being copied was renamed; reading on under its new name");
                let read_options = CollectionOptions::builder()
                    .read_concern(ReadConcern::majority())
                    .build();
                self.collection = self
                    .source
                    .database(&ns.db)
                    .collection_with_options(&ns.coll, read_options);
            }
            None => {
                tracing::info!(collection = %from, "the collection being copied was dropped; its copy ends here");
                self.exhausted = true;
            }
        }
        Ok(())
    }

    /// Owns what it needs, so the copy future stays `Send` (the orchestrator spawns it).
    fn open(
        &self,
    ) -> impl std::future::Future<Output = Result<Cursor<RawDocumentBuf>, Error>> + Send + 'static
    {
        let collection = self.collection.clone();
        let uuid = self.uuid;
        // Resuming: from the last `_id` taken (inclusive; it is skipped in `fill`).
        let min = self.after.clone().or_else(|| self.min.clone());
        let max = self.max.clone();
        async move {
            if let Some(uuid) = uuid {
                return open_by_uuid(&collection, uuid, min, max).await;
            }
            let mut find = collection
                .find(doc! {})
                .hint(Hint::Keys(doc! {"_id": 1}))
                .sort(doc! {"_id": 1})
                .batch_size(BATCH_DOCUMENTS as u32);
            if let Some(min) = min {
                find = find.min(doc! {"_id": min});
            }
            if let Some(max) = max {
                find = find.max(doc! {"_id": max});
            }
            find.await
        }
    }
}

/// The same read as the driver's `find` in `open`, as a command with `collectionUUID`
/// (the driver's `find` has no such option).
async fn open_by_uuid(
    collection: &Collection<RawDocumentBuf>,
    uuid: bson::Uuid,
    min: Option<Bson>,
    max: Option<Bson>,
) -> Result<Cursor<RawDocumentBuf>, Error> {
    let mut command = doc! {
        "find": collection.name(),
        "filter": {},
        "hint": {"_id": 1},
        "sort": {"_id": 1},
        "batchSize": BATCH_DOCUMENTS as i32,
        "readConcern": {"level": "majority"},
        "collectionUUID": bson::Binary::from_uuid(uuid),
    };
    if let Some(min) = min {
        command.insert("min", doc! {"_id": min});
    }
    if let Some(max) = max {
        command.insert("max", doc! {"_id": max});
    }
    let database = collection.client().database(&collection.namespace().db);
    Ok(database
        .run_cursor_command(command)
        .await?
        .with_type::<RawDocumentBuf>())
}

/// Where the collection with `uuid` is now on `client`: `first_db` is searched first
/// (renames mostly stay in their database), then every other database. None: dropped.
pub(crate) async fn locate_collection(
    client: &Client,
    uuid: bson::Uuid,
    first_db: &str,
) -> Result<Option<crate::namespace::Namespace>, Error> {
    let mut databases = retry("list source databases", || client.list_database_names()).await?;
    databases.sort_by_key(|db| db != first_db);
    for db in databases {
        for entry in crate::discovery::list_collections(client, &db).await? {
            let matches = entry
                .get_document("info")
                .ok()
                .and_then(|info| info.get("uuid"))
                .is_some_and(|found| {
                    matches!(found, Bson::Binary(binary) if binary.to_uuid().ok() == Some(uuid))
                });
            if let (true, Ok(name)) = (matches, entry.get_str("name")) {
                return Ok(Some(crate::namespace::Namespace::new(db.as_str(), name)));
            }
        }
    }
    Ok(None)
}

fn command_code(error: &Error) -> Option<i32> {
    match &*error.kind {
        ErrorKind::Command(command) => Some(command.code),
        _ => None,
    }
}

fn document_id(document: &RawDocumentBuf) -> Result<Bson, Error> {
    let id = document
        .get("_id")
        .map_err(|e| Error::custom(format!("unreadable source document: {e}")))?
        .ok_or_else(|| Error::custom("source document without _id".to_string()))?;
    Bson::try_from(id).map_err(|e| Error::custom(format!("unreadable source _id: {e}")))
}

/// Unordered bulk insert; duplicate keys (documents an earlier attempt already wrote) are
/// fine, any other write error or a write-concern error fails the batch.
async fn write_batch(target: &Collection<RawDocumentBuf>, batch: &Batch) -> Result<()> {
    retry("insert batch", || async {
        match target
            .insert_many(&batch.documents)
            .ordered(false)
            .bypass_document_validation(true)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if only_duplicate_keys(&error) => Ok(()),
            Err(error) => Err(error),
        }
    })
    .await
    .map_err(EngineError::destination)
}

fn only_duplicate_keys(error: &Error) -> bool {
    match &*error.kind {
        ErrorKind::InsertMany(failure) => {
            failure.write_concern_error.is_none()
                && failure
                    .write_errors
                    .as_ref()
                    .is_some_and(|errors| errors.iter().all(|e| e.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}
