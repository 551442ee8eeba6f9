//! Setting up a migration: the restart check, T0, the destination's namespaces and
//! partitions, the change-stream reader, and the ping loop.

// The parent module's imports and items (clusters, config, timings, engine types).
use super::*;
use futures::TryStreamExt;

/// A restart must bring exactly the same request against the same clusters.
pub(super) fn check_same_migration(
    state: &MigrationState,
    request: &StartRequest,
    clusters: &Clusters,
) -> Result<()> {
    if state.request != *request {
        return Err(EngineError::OptionsMismatch(describe_difference(
            &state.request,
            request,
        )));
    }
    if state.source_hosts != clusters.source_hosts
        || state.destination_hosts != clusters.destination_hosts
    {
        return Err(EngineError::OptionsMismatch(format!(
            "the migration was started from {:?} to {:?}, not from {:?} to {:?}",
            state.source_hosts,
            state.destination_hosts,
            clusters.source_hosts,
            clusters.destination_hosts
        )));
    }
    Ok(())
}

pub(super) fn describe_difference(persisted: &StartRequest, requested: &StartRequest) -> String {
    let before = serde_json::to_value(persisted).unwrap_or_default();
    let after = serde_json::to_value(requested).unwrap_or_default();
    let mut differences = Vec::new();
    if let (Some(before), Some(after)) = (before.as_object(), after.as_object()) {
        for (key, value) in before {
            if after.get(key) != Some(value) {
                differences.push(format!(
                    "{key}: was {value}, now {}",
                    after.get(key).cloned().unwrap_or_default()
                ));
            }
        }
    }
    differences.join("; ")
}

/// The source's operation time after a no-op write: every write after it is in the
/// change stream opened at it.
pub(super) async fn take_t0(source: &Client) -> Result<Timestamp> {
    let admin = source.database("admin");
    let reply = retry("take T0", || {
        admin.run_command(doc! {"appendOplogNote": 1, "data": {"c2c": "migration start"}})
    })
    .await
    .map_err(EngineError::source)?;
    reply.get_timestamp("operationTime").map_err(|_| {
        EngineError::Fatal(
            "the source did not report an operationTime (is it a replica set?)".into(),
        )
    })
}

/// Namespaces set up (and collections partitioned) at once: each costs several round
/// trips to both clusters, and one after another made planning of thousands of
/// collections against remote clusters take minutes before the first byte was copied.
const SETUP_CONCURRENCY: usize = 8;

/// Creates the destination's collections, views and (before-copy) indexes, records
/// the namespaces, and plans the partitions. Idempotent: a restart in the Planning phase
/// runs it again.
pub(super) async fn set_up_destination(
    clusters: &Clusters,
    metadata: &Metadata,
    options: &SyncOptions,
    config: &EngineConfig,
    namespaces: &[SourceNamespace],
) -> Result<()> {
    let records: Vec<NamespaceRecord> = namespaces
        .iter()
        .map(|n| namespace_record(n, options))
        .collect();
    // Collections first, several at once; then views, which may be defined on them (or
    // on each other, so one at a time in the source's order).
    let (views, collections): (Vec<_>, Vec<_>) = records
        .iter()
        .partition(|record| record.kind == NamespaceKind::View);
    at_most_setup_concurrency(
        collections
            .into_iter()
            .map(|record| set_up_namespace(clusters, metadata, options, record))
            .collect(),
    )
    .await?;
    for view in views {
        set_up_namespace(clusters, metadata, options, view).await?;
    }
    metadata.clear_partitions().await?;
    at_most_setup_concurrency(
        namespaces
            .iter()
            .filter(|n| n.kind == NamespaceKind::Collection)
            .map(|namespace| plan_partitions(clusters, metadata, config, namespace))
            .collect(),
    )
    .await?;
    tracing::info!(
        namespaces = records.len(),
        "destination set up and partitions planned"
    );
    Ok(())
}

/// Runs `work`, `SETUP_CONCURRENCY` at a time, until all succeeded or one failed. The
/// futures are built before (not in a closure over borrowed items), which keeps the
/// caller's future `Send` for `tokio::spawn`.
async fn at_most_setup_concurrency<F>(work: Vec<F>) -> Result<()>
where
    F: std::future::Future<Output = Result<()>>,
{
    stream::iter(work)
        .buffer_unordered(SETUP_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await
        .map(drop)
}

/// Records one namespace and creates it (with its before-copy indexes) on the destination.
async fn set_up_namespace(
    clusters: &Clusters,
    metadata: &Metadata,
    options: &SyncOptions,
    record: &NamespaceRecord,
) -> Result<()> {
    metadata.save_namespace(record).await?;
    indexes::create_namespace(&clusters.destination, record).await?;
    if record.kind == NamespaceKind::Collection && !options.build_indexes.after_copy() {
        indexes::build_indexes(&clusters.destination, record).await?;
    }
    Ok(())
}

/// Splits one collection into `_id` partitions and records them.
async fn plan_partitions(
    clusters: &Clusters,
    metadata: &Metadata,
    config: &EngineConfig,
    namespace: &SourceNamespace,
) -> Result<()> {
    let partitions =
        partition::plan(&clusters.source, namespace, config.partition_target_bytes).await?;
    metadata.save_partitions(&partitions).await
}

pub(crate) struct StartedReader {
    pub(crate) spill: Arc<Spill>,
    pub(crate) task: JoinHandle<Result<()>>,
}

/// Why the run stops when the reader's task ended first: it only ends on its own with an
/// error (or when cancelled).
fn reader_stopped(outcome: std::result::Result<Result<()>, tokio::task::JoinError>) -> EngineError {
    match outcome {
        Ok(Ok(())) => EngineError::Cancelled,
        Ok(Err(error)) => error,
        Err(join) => EngineError::Fatal(format!("change stream reader crashed: {join}")),
    }
}

/// Runs `work` while the stream's reader runs: the reader only ends on its own with an
/// error (or when cancelled), which stops the work; either way the reader is cancelled
/// and awaited before returning.
pub(crate) async fn beside_reader<T>(
    work: impl std::future::Future<Output = Result<T>>,
    mut reader_task: JoinHandle<Result<()>>,
    cancel: &CancellationToken,
) -> Result<T> {
    let outcome = tokio::select! {
        outcome = work => outcome,
        reader_outcome = &mut reader_task => Err(reader_stopped(reader_outcome)),
    };
    cancel.cancel();
    if !reader_task.is_finished() {
        let _ = reader_task.await;
    }
    outcome
}

pub(crate) fn start_reader(
    clusters: &Clusters,
    options: &SyncOptions,
    config: &EngineConfig,
    progress: &Arc<Progress>,
    start: StartAt,
    marks: Duration,
    cancel: &CancellationToken,
) -> Result<StartedReader> {
    let spill_dir = config
        .spill_dir
        .join(format!("run-{}", rand::random::<u32>()));
    let spill = Arc::new(Spill::new(SpillConfig::new(spill_dir))?);
    let reader = Reader::new(
        clusters.source.clone(),
        options.filter.clone(),
        start,
        spill.clone(),
        progress.clone(),
    )
    .mark_every(marks);
    let task = tokio::spawn(reader.run(cancel.clone()));
    Ok(StartedReader { spill, task })
}

pub(super) fn namespace_record(
    namespace: &SourceNamespace,
    options: &SyncOptions,
) -> NamespaceRecord {
    NamespaceRecord {
        ns: namespace.ns.clone(),
        kind: namespace.kind,
        options: namespace.options.clone(),
        source_indexes: namespace.indexes.clone(),
        destination_indexes: indexes::destination_index_specs(
            &namespace.indexes,
            options.build_indexes,
        ),
        estimated_bytes: namespace.estimated_bytes,
        estimated_documents: namespace.estimated_documents,
    }
}

/// Pings both clusters every `PING_INTERVAL` for `pingLatencyMs` (of the current
/// direction's source and destination).
pub(super) async fn ping_loop(
    clusters: Clusters,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) {
    loop {
        let (source_slot, destination_slot) = if progress.reversed.load(Ordering::Relaxed) {
            (&progress.destination_ping_ms, &progress.source_ping_ms)
        } else {
            (&progress.source_ping_ms, &progress.destination_ping_ms)
        };
        for (client, slot) in [
            (&clusters.source, source_slot),
            (&clusters.destination, destination_slot),
        ] {
            let started = Instant::now();
            let ping = tokio::time::timeout(
                Duration::from_secs(10),
                client.database("admin").run_command(doc! {"ping": 1}),
            )
            .await;
            let value = match ping {
                Ok(Ok(_)) => started.elapsed().as_millis() as i64,
                _ => -1,
            };
            slot.store(value, Ordering::Relaxed);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PING_INTERVAL) => {}
        }
    }
}
