//! The sync benchmark: c2c's collection copy against a raw find → insertMany ceiling
//! measured in the same run (and in pairs run back to back, which the copy target is
//! judged on), change-event application (lag and events/s) under a steady
//! source write rate as a fraction of the destination's raw upsert rate, the applier's
//! capacity on a backlog (paused while writing, timed from resume), and c2c's memory.
//! Prints a table and writes `target/bench/sync.json`.
//!
//! ```sh
//! cargo bench -p c2c-coordinator --bench sync
//! C2C_BENCH_DOCS=50000 C2C_BENCH_CEA_SECONDS=5 cargo bench -p c2c-coordinator --bench sync
//! ```
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `C2C_BENCH_DOCS` | 1000000 | 1 KiB documents in the source collection (the copy takes about 5 s: with fewer, the fixed 0.2–0.4 s before its first batch weighs on its rate) |
//! | `C2C_BENCH_READERS` | `1,2,4` | parallel range readers tried for the raw ceiling |
//! | `C2C_BENCH_UPSERT_TASKS` | `1,4,16` | concurrent writers tried for the raw upsert rate |
//! | `C2C_BENCH_CEA_RATES` | `0.25,0.5,0.8` | CEA write rates, fractions of the raw upsert rate |
//! | `C2C_BENCH_CEA_SECONDS` | 8 | seconds of writing per CEA rate |
//! | `C2C_BENCH_LOAD_LEVEL` | 3 | c2c's `loadLevel` (copy partitions in parallel, apply lanes) |
//! | `C2C_BENCH_COPY_PAIRS` | 4 | raw-loop / c2c-copy pairs run back to back (the first is the raw sweep's best and the main copy); the copy target is judged on their median |
//!
//! Memory: the testbeds live in this process, so the process's RSS mostly measures their
//! in-memory data. Three Tokio runtimes separate the parties — one runs the testbeds,
//! one runs c2c (and the raw loops), one runs the load generator — and a counting global
//! allocator charges every allocation to the runtime whose thread made it (a small
//! header remembers the owner, so frees on another thread are charged correctly). The
//! peak of live heap bytes charged to the c2c runtime is what c2c itself needs. The
//! process's VmHWM/VmRSS are reported alongside, with the testbeds' live heap, so the
//! reader can check the split.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Document, RawDocumentBuf};
use c2c_engine::filter::NamespaceFilter;
use c2c_engine::migration::{Clusters, EngineConfig, Migration, PARTITION_TARGET_BYTES};
use c2c_engine::options::{BuildIndexes, LoadLevel, StartRequest, SyncOptions, WriteBlocking};
use c2c_engine::partition;
use c2c_engine::progress::{Phase, Progress};
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use futures::TryStreamExt;
use mongodb::options::{ClientOptions, Hint};
use mongodb::{Client, Collection};
use serde_json::{json, Value};
use tokio::runtime::{Handle, Runtime};

// ---------------------------------------------------------------------------------------
// Heap accounting per runtime.

const OTHER: usize = 0;
const TESTBED: usize = 1;
const C2C: usize = 2;
const TAGS: [&str; 3] = ["load generator", "testbeds", "c2c"];

thread_local! {
    static TAG: Cell<u8> = const { Cell::new(OTHER as u8) };
}

static LIVE: [AtomicI64; 3] = [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)];
static PEAK: [AtomicI64; 3] = [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)];

/// The system allocator with a header in front of every block that records which
/// runtime allocated it; live and peak bytes are counted per runtime.
struct Counting;

fn header(layout: Layout) -> usize {
    layout.align().max(16)
}

fn current_tag() -> u8 {
    TAG.try_with(Cell::get).unwrap_or(OTHER as u8)
}

fn charge(tag: u8, bytes: i64) {
    let index = usize::from(tag).min(2);
    let now = LIVE[index].fetch_add(bytes, Ordering::Relaxed) + bytes;
    if bytes > 0 {
        PEAK[index].fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: every block is allocated by `System` with a layout `header` bytes larger and
// the same alignment; the caller's pointer is `header` bytes into it (a multiple of the
// alignment), and the header's first byte holds the owner's tag.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let extra = header(layout);
        let Ok(full) = Layout::from_size_align(layout.size() + extra, layout.align()) else {
            return std::ptr::null_mut();
        };
        let base = System.alloc(full);
        if base.is_null() {
            return base;
        }
        let tag = current_tag();
        *base = tag;
        charge(tag, layout.size() as i64);
        base.add(extra)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let extra = header(layout);
        let Ok(full) = Layout::from_size_align(layout.size() + extra, layout.align()) else {
            return std::ptr::null_mut();
        };
        let base = System.alloc_zeroed(full);
        if base.is_null() {
            return base;
        }
        let tag = current_tag();
        *base = tag;
        charge(tag, layout.size() as i64);
        base.add(extra)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let extra = header(layout);
        let base = ptr.sub(extra);
        charge(*base, -(layout.size() as i64));
        System.dealloc(
            base,
            Layout::from_size_align_unchecked(layout.size() + extra, layout.align()),
        );
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let extra = header(layout);
        let base = ptr.sub(extra);
        let tag = *base;
        let old = Layout::from_size_align_unchecked(layout.size() + extra, layout.align());
        let moved = System.realloc(base, old, new_size + extra);
        if moved.is_null() {
            return moved;
        }
        charge(tag, new_size as i64 - layout.size() as i64);
        moved.add(extra)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live(tag: usize) -> i64 {
    LIVE[tag].load(Ordering::Relaxed)
}

fn peak(tag: usize) -> i64 {
    PEAK[tag].load(Ordering::Relaxed)
}

/// Starts a new peak window for `tag` at its current live bytes.
fn reset_peak(tag: usize) {
    PEAK[tag].store(live(tag), Ordering::Relaxed);
}

fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn rss_mib() -> f64 {
    proc_status_kib("VmRSS:") as f64 / 1024.0
}

fn hwm_mib() -> f64 {
    proc_status_kib("VmHWM:") as f64 / 1024.0
}

/// CPU seconds used so far by each runtime's threads (by thread name: "testbed",
/// "c2c", "load"; everything else, e.g. the main thread, is "other"), from
/// /proc/self/task/*/stat. Threads that already exited are not counted.
fn cpu_by_runtime() -> [f64; 4] {
    // USER_HZ is 100 on every Linux the project runs on.
    const TICKS: f64 = 100.0;
    let mut seconds = [0.0; 4];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return seconds;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
            .sum();
        let group = match name.trim() {
            "testbed" => 0,
            "c2c" => 1,
            "load" => 2,
            _ => 3,
        };
        seconds[group] += ticks / TICKS;
    }
    seconds
}

/// CPU used by each runtime between two snapshots, as seconds and as cores over `wall`.
fn cpu_json(before: [f64; 4], after: [f64; 4], wall: f64) -> Value {
    let names = ["testbeds", "c2c", "load", "other"];
    let mut out = serde_json::Map::new();
    for (i, name) in names.iter().enumerate() {
        let used = after[i] - before[i];
        out.insert(
            name.to_string(),
            json!({"cpu_seconds": used, "cores": used / wall.max(1e-9)}),
        );
    }
    Value::Object(out)
}

fn cpu_line(before: [f64; 4], after: [f64; 4], wall: f64) -> String {
    let cores = |i: usize| (after[i] - before[i]) / wall.max(1e-9);
    format!(
        "cores used: testbeds {:.2}, c2c {:.2}, load generator {:.2}, other {:.2}",
        cores(0),
        cores(1),
        cores(2),
        cores(3)
    )
}

fn runtime(name: &str, tag: usize, workers: usize) -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name(name)
        .on_thread_start(move || TAG.with(|t| t.set(tag as u8)))
        .enable_all()
        .build()
        .expect("building a Tokio runtime")
}

/// Runs `work` on the runtime behind `handle` and waits for it.
async fn on<T: Send + 'static>(
    handle: &Handle,
    work: impl Future<Output = T> + Send + 'static,
) -> T {
    handle.spawn(work).await.expect("benchmark task panicked")
}

// ---------------------------------------------------------------------------------------
// Settings and data.

struct Settings {
    documents: i64,
    readers: Vec<usize>,
    upsert_tasks: Vec<usize>,
    cea_rates: Vec<f64>,
    cea_seconds: u64,
    load_level: LoadLevel,
    extra_copy_pairs: usize,
}

fn env_list<T: std::str::FromStr>(name: &str, default: &str) -> Vec<T> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    let values: Vec<T> = text
        .split(',')
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    assert!(!values.is_empty(), "{name}={text:?} holds no usable value");
    values
}

impl Settings {
    fn from_env() -> Settings {
        let one = |name: &str, default: &str| -> u64 { env_list::<u64>(name, default)[0] };
        Settings {
            documents: one("C2C_BENCH_DOCS", "1000000").max(1000) as i64,
            readers: env_list("C2C_BENCH_READERS", "1,2,4"),
            upsert_tasks: env_list("C2C_BENCH_UPSERT_TASKS", "1,4,16"),
            cea_rates: env_list("C2C_BENCH_CEA_RATES", "0.25,0.5,0.8"),
            cea_seconds: one("C2C_BENCH_CEA_SECONDS", "8").max(1),
            load_level: u8::try_from(one(
                "C2C_BENCH_LOAD_LEVEL",
                &LoadLevel::DEFAULT.get().to_string(),
            ))
            .ok()
            .and_then(LoadLevel::new)
            .expect("C2C_BENCH_LOAD_LEVEL must be 1-4"),
            extra_copy_pairs: one("C2C_BENCH_COPY_PAIRS", "4").max(1) as usize - 1,
        }
    }
}

const DOC_BYTES: usize = 1024;
const DB: &str = "bench";
const DOCS: &str = "docs";
const MARKERS: &str = "markers";
const INSERT_BATCH: usize = 1000;

/// The padding that makes `{_id: i64, n: i64, v: i64, s: pad}` exactly 1 KiB.
fn padding() -> String {
    let probe = doc! {"_id": 0i64, "n": 0i64, "v": 0i64, "s": ""};
    let size = bson::to_vec(&probe)
        .expect("encoding a probe document")
        .len();
    "x".repeat(DOC_BYTES - size)
}

fn document(id: i64, version: i64, pad: &str) -> Document {
    doc! {"_id": id, "n": id, "v": version, "s": pad}
}

/// xorshift64*: enough randomness for picking keys, no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64
    }
}

async fn client(uri: &str, pool: u32) -> Client {
    let mut options = ClientOptions::parse(uri)
        .await
        .expect("parsing a testbed URI");
    options.max_pool_size = Some(pool);
    Client::with_options(options).expect("creating a driver client")
}

async fn start_testbed(oplog_retention: Option<usize>) -> TestbedHandle {
    Testbed::start(TestbedConfig {
        oplog_retention,
        ..TestbedConfig::default()
    })
    .await
    .expect("starting a testbed")
}

/// Loads `documents` 1 KiB documents into bench.docs (two concurrent writers) and
/// creates bench.markers.
async fn load_source(uri: String, documents: i64) -> Duration {
    let client = client(&uri, 4).await;
    let database = client.database(DB);
    database
        .collection::<Document>(MARKERS)
        .insert_one(doc! {"_id": -1i64, "t": 0i64})
        .await
        .expect("creating bench.markers");
    let collection = database.collection::<Document>(DOCS);
    let started = Instant::now();
    let pad = Arc::new(padding());
    let writers = 2;
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let (collection, pad) = (collection.clone(), pad.clone());
        tasks.push(tokio::spawn(async move {
            let mut id = writer * INSERT_BATCH as i64;
            while id < documents {
                let end = (id + INSERT_BATCH as i64).min(documents);
                let batch: Vec<Document> = (id..end).map(|i| document(i, 0, &pad)).collect();
                collection
                    .insert_many(batch)
                    .ordered(false)
                    .await
                    .expect("loading the source");
                id += writers * INSERT_BATCH as i64;
            }
        }));
    }
    for task in tasks {
        task.await.expect("loader task panicked");
    }
    started.elapsed()
}

// ---------------------------------------------------------------------------------------
// 1. Raw ceiling.

#[derive(Clone, Copy)]
struct Rate {
    documents: u64,
    bytes: u64,
    seconds: f64,
}

impl Rate {
    fn docs_per_second(&self) -> f64 {
        self.documents as f64 / self.seconds
    }

    fn mib_per_second(&self) -> f64 {
        mib(self.bytes as f64) / self.seconds
    }

    fn json(&self) -> Value {
        json!({
            "documents": self.documents, "bytes": self.bytes, "seconds": self.seconds,
            "docs_per_second": self.docs_per_second(), "mib_per_second": self.mib_per_second(),
        })
    }
}

/// `readers` range readers (find, hint _id, min/max, batchSize 10000), each feeding its
/// own writer (insertMany unordered, 1000 documents) through a two-batch channel, so
/// reading and writing overlap as in c2c.
async fn raw_copy(
    source: Client,
    destination: Client,
    target: String,
    documents: i64,
    readers: usize,
) -> Rate {
    let from: Collection<RawDocumentBuf> = source.database(DB).collection(DOCS);
    let to: Collection<RawDocumentBuf> = destination.database(DB).collection(&target);
    to.drop().await.expect("dropping the raw target");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for reader in 0..readers {
        let low = documents * reader as i64 / readers as i64;
        let high = documents * (reader as i64 + 1) / readers as i64;
        let (from, to) = (from.clone(), to.clone());
        tasks.push(tokio::spawn(async move {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<RawDocumentBuf>>(2);
            let writer = tokio::spawn(async move {
                while let Some(batch) = receiver.recv().await {
                    to.insert_many(batch)
                        .ordered(false)
                        .await
                        .expect("raw insert_many");
                }
            });
            let mut cursor = from
                .find(doc! {})
                .hint(Hint::Keys(doc! {"_id": 1}))
                .min(doc! {"_id": low})
                .max(doc! {"_id": high})
                .batch_size(10_000)
                .await
                .expect("raw find");
            let (mut count, mut bytes) = (0u64, 0u64);
            let mut batch = Vec::with_capacity(INSERT_BATCH);
            while cursor.advance().await.expect("raw getMore") {
                let document = cursor.current().to_raw_document_buf();
                bytes += document.as_bytes().len() as u64;
                count += 1;
                batch.push(document);
                if batch.len() == INSERT_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(INSERT_BATCH));
                    sender.send(full).await.expect("raw writer stopped");
                }
            }
            if !batch.is_empty() {
                sender.send(batch).await.expect("raw writer stopped");
            }
            drop(sender);
            writer.await.expect("raw writer panicked");
            (count, bytes)
        }));
    }
    let (mut count, mut bytes) = (0, 0);
    for task in tasks {
        let (c, b) = task.await.expect("raw reader panicked");
        count += c;
        bytes += b;
    }
    let seconds = started.elapsed().as_secs_f64();
    let written = to
        .estimated_document_count()
        .await
        .expect("counting the raw target");
    assert_eq!(written, documents as u64, "the raw copy lost documents");
    to.drop().await.expect("dropping the raw target");
    Rate {
        documents: count,
        bytes,
        seconds,
    }
}

/// A raw loop and a c2c copy run back to back.
struct CopyPair {
    raw_first: bool,
    raw: Rate,
    c2c: Rate,
}

impl CopyPair {
    fn percent(&self) -> f64 {
        100.0 * self.c2c.docs_per_second() / self.raw.docs_per_second()
    }
}

/// One c2c copy, timed from `Migration::start` until `progress.copy_done`.
struct CopyRun {
    migration: Arc<Migration>,
    rate: Rate,
    /// Seconds from the start until the first document was copied (planning).
    first_document: f64,
    cpu_before: [f64; 4],
    cpu_after: [f64; 4],
}

/// Starts a migration from `source` to `destination` (which holds nothing yet) on the c2c
/// runtime and waits until its copy is done; the migration goes on into CEA.
async fn c2c_copy(
    c2c: &Handle,
    source: &TestbedHandle,
    destination: &TestbedHandle,
    load_level: LoadLevel,
    spill_dir: std::path::PathBuf,
) -> CopyRun {
    let (s, d) = (source.uri(), destination.uri());
    let (source_host, dest_host) = (source.host().to_string(), destination.host().to_string());
    let cpu_before = cpu_by_runtime();
    let started = Instant::now();
    let migration = on(c2c, async move {
        let clusters = Clusters {
            source: client(&s, 100).await,
            destination: client(&d, 100).await,
            source_hosts: vec![source_host],
            destination_hosts: vec![dest_host],
        };
        let request = StartRequest {
            source: "cluster0".into(),
            destination: "cluster1".into(),
            include_namespaces: Vec::new(),
            exclude_namespaces: Vec::new(),
            build_indexes: BuildIndexes::AfterDataCopy,
            reversible: false,
            enable_user_write_blocking: WriteBlocking::DestinationOnly,
            verification_enabled: false,
            detect_random_id: true,
            pre_existing_destination_data: false,
        };
        let options = SyncOptions {
            filter: NamespaceFilter::default(),
            build_indexes: BuildIndexes::AfterDataCopy,
            reversible: false,
            write_blocking: WriteBlocking::DestinationOnly,
            detect_random_id: true,
            pre_existing_destination_data: false,
            verification: false,
            load_level,
        };
        let config = EngineConfig {
            spill_dir,
            ..EngineConfig::default()
        };
        Migration::start(clusters, request, options, config)
            .await
            .expect("starting the migration")
    })
    .await;
    let progress = migration.progress();
    let mut first_document: Option<Duration> = None;
    while !progress.copy_done.load(Ordering::Relaxed) {
        assert_ne!(
            progress.phase(),
            Some(Phase::Failed),
            "the migration failed: {:?}",
            progress.failure.lock()
        );
        assert!(
            started.elapsed() < Duration::from_secs(1200),
            "the copy took over 20 minutes"
        );
        if first_document.is_none() && progress.copied_documents.load(Ordering::Relaxed) > 0 {
            first_document = Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = cpu_by_runtime();
    let rate = Rate {
        documents: progress.copied_documents.load(Ordering::Relaxed),
        bytes: progress.copied_bytes.load(Ordering::Relaxed),
        seconds,
    };
    CopyRun {
        migration,
        rate,
        first_document: first_document.map_or(0.0, |d| d.as_secs_f64()),
        cpu_before,
        cpu_after,
    }
}

/// The destination's upsert rate: `tasks` writers sending `update` commands of 1000
/// replacement upserts (`ordered`, `w: majority`, as c2c's applier sends them) on random
/// existing keys, for `seconds`.
async fn raw_upserts(destination: Client, tasks: usize, keys: i64, seconds: f64) -> Rate {
    let database = destination.database("bench_scratch");
    let pad = Arc::new(padding());
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut handles = Vec::new();
    for task in 0..tasks {
        let (database, pad, stop, done) =
            (database.clone(), pad.clone(), stop.clone(), done.clone());
        handles.push(tokio::spawn(async move {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (task as u64 + 1));
            // Every statement writes a new version, so none is a no-op.
            let mut version = (task as i64 + 1) << 40;
            while !stop.load(Ordering::Relaxed) {
                let updates: Vec<Document> = (0..INSERT_BATCH)
                    .map(|_| {
                        let id = rng.below(keys);
                        version += 1;
                        doc! {"q": {"_id": {"$eq": id}}, "u": document(id, version, &pad), "upsert": true}
                    })
                    .collect();
                database
                    .run_command(doc! {
                        "update": "upserts", "updates": updates, "ordered": true,
                        "bypassDocumentValidation": true, "writeConcern": {"w": "majority"},
                    })
                    .await
                    .expect("raw upserts");
                done.fetch_add(INSERT_BATCH as u64, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("upsert task panicked");
    }
    let documents = done.load(Ordering::Relaxed);
    Rate {
        documents,
        bytes: documents * DOC_BYTES as u64,
        seconds: started.elapsed().as_secs_f64(),
    }
}

async fn fill_scratch(destination: Client, keys: i64) {
    let collection = destination
        .database("bench_scratch")
        .collection::<Document>("upserts");
    collection
        .drop()
        .await
        .expect("dropping the scratch collection");
    let pad = padding();
    let mut id = 0;
    while id < keys {
        let end = (id + INSERT_BATCH as i64).min(keys);
        let batch: Vec<Document> = (id..end).map(|i| document(i, 0, &pad)).collect();
        collection
            .insert_many(batch)
            .ordered(false)
            .await
            .expect("filling the scratch collection");
        id = end;
    }
}

// ---------------------------------------------------------------------------------------
// 3. CEA under a steady write rate.

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends replacement upserts of random existing documents to the source at `rate`
/// statements per second (token bucket, 20 ms ticks, commands of at most 1000) until
/// `stop`; returns the statements sent.
async fn steady_writer(
    source: Client,
    documents: i64,
    rate: f64,
    stop: Arc<AtomicBool>,
    version: i64,
) -> u64 {
    let database = source.database(DB);
    let pad = padding();
    let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ version as u64);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        while sent < due && !stop.load(Ordering::Relaxed) {
            let count = (due - sent).min(INSERT_BATCH as u64);
            // A new version per statement: replacing a document with an identical one
            // is a no-op that writes no oplog entry (as in mongod).
            let updates: Vec<Document> = (0..count)
                .map(|i| {
                    let id = rng.below(documents);
                    let version = version + (sent + i) as i64;
                    doc! {"q": {"_id": id}, "u": document(id, version, &pad), "upsert": true}
                })
                .collect();
            database
                .run_command(doc! {"update": DOCS, "updates": updates, "ordered": false})
                .await
                .expect("source writes");
            sent += count;
        }
    }
    sent
}

/// Inserts a marker `{_id, t}` on the source and polls the destination until it is
/// there; returns the end-to-end lag in milliseconds.
async fn marker_lag(
    source: &Collection<Document>,
    destination: &Collection<Document>,
    id: i64,
) -> f64 {
    let written = Instant::now();
    source
        .insert_one(doc! {"_id": id, "t": now_ms()})
        .await
        .expect("inserting a marker");
    loop {
        if destination
            .find_one(doc! {"_id": id})
            .await
            .expect("polling the destination for a marker")
            .is_some()
        {
            return written.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(
            written.elapsed() < Duration::from_secs(300),
            "marker {id} did not reach the destination in 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

struct CeaRow {
    fraction: f64,
    target_rate: f64,
    written_rate: f64,
    applied_rate: f64,
    marker_p50_ms: f64,
    marker_max_ms: f64,
    markers: usize,
    progress_lag_p50: f64,
    progress_lag_max: f64,
    drain_seconds: f64,
    c2c_heap_peak_mib: f64,
    cpu: Value,
    cpu_line: String,
}

#[allow(clippy::too_many_arguments)]
async fn cea_run(
    load: Handle,
    source: Client,
    destination: Client,
    progress: Arc<Progress>,
    documents: i64,
    fraction: f64,
    rate: f64,
    seconds: u64,
    marker_base: i64,
) -> CeaRow {
    reset_peak(C2C);
    let stop = Arc::new(AtomicBool::new(false));
    let applied_before = progress.events_applied.load(Ordering::Relaxed);
    let cpu_before = cpu_by_runtime();
    let started = Instant::now();
    let writer = load.spawn(steady_writer(
        source.clone(),
        documents,
        rate,
        stop.clone(),
        marker_base,
    ));
    let marker_source = source.database(DB).collection::<Document>(MARKERS);
    let marker_destination = destination.database(DB).collection::<Document>(MARKERS);
    let markers = {
        let (stop, from, to) = (
            stop.clone(),
            marker_source.clone(),
            marker_destination.clone(),
        );
        load.spawn(async move {
            let mut lags = Vec::new();
            let mut id = marker_base;
            while !stop.load(Ordering::Relaxed) {
                lags.push(marker_lag(&from, &to, id).await);
                id += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (lags, id)
        })
    };
    let mut lag_samples = Vec::new();
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if let Some(lag) = progress.lag_seconds() {
            lag_samples.push(lag as f64);
        }
        assert_ne!(
            progress.phase(),
            Some(Phase::Failed),
            "the migration failed: {:?}",
            progress.failure.lock()
        );
    }
    stop.store(true, Ordering::Relaxed);
    let window = started.elapsed().as_secs_f64();
    let cpu_after = cpu_by_runtime();
    let sent = writer.await.expect("writer panicked");
    // Drain: a marker written as soon as the writer stopped shows when c2c caught up
    // (markers are applied after every event before them).
    let stopped = Instant::now();
    let last = on(&load, async move {
        marker_lag(
            &marker_source,
            &marker_destination,
            marker_base + 500_000_000,
        )
        .await
    })
    .await;
    let drain_seconds = stopped.elapsed().as_secs_f64();
    let applied = progress.events_applied.load(Ordering::Relaxed) - applied_before;
    let applied_seconds = started.elapsed().as_secs_f64();
    let (mut lags, _) = markers.await.expect("marker task panicked");
    lags.push(last);
    CeaRow {
        fraction,
        target_rate: rate,
        written_rate: sent as f64 / window,
        // Everything written (plus markers) was applied by the end of the drain.
        applied_rate: applied as f64 / applied_seconds,
        marker_p50_ms: percentile(&lags, 0.5),
        marker_max_ms: lags.iter().copied().fold(0.0, f64::max),
        markers: lags.len(),
        progress_lag_p50: percentile(&lag_samples, 0.5),
        progress_lag_max: lag_samples.iter().copied().fold(0.0, f64::max),
        drain_seconds,
        c2c_heap_peak_mib: mib(peak(C2C) as f64),
        cpu: cpu_json(cpu_before, cpu_after, window),
        cpu_line: cpu_line(cpu_before, cpu_after, window),
    }
}

/// c2c's apply capacity, free of what the source takes while it also serves the stream:
/// the migration is paused while the writer sends replacement upserts as fast as the
/// source takes them, then resumed; the rate is the events written divided by the time
/// from `resume` until a marker written after them is on the destination.
struct BacklogRow {
    written: u64,
    write_seconds: f64,
    drain_seconds: f64,
    cpu_line: String,
    cpu: Value,
}

impl BacklogRow {
    fn applied_rate(&self) -> f64 {
        self.written as f64 / self.drain_seconds
    }
}

#[allow(clippy::too_many_arguments)]
async fn cea_backlog(
    load: Handle,
    c2c: Handle,
    migration: Arc<Migration>,
    source: Client,
    destination: Client,
    documents: i64,
    seconds: u64,
    marker_id: i64,
) -> BacklogRow {
    let m = migration.clone();
    on(&c2c, async move {
        m.pause().await.expect("pausing the migration")
    })
    .await;
    let stop = Arc::new(AtomicBool::new(false));
    let writing = Instant::now();
    let writer = load.spawn(steady_writer(
        source.clone(),
        documents,
        f64::MAX,
        stop.clone(),
        marker_id,
    ));
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.expect("writer panicked");
    let write_seconds = writing.elapsed().as_secs_f64();
    let marker_source = source.database(DB).collection::<Document>(MARKERS);
    let marker_destination = destination.database(DB).collection::<Document>(MARKERS);
    on(&load, async move {
        marker_source
            .insert_one(doc! {"_id": marker_id, "t": now_ms()})
            .await
            .expect("inserting a marker")
    })
    .await;
    let cpu_before = cpu_by_runtime();
    let resumed = Instant::now();
    let m = migration.clone();
    on(&c2c, async move {
        m.resume().await.expect("resuming the migration")
    })
    .await;
    on(&load, async move {
        while marker_destination
            .find_one(doc! {"_id": marker_id})
            .await
            .expect("polling the destination for the marker")
            .is_none()
        {
            assert!(
                resumed.elapsed() < Duration::from_secs(600),
                "the backlog was not applied in 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let drain_seconds = resumed.elapsed().as_secs_f64();
    let cpu_after = cpu_by_runtime();
    BacklogRow {
        written: written + 1,
        write_seconds,
        drain_seconds,
        cpu_line: cpu_line(cpu_before, cpu_after, drain_seconds),
        cpu: cpu_json(cpu_before, cpu_after, drain_seconds),
    }
}

// ---------------------------------------------------------------------------------------

fn main() {
    let settings = Settings::from_env();
    let testbeds = runtime("testbed", TESTBED, 2);
    let engine = runtime("c2c", C2C, 2);
    let load = runtime("load", OTHER, 2);
    let (tb, c2c, lg) = (
        testbeds.handle().clone(),
        engine.handle().clone(),
        load.handle().clone(),
    );
    let report = load.block_on(bench(settings, tb, c2c, lg.clone()));
    write_report(&report);
    drop(load);
    drop(engine);
    drop(testbeds);
}

async fn bench(settings: Settings, tb: Handle, c2c: Handle, lg: Handle) -> Value {
    let n = settings.documents;
    println!(
        "c2c sync benchmark: {n} documents of {DOC_BYTES} B ({:.0} MiB), 3 runtimes (testbeds / c2c / load)",
        mib((n as usize * DOC_BYTES) as f64)
    );
    let baseline_rss = rss_mib();
    // The source keeps enough oplog for the CEA runs; the destinations' oplogs are read
    // by nobody, so they stay small.
    let source_tb = on(&tb, start_testbed(Some(4_000_000))).await;
    let raw_tb = on(&tb, start_testbed(Some(10_000))).await;
    let dest_tb = on(&tb, start_testbed(Some(10_000))).await;
    let (source_uri, raw_uri, dest_uri) = (source_tb.uri(), raw_tb.uri(), dest_tb.uri());

    let load_time = on(&lg, load_source(source_uri.clone(), n)).await;
    let testbed_after_load = mib(live(TESTBED) as f64);
    println!(
        "loaded the source in {:.1} s; testbeds' live heap {testbed_after_load:.0} MiB (documents + oplog + indexes)",
        load_time.as_secs_f64()
    );

    // 1. Raw ceiling, on the c2c runtime.
    reset_peak(C2C);
    let mut raw_rows = Vec::new();
    let mut raw_cpu = Vec::new();
    for &readers in &settings.readers {
        let (s, d) = (source_uri.clone(), raw_uri.clone());
        let cpu_before = cpu_by_runtime();
        let rate = on(&c2c, async move {
            let source = client(&s, readers as u32 + 1).await;
            let destination = client(&d, readers as u32 + 1).await;
            raw_copy(source, destination, format!("raw{readers}"), n, readers).await
        })
        .await;
        let cpu_after = cpu_by_runtime();
        println!(
            "raw find → insert_many, {readers} reader(s): {:>9.0} docs/s {:>7.1} MiB/s; {}",
            rate.docs_per_second(),
            rate.mib_per_second(),
            cpu_line(cpu_before, cpu_after, rate.seconds)
        );
        raw_cpu.push(cpu_json(cpu_before, cpu_after, rate.seconds));
        raw_rows.push((readers, rate));
    }
    let raw_heap_peak = mib(peak(C2C) as f64);
    let (best_readers, best) = raw_rows
        .iter()
        .copied()
        .max_by(|a, b| a.1.docs_per_second().total_cmp(&b.1.docs_per_second()))
        .expect("at least one raw run");
    on(&tb, raw_tb.shutdown()).await;

    // 2. c2c copy on a fresh destination, same source.
    let c2c_live_before = live(C2C);
    reset_peak(C2C);
    let rss_before_copy = rss_mib();
    let testbed_before_copy = live(TESTBED);
    let spill_dir = std::env::temp_dir().join(format!("c2c-bench-spill-{}", std::process::id()));
    let CopyRun {
        migration,
        rate: copy,
        first_document,
        cpu_before: copy_cpu_before,
        cpu_after: copy_cpu_after,
    } = c2c_copy(
        &c2c,
        &source_tb,
        &dest_tb,
        settings.load_level,
        spill_dir.clone(),
    )
    .await;
    let progress = migration.progress();
    let copy_seconds = copy.seconds;
    let copy_heap_peak = mib((peak(C2C) - c2c_live_before.min(peak(C2C))) as f64);
    let copy_heap_peak_abs = mib(peak(C2C) as f64);
    let rss_after_copy = rss_mib();
    let testbed_growth = mib((live(TESTBED) - testbed_before_copy) as f64);
    let percent = 100.0 * copy.docs_per_second() / best.docs_per_second();
    // The copy proper, without planning: first copied batch → copy done.
    let streaming = Rate {
        seconds: (copy_seconds - first_document).max(1e-3),
        ..copy
    };
    let streaming_percent = 100.0 * streaming.docs_per_second() / best.docs_per_second();
    println!(
        "c2c copy: {} docs in {copy_seconds:.2} s = {:.0} docs/s, {:.1} MiB/s ({percent:.0} % of the raw ceiling); first batch copied after {first_document:.2} s; {}",
        copy.documents,
        copy.docs_per_second(),
        copy.mib_per_second(),
        cpu_line(copy_cpu_before, copy_cpu_after, copy_seconds)
    );
    println!(
        "  after the first batch: {:.0} docs/s, {:.1} MiB/s ({streaming_percent:.0} % of the raw ceiling)",
        streaming.docs_per_second(),
        streaming.mib_per_second()
    );

    // Steady state before CEA.
    let steady_started = Instant::now();
    while progress.phase() != Some(Phase::SteadyState) {
        assert!(
            steady_started.elapsed() < Duration::from_secs(120),
            "no steady state after 2 minutes (phase {:?})",
            progress.phase()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (s, d) = (source_uri.clone(), dest_uri.clone());
    let (source_client, dest_client) =
        on(
            &lg,
            async move { (client(&s, 8).await, client(&d, 8).await) },
        )
        .await;
    let dest_count = dest_client
        .database(DB)
        .collection::<Document>(DOCS)
        .count_documents(doc! {})
        .await
        .expect("counting the destination");
    assert_eq!(
        dest_count, n as u64,
        "the destination does not hold every document"
    );

    // Where the planning time goes: the two source commands whose cost grows with the
    // collection (discovery's size estimate and the partition sampler's $sample).
    // The planner's sample for this collection (its size estimate is the documents' bytes).
    let sample_size = partition::sample_size(
        partition::wanted_partitions(
            n as u64 * DOC_BYTES as u64,
            n as u64,
            PARTITION_TARGET_BYTES,
        ),
        n as u64,
    );
    let s = source_uri.clone();
    let (collstats_seconds, sample_seconds) = on(&c2c, async move {
        let collection = client(&s, 1)
            .await
            .database(DB)
            .collection::<Document>(DOCS);
        let started = Instant::now();
        let _: Vec<Document> = collection
            .aggregate(vec![doc! {"$collStats": {"storageStats": {}}}])
            .await
            .expect("$collStats")
            .try_collect()
            .await
            .expect("$collStats results");
        let collstats = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let _: Vec<Document> = collection
            .aggregate(vec![
                doc! {"$sample": {"size": sample_size as i64}},
                doc! {"$project": {"_id": 1}},
            ])
            .await
            .expect("$sample")
            .try_collect()
            .await
            .expect("$sample results");
        (collstats, started.elapsed().as_secs_f64())
    })
    .await;
    println!(
        "  planning commands on the source: $collStats {collstats_seconds:.2} s, $sample {sample_size} of {n} {sample_seconds:.2} s"
    );

    // 3a. The destination's raw upsert rate (scratch collection on the destination).
    let keys = n.min(50_000);
    let d = dest_uri.clone();
    on(&c2c, async move {
        fill_scratch(client(&d, 2).await, keys).await
    })
    .await;
    let mut upsert_rows = Vec::new();
    for &tasks in &settings.upsert_tasks {
        let d = dest_uri.clone();
        let cpu_before = cpu_by_runtime();
        let rate = on(&c2c, async move {
            raw_upserts(client(&d, tasks as u32 + 1).await, tasks, keys, 3.0).await
        })
        .await;
        println!(
            "raw upserts on the destination, {tasks} writer(s): {:>9.0} docs/s; {}",
            rate.docs_per_second(),
            cpu_line(cpu_before, cpu_by_runtime(), rate.seconds)
        );
        upsert_rows.push((tasks, rate));
    }
    let d = dest_uri.clone();
    on(&c2c, async move {
        client(&d, 1)
            .await
            .database("bench_scratch")
            .drop()
            .await
            .expect("dropping the scratch database")
    })
    .await;
    let upsert_ceiling = upsert_rows
        .iter()
        .map(|(_, rate)| rate.docs_per_second())
        .fold(0.0, f64::max);

    // 3b. CEA at fractions of it.
    let mut cea_rows = Vec::new();
    for (index, &fraction) in settings.cea_rates.iter().enumerate() {
        let row = cea_run(
            lg.clone(),
            source_client.clone(),
            dest_client.clone(),
            progress.clone(),
            n,
            fraction,
            fraction * upsert_ceiling,
            settings.cea_seconds,
            1_000_000_000 * (index as i64 + 1),
        )
        .await;
        println!(
            "CEA at {:.0} % ({:.0}/s): wrote {:.0}/s, applied {:.0} events/s, marker lag p50 {:.0} ms max {:.0} ms, progress lag p50 {:.0} s max {:.0} s, drain {:.2} s",
            fraction * 100.0,
            row.target_rate,
            row.written_rate,
            row.applied_rate,
            row.marker_p50_ms,
            row.marker_max_ms,
            row.progress_lag_p50,
            row.progress_lag_max,
            row.drain_seconds
        );
        println!("  {}", row.cpu_line);
        cea_rows.push(row);
    }
    // 3c. The same applier on a backlog: its capacity against the raw upsert rate.
    let backlog = cea_backlog(
        lg.clone(),
        c2c.clone(),
        migration.clone(),
        source_client.clone(),
        dest_client.clone(),
        n,
        settings.cea_seconds,
        900_000_000_000,
    )
    .await;
    println!(
        "CEA backlog: wrote {} events in {:.1} s while paused; after resume all applied in {:.2} s = {:.0} events/s ({:.0} % of the raw upsert rate)",
        backlog.written,
        backlog.write_seconds,
        backlog.drain_seconds,
        backlog.applied_rate(),
        100.0 * backlog.applied_rate() / upsert_ceiling
    );
    println!("  {}", backlog.cpu_line);
    let final_rss = rss_mib();
    let hwm = hwm_mib();
    let testbed_final = mib(live(TESTBED) as f64);
    let c2c_final = mib(live(C2C) as f64);

    let m = migration.clone();
    on(&c2c, async move { m.shutdown().await }).await;
    drop(migration);
    on(&tb, dest_tb.shutdown()).await;
    let _ = std::fs::remove_dir_all(&spill_dir);

    // 4. More copy pairs, each a raw loop (the best reader count) and a c2c copy back to
    // back on fresh destinations, in alternating order: the machine's speed drifts over
    // minutes, so each c2c copy is compared with the raw loop beside it.
    let mut pairs = vec![CopyPair {
        raw_first: true,
        raw: best,
        c2c: copy,
    }];
    for index in 0..settings.extra_copy_pairs {
        let raw_first = index % 2 == 1;
        let mut raw = None;
        let mut c2c_rate = None;
        for raw_turn in [raw_first, !raw_first] {
            if raw_turn {
                let raw_tb = on(&tb, start_testbed(Some(10_000))).await;
                let (s, d) = (source_uri.clone(), raw_tb.uri());
                raw = Some(
                    on(&c2c, async move {
                        let source = client(&s, best_readers as u32 + 1).await;
                        let destination = client(&d, best_readers as u32 + 1).await;
                        raw_copy(source, destination, "raw".into(), n, best_readers).await
                    })
                    .await,
                );
                on(&tb, raw_tb.shutdown()).await;
            } else {
                let dest_tb = on(&tb, start_testbed(Some(10_000))).await;
                let run = c2c_copy(
                    &c2c,
                    &source_tb,
                    &dest_tb,
                    settings.load_level,
                    spill_dir.join(format!("pair{index}")),
                )
                .await;
                let m = run.migration.clone();
                on(&c2c, async move { m.shutdown().await }).await;
                drop(run.migration);
                on(&tb, dest_tb.shutdown()).await;
                c2c_rate = Some(run.rate);
            }
        }
        let pair = CopyPair {
            raw_first,
            raw: raw.expect("the raw run of the pair"),
            c2c: c2c_rate.expect("the c2c run of the pair"),
        };
        println!(
            "copy pair {} ({} first): raw {:.0} docs/s, c2c {:.0} docs/s = {:.0} %",
            index + 2,
            if raw_first { "raw" } else { "c2c" },
            pair.raw.docs_per_second(),
            pair.c2c.docs_per_second(),
            pair.percent()
        );
        pairs.push(pair);
    }
    let _ = std::fs::remove_dir_all(&spill_dir);
    on(&tb, source_tb.shutdown()).await;
    let pair_percents: Vec<f64> = pairs.iter().map(CopyPair::percent).collect();
    let pairs_median = median(&pair_percents);
    let pairs_lowest = pair_percents.iter().copied().fold(f64::INFINITY, f64::min);

    // Table.
    println!();
    println!(
        "{:<58} {:>10} {:>9} {:>9}",
        "case", "docs/s", "MiB/s", "% raw"
    );
    for (readers, rate) in &raw_rows {
        println!(
            "{:<58} {:>10.0} {:>9.1} {:>9}",
            format!("raw find → insert_many, {readers} range reader(s)"),
            rate.docs_per_second(),
            rate.mib_per_second(),
            ""
        );
    }
    println!(
        "{:<58} {:>10.0} {:>9.1} {:>8.0}%",
        format!(
            "c2c copy (start → copy done, loadLevel {})",
            settings.load_level.get()
        ),
        copy.docs_per_second(),
        copy.mib_per_second(),
        percent
    );
    for (tasks, rate) in &upsert_rows {
        println!(
            "{:<58} {:>10.0} {:>9.1} {:>9}",
            format!("raw upserts on the destination, {tasks} writer(s)"),
            rate.docs_per_second(),
            rate.mib_per_second(),
            ""
        );
    }
    println!();
    println!(
        "{:<14} {:>9} {:>9} {:>11} {:>10} {:>10} {:>12} {:>9}",
        "CEA rate",
        "target/s",
        "wrote/s",
        "applied/s",
        "lag p50",
        "lag max",
        "progress max",
        "drain"
    );
    for row in &cea_rows {
        println!(
            "{:<14} {:>9.0} {:>9.0} {:>11.0} {:>8.0}ms {:>8.0}ms {:>11.0}s {:>8.2}s",
            format!("{:.0} % of raw", row.fraction * 100.0),
            row.target_rate,
            row.written_rate,
            row.applied_rate,
            row.marker_p50_ms,
            row.marker_max_ms,
            row.progress_lag_max,
            row.drain_seconds
        );
    }
    println!(
        "{:<14} {:>9} {:>9} {:>11} {:>10}",
        "CEA backlog",
        "written",
        "",
        format!("{:.0}", backlog.applied_rate()),
        format!(
            "{:.0} % raw",
            100.0 * backlog.applied_rate() / upsert_ceiling
        )
    );
    let cea_heap_peak = cea_rows
        .iter()
        .map(|r| r.c2c_heap_peak_mib)
        .fold(0.0, f64::max);
    println!();
    println!("memory (MiB): c2c heap peak during copy {copy_heap_peak_abs:.1} (+{copy_heap_peak:.1} over its idle heap), during CEA {cea_heap_peak:.1}; raw loops' peak {raw_heap_peak:.1}");
    println!(
        "              process VmHWM {hwm:.0}, VmRSS baseline {baseline_rss:.0} / before copy {rss_before_copy:.0} / after copy {rss_after_copy:.0} / end {final_rss:.0}"
    );
    println!(
        "              testbeds' live heap after load {testbed_after_load:.0}, grown during the copy {testbed_growth:.0}, at the end {testbed_final:.0}; c2c live at the end {c2c_final:.1}"
    );

    println!();
    println!(
        "{:<6} {:<11} {:>10} {:>10} {:>7}",
        "pair", "first", "raw/s", "c2c/s", "c2c %"
    );
    for (index, pair) in pairs.iter().enumerate() {
        println!(
            "{:<6} {:<11} {:>10.0} {:>10.0} {:>6.0}%",
            index + 1,
            if pair.raw_first { "raw" } else { "c2c" },
            pair.raw.docs_per_second(),
            pair.c2c.docs_per_second(),
            pair.percent()
        );
    }
    // Judged on the pairs: one c2c copy against one raw ceiling minutes earlier says
    // more about the machine's drift than about c2c.
    let targets_copy = pairs_median >= 90.0;
    // The CEA target counts only where the source really took ≥ 80 % of the
    // destination's raw upsert rate (a writer that falls short proves nothing).
    let reached: Vec<&CeaRow> = cea_rows
        .iter()
        .filter(|r| r.written_rate >= 0.8 * upsert_ceiling * 0.97)
        .collect();
    let eighty = reached
        .iter()
        .map(|r| r.marker_max_ms)
        .fold(None, |acc: Option<f64>, v| {
            Some(acc.map_or(v, |a| a.max(v)))
        });
    let best_written = cea_rows.iter().map(|r| r.written_rate).fold(0.0, f64::max);
    let heap_peak = copy_heap_peak_abs.max(cea_heap_peak);
    println!(
        "targets: copy ≥ 90 % of raw: {} (median of {} pairs {pairs_median:.0} %, lowest {pairs_lowest:.0} %); CEA lag < 1 s at 80 %: {}; c2c memory < 300 MiB: {}",
        if targets_copy { "met" } else { "NOT met" },
        pairs.len(),
        match eighty {
            Some(lag) if lag < 1000.0 => "met".to_string(),
            Some(lag) => format!("NOT met (max {lag:.0} ms)"),
            None => format!(
                "not reached (the source took at most {best_written:.0} writes/s = {:.0} % of the raw upsert rate)",
                100.0 * best_written / upsert_ceiling
            ),
        },
        if heap_peak < 300.0 { "met" } else { "NOT met" }
    );

    json!({
        "documents": n,
        "document_bytes": DOC_BYTES,
        "load_seconds": load_time.as_secs_f64(),
        "raw_ceiling": {
            "runs": raw_rows.iter().zip(&raw_cpu).map(|((readers, rate), cpu)| {
                let mut v = rate.json();
                v["readers"] = json!(readers);
                v["cpu"] = cpu.clone();
                v
            }).collect::<Vec<_>>(),
            "best_readers": best_readers,
            "best": best.json(),
        },
        "c2c_copy": {
            "result": copy.json(),
            "percent_of_raw_ceiling": percent,
            "seconds_to_first_batch": first_document,
            "after_first_batch": streaming.json(),
            "after_first_batch_percent_of_raw_ceiling": streaming_percent,
            "cpu": cpu_json(copy_cpu_before, copy_cpu_after, copy_seconds),
            "source_collstats_seconds": collstats_seconds,
            "source_sample_seconds": sample_seconds,
            "source_sample_size": sample_size,
            "load_level": settings.load_level.get(),
        },
        "copy_pairs": {
            "method": "the first pair is the raw sweep's best run and the main c2c copy; each further pair runs the raw loop (best reader count) and a c2c copy back to back on fresh destinations, in alternating order",
            "pairs": pairs.iter().map(|pair| json!({
                "raw_first": pair.raw_first,
                "raw": pair.raw.json(),
                "c2c": pair.c2c.json(),
                "percent_of_raw": pair.percent(),
            })).collect::<Vec<_>>(),
            "median_percent_of_raw": pairs_median,
            "lowest_percent_of_raw": pairs_lowest,
        },
        "destination_raw_upserts": {
            "runs": upsert_rows.iter().map(|(tasks, rate)| {
                let mut v = rate.json();
                v["writers"] = json!(tasks);
                v
            }).collect::<Vec<_>>(),
            "best_docs_per_second": upsert_ceiling,
        },
        "cea": cea_rows.iter().map(|r| json!({
            "fraction_of_raw_upserts": r.fraction,
            "target_writes_per_second": r.target_rate,
            "written_per_second": r.written_rate,
            "events_applied_per_second": r.applied_rate,
            "marker_lag_ms": {"p50": r.marker_p50_ms, "max": r.marker_max_ms, "samples": r.markers},
            "progress_lag_seconds": {"p50": r.progress_lag_p50, "max": r.progress_lag_max},
            "drain_seconds": r.drain_seconds,
            "c2c_heap_peak_mib": r.c2c_heap_peak_mib,
            "cpu": r.cpu,
        })).collect::<Vec<_>>(),
        "cea_backlog": {
            "method": "paused while the writer sends replacement upserts as fast as the source takes them; timed from resume until a marker written after them is on the destination",
            "events_written": backlog.written,
            "write_seconds": backlog.write_seconds,
            "seconds_from_resume_until_applied": backlog.drain_seconds,
            "events_applied_per_second": backlog.applied_rate(),
            "percent_of_raw_upserts": 100.0 * backlog.applied_rate() / upsert_ceiling,
            "cpu": backlog.cpu,
        },
        "memory_mib": {
            "method": "counting global allocator; every allocation is charged to the Tokio runtime whose thread made it (testbeds / c2c / load generator)",
            "c2c_heap_peak_copy": copy_heap_peak_abs,
            "c2c_heap_peak_copy_over_idle": copy_heap_peak,
            "c2c_heap_peak_cea": cea_heap_peak,
            "raw_loops_heap_peak": raw_heap_peak,
            "process_vm_hwm": hwm,
            "process_rss": {"baseline": baseline_rss, "before_copy": rss_before_copy, "after_copy": rss_after_copy, "end": final_rss},
            "testbeds_live_heap": {"after_load": testbed_after_load, "copy_growth": testbed_growth, "end": testbed_final},
            "c2c_live_heap_end": c2c_final,
            "tags": TAGS,
        },
        "targets": {
            "copy_percent_of_raw_ge_90": targets_copy,
            "cea_lag_under_1s_at_80_percent": eighty.map(|lag| lag < 1000.0),
            "cea_highest_written_fraction_of_raw_upserts": best_written / upsert_ceiling,
            "c2c_memory_under_300_mib": heap_peak < 300.0,
        },
    })
}

fn write_report(report: &Value) {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&directory).expect("creating target/bench");
    let path = directory.join("sync.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(report).expect("encoding the report"),
    )
    .expect("writing target/bench/sync.json");
    println!("wrote {}", path.display());
}
