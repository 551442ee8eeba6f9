//! The verifier benchmark: throughput (documents/s) and peak memory of the comparison,
//! on a dataset far larger than a verifier that keeps per-document state could hold.
//! Prints a table and writes `target/bench/verify.json`.
//!
//! ```sh
//! cargo bench -p c2c-coordinator --bench verify
//! C2C_BENCH_VERIFY_DOCS=500000 C2C_BENCH_VERIFY_PARTS=oneshot cargo bench -p c2c-coordinator --bench verify
//! ```
//!
//! 1. **One-shot** (`c2c verify`): both clusters hold the same D documents; the `c2c verify`
//!    child compares them (`--loadLevel 4`). Throughput is the source documents hashed per
//!    second of its run (each is also hashed on the destination); peak RSS is the child's
//!    `VmHWM`. mongosync's verifier memory model (0.5 GB per million documents) fits
//!    ~420,000 documents in c2c's 200 MiB bound; the default D = 5,000,000 is 12× that.
//!    The in-process testbeds keep documents as BSON bytes (`compact_documents`), ~700
//!    bytes per 128-byte document per side, so D = 10,000,000 (24×) needs ~14 GiB.
//! 2. **Embedded**: a `c2c run` child syncs E documents with verification on (the
//!    default); timed from the start of change event application (when the verifier
//!    starts) until both sides are in "stream hashing"; peak RSS of the whole `c2c run`
//!    process (copy, change streams and verifier together).
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `C2C_BENCH_VERIFY_DOCS` | 5000000 | documents of the one-shot run (on each cluster) |
//! | `C2C_BENCH_EMBEDDED_DOCS` | 300000 | documents of the embedded run |
//! | `C2C_BENCH_VERIFY_DOC_BYTES` | 128 | size of each document |
//! | `C2C_BENCH_VERIFY_PARTS` | `oneshot,embedded` | which runs to do |
//!
//! The testbeds run inside this process, so the children's memory is theirs alone.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bson::{doc, Document};
use c2c_coordinator::rest_client::RestClient;
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use futures::stream::{self, StreamExt};
use mongodb::Client;
use serde_json::{json, Value};

const INSERT_BATCH: i64 = 10_000;
const LOADERS: usize = 4;
const MIB: f64 = 1024.0 * 1024.0;
const POLL: Duration = Duration::from_millis(50);
/// The verifier's documented memory bound (issue: under 200 MiB for any dataset).
const BOUND_MIB: f64 = 200.0;
/// mongosync's verifier model: 0.5 GB per million documents (beyond its fixed ~10 GB).
const MONGOSYNC_BYTES_PER_DOCUMENT: f64 = 500.0;

struct Settings {
    oneshot_docs: i64,
    embedded_docs: i64,
    doc_bytes: usize,
    parts: Vec<String>,
}

fn env_number(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            oneshot_docs: env_number("C2C_BENCH_VERIFY_DOCS", 5_000_000),
            embedded_docs: env_number("C2C_BENCH_EMBEDDED_DOCS", 300_000),
            doc_bytes: env_number("C2C_BENCH_VERIFY_DOC_BYTES", 128) as usize,
            parts: std::env::var("C2C_BENCH_VERIFY_PARTS")
                .unwrap_or_else(|_| "oneshot,embedded".into())
                .split(',')
                .map(|p| p.trim().to_string())
                .collect(),
        }
    }
}

/// Peak resident memory of a live process, in MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Waits for a child, sampling its peak memory until it exits.
async fn wait_with_peak(mut child: Child) -> (std::process::ExitStatus, f64) {
    let pid = child.id();
    let mut peak = 0.0f64;
    loop {
        if let Some(mib) = peak_rss_mib(pid) {
            peak = peak.max(mib);
        }
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return (status, peak);
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The testbeds hold everything in this process: stop before the machine swaps.
fn check_memory(documents: i64) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let available_kib: u64 = meminfo
        .lines()
        .find(|line| line.starts_with("MemAvailable:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(u64::MAX);
    assert!(
        available_kib > 3 << 20,
        "less than 3 GiB of memory left while loading {documents} documents into the in-process testbeds; set C2C_BENCH_VERIFY_DOCS lower"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a probe port")
        .local_addr()
        .expect("the probe's address")
        .port()
}

/// `oplog_entries` bounds the testbed's oplog: the one-shot run reads no change stream,
/// and millions of loaded documents would otherwise sit in memory twice. `compact` keeps
/// documents as BSON bytes (a third of the memory), so millions fit.
async fn testbed(oplog_entries: Option<usize>, compact: bool) -> (TestbedHandle, Client) {
    let bed = Testbed::start(TestbedConfig {
        idle_noop_interval: Duration::from_millis(500),
        oplog_retention: oplog_entries,
        compact_documents: compact,
        ..TestbedConfig::default()
    })
    .await
    .expect("testbed");
    let client = Client::with_uri_str(bed.uri()).await.expect("client");
    (bed, client)
}

fn document(i: i64, padding: &str) -> Document {
    doc! {"_id": i, "n": i, "k": format!("key-{:08}", i % 100_000), "s": padding}
}

fn padding(bytes: usize) -> String {
    let probe = doc! {"_id": 0i64, "n": 0i64, "k": "key-00000000", "s": ""};
    let size = bson::to_vec(&probe).expect("encoding a probe").len();
    "x".repeat(bytes.saturating_sub(size))
}

/// Inserts `documents` into `bench.items` of every client (the same documents).
async fn load(clients: &[&Client], documents: i64, doc_bytes: usize) -> f64 {
    let started = Instant::now();
    let pad = padding(doc_bytes);
    let batches: Vec<i64> = (0..documents).step_by(INSERT_BATCH as usize).collect();
    for client in clients {
        let items = client.database("bench").collection::<Document>("items");
        stream::iter(batches.clone())
            .map(|start| {
                let (items, pad) = (items.clone(), pad.clone());
                async move {
                    check_memory(documents);
                    let end = (start + INSERT_BATCH).min(documents);
                    let docs: Vec<Document> = (start..end).map(|i| document(i, &pad)).collect();
                    items.insert_many(docs).await.expect("loading documents");
                }
            })
            .buffer_unordered(LOADERS)
            .collect::<Vec<_>>()
            .await;
    }
    started.elapsed().as_secs_f64()
}

struct OneShot {
    documents: u64,
    seconds: f64,
    docs_per_second: f64,
    peak_mib: f64,
    load_seconds: f64,
    testbed_bytes_per_document: f64,
}

async fn oneshot_run(settings: &Settings) -> OneShot {
    let (source_bed, source) = testbed(Some(10_000), true).await;
    let (destination_bed, destination) = testbed(Some(10_000), true).await;
    eprintln!(
        "one-shot: loading {} documents of {} bytes into both clusters",
        settings.oneshot_docs, settings.doc_bytes
    );
    let load_seconds = load(
        &[&source, &destination],
        settings.oneshot_docs,
        settings.doc_bytes,
    )
    .await;
    let testbed_mib = peak_rss_mib(std::process::id()).unwrap_or(0.0);
    let testbed_bytes_per_document =
        testbed_mib * 1024.0 * 1024.0 / (2.0 * settings.oneshot_docs.max(1) as f64);
    eprintln!(
        "one-shot: loaded in {load_seconds:.1} s; the testbeds peaked at {testbed_mib:.0} MiB ({testbed_bytes_per_document:.0} bytes per document per side); running c2c verify"
    );
    let child = Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args([
            "verify",
            "--cluster0",
            &source_bed.uri(),
            "--cluster1",
            &destination_bed.uri(),
            "--loadLevel",
            "4",
            "--json",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawning c2c verify");
    let mut child = child;
    let stdout = child.stdout.take().expect("stdout");
    let (status, peak_mib) = wait_with_peak(child).await;
    let text = std::io::read_to_string(stdout).expect("reading the report");
    assert!(status.success(), "c2c verify failed ({status}): {text}");
    let report: Value = serde_json::from_str(text.trim()).expect("the JSON report");
    assert_eq!(report["equal"], true, "{report}");
    let documents = report["sourceDocuments"].as_u64().unwrap_or(0);
    assert_eq!(documents, settings.oneshot_docs as u64, "{report}");
    let seconds = report["seconds"].as_f64().unwrap_or(0.0);
    OneShot {
        documents,
        seconds,
        docs_per_second: documents as f64 / seconds.max(1e-9),
        peak_mib,
        load_seconds,
        testbed_bytes_per_document,
    }
}

struct Embedded {
    documents: u64,
    copy_seconds: f64,
    hashing_seconds: f64,
    docs_per_second: f64,
    peak_mib: f64,
}

async fn embedded_run(settings: &Settings) -> Embedded {
    let (source_bed, source) = testbed(None, false).await;
    let (destination_bed, _destination) = testbed(None, false).await;
    eprintln!(
        "embedded: loading {} documents into the source",
        settings.embedded_docs
    );
    load(&[&source], settings.embedded_docs, settings.doc_bytes).await;
    let port = free_port();
    let log = std::env::temp_dir().join(format!("c2c-bench-verify-{port}.log"));
    let log_file = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args([
            "run",
            "--cluster0",
            &source_bed.uri(),
            "--cluster1",
            &destination_bed.uri(),
            "--port",
            &port.to_string(),
            "--loadLevel",
            "4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file.try_clone().expect("log file")))
        .stderr(Stdio::from(log_file))
        .spawn()
        .expect("spawning c2c run");
    let pid = child.id();
    let rest = RestClient::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    let deadline = Instant::now() + Duration::from_secs(1800);
    let started = loop {
        if let Ok((200, _)) = rest
            .post(
                "/api/v1/start",
                &json!({"source": "cluster0", "destination": "cluster1"}),
            )
            .await
        {
            break Instant::now();
        }
        assert!(Instant::now() < deadline, "c2c run never accepted /start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut cea_started = None;
    let mut peak_mib = 0.0f64;
    let progress = loop {
        if let Some(mib) = peak_rss_mib(pid) {
            peak_mib = peak_mib.max(mib);
        }
        if let Ok((200, body)) = rest.get("/api/v1/progress").await {
            let progress = body["progress"].clone();
            if let Some(warnings) = progress["warnings"].as_array() {
                assert!(
                    !warnings.iter().any(|w| w.to_string().contains("fatal")),
                    "{progress}"
                );
            }
            if cea_started.is_none() && progress["info"] == "change event application" {
                cea_started = Some(Instant::now());
            }
            let verification = &progress["verification"];
            if cea_started.is_some()
                && verification["source"]["phase"] == "stream hashing"
                && verification["destination"]["phase"] == "stream hashing"
            {
                break progress;
            }
        }
        assert!(
            Instant::now() < deadline,
            "verification did not reach stream hashing; see {}",
            log.display()
        );
        tokio::time::sleep(POLL).await;
    };
    let finished = Instant::now();
    let _ = child.kill();
    let _ = child.wait();
    let cea_started = cea_started.expect("change event application seen");
    let documents = progress["verification"]["source"]["hashedDocumentCount"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(documents, settings.embedded_docs as u64, "{progress}");
    let hashing_seconds = (finished - cea_started).as_secs_f64();
    Embedded {
        documents,
        copy_seconds: (cea_started - started).as_secs_f64(),
        hashing_seconds,
        docs_per_second: documents as f64 / hashing_seconds.max(1e-9),
        peak_mib,
    }
}

fn report_path() -> PathBuf {
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&directory).expect("creating target/bench");
    directory.join("verify.json")
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a test harness run (`cargo test --benches`) does not
    // and must stay quick.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("verify bench: run with `cargo bench -p c2c-coordinator --bench verify`");
        return;
    }
    let settings = Settings::from_env();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = json!({
        "machine": {"cores": cores},
        "boundMiB": BOUND_MIB,
        "documentBytes": settings.doc_bytes,
    });
    println!("verifier benchmark ({cores} cores; testbeds in this process, c2c as a child)");
    println!("| run | documents | seconds | documents/s | peak RSS MiB |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    if settings.parts.iter().any(|p| p == "oneshot") {
        let run = oneshot_run(&settings).await;
        println!(
            "| c2c verify (one-shot, both sides) | {} | {:.1} | {:.0} | {:.0} |",
            run.documents, run.seconds, run.docs_per_second, run.peak_mib
        );
        let capacity = BOUND_MIB * MIB / MONGOSYNC_BYTES_PER_DOCUMENT;
        println!(
            "  ({:.1}× the {capacity:.0} documents whose hashes mongosync's verifier model, 0.5 GB per million, fits in {BOUND_MIB:.0} MiB)",
            run.documents as f64 / capacity
        );
        report["oneshot"] = json!({
            "documents": run.documents,
            "seconds": run.seconds,
            "documentsPerSecond": run.docs_per_second,
            "peakRssMiB": run.peak_mib,
            "loadSeconds": run.load_seconds,
            "withinBound": run.peak_mib < BOUND_MIB,
            "mongosyncModelMiB": run.documents as f64 * MONGOSYNC_BYTES_PER_DOCUMENT / MIB,
            "timesMongosyncModelCapacity": run.documents as f64
                / (BOUND_MIB * MIB / MONGOSYNC_BYTES_PER_DOCUMENT),
            "testbedBytesPerDocumentPerSide": run.testbed_bytes_per_document,
        });
    }
    if settings.parts.iter().any(|p| p == "embedded") {
        let run = embedded_run(&settings).await;
        println!(
            "| embedded (initial hashing during CEA; RSS of the whole c2c run) | {} | {:.1} | {:.0} | {:.0} |",
            run.documents, run.hashing_seconds, run.docs_per_second, run.peak_mib
        );
        report["embedded"] = json!({
            "documents": run.documents,
            "copySeconds": run.copy_seconds,
            "hashingSeconds": run.hashing_seconds,
            "documentsPerSecond": run.docs_per_second,
            "peakRssMiB": run.peak_mib,
        });
    }
    let path = report_path();
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("encoding the report"),
    )
    .expect("writing the report");
    println!("written to {}", path.display());
}
