//! The scale-out benchmark: c2c's scaled-out mode as separate processes — a real etcd,
//! `c2c coordinator` and `c2c worker` children of this benchmark, and two in-process
//! testbeds with per-operation latency that stands in for remote clusters. Prints a table
//! and writes `target/bench/scaleout.json`.
//!
//! ```sh
//! cargo bench -p c2c-coordinator --bench scaleout
//! C2C_BENCH_WORKERS=1,2 C2C_BENCH_DOCS=30000 cargo bench -p c2c-coordinator --bench scaleout
//! ```
//!
//! 1. **Scaling**, for each worker count N: one coordinator and N workers copy D documents
//!    of 1 KiB spread over 8 collections in 4 databases (timed from `/start` until every
//!    byte is copied and `ceaStage` is "steady state"), then 8 writer tasks send batched
//!    `$inc` updates to random source documents of all 4 databases as fast as the source
//!    takes them for S seconds while the migration is paused; CEA throughput is the
//!    events written divided by the time from `/resume` until a marker written after
//!    them is on the destination in every database (a database belongs to one
//!    change-stream shard, applied in order; there are as many shards as workers at the
//!    first plan). A backlog measures c2c: live, the rate is what the shared source takes
//!    while serving every shard's change stream. The worker counts run in mirrored order
//!    (1, 2, 4, 4, 2, 1 with `C2C_BENCH_ROUNDS=2`) and each count's mean rate is compared,
//!    so that the machine's drift over the run favours no count.
//! 2. **Machine limit**: the same copy and CEA with no latency, with the most workers and
//!    twice as many; the best rates seen (these runs' and the scaling runs') are what
//!    this machine can copy and apply at all, every process (testbeds and writers
//!    included) sharing its cores. Each target is
//!    0.8 × N times the first worker count's rate up to that limit:
//!    0.8 × min(N × first, limit).
//! 3. **Leader failover**: 2 coordinators and 2 workers on a running migration; `kill -9`
//!    of the leader → the other coordinator is the etcd leader and answers `/progress`
//!    itself with its own id as `coordinatorID`. The killed one restarts as a follower;
//!    repeated.
//! 4. **Worker loss**: 3 workers during a copy; `kill -9` of one → it is gone from
//!    `/progress` `workers` (its 3 s lease expired), a survivor's unfinished partitions
//!    (`partitionsAssigned` − `partitionsDone`, which otherwise only shrinks) grew between
//!    two polls, and the
//!    total copied bytes passed their value at the moment it disappeared. The copy then
//!    completes on the survivors and every document is checked on the destination.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `C2C_BENCH_WORKERS` | `1,2,4` | worker counts for the scaling runs |
//! | `C2C_BENCH_DOCS` | 960000 | 1 KiB source documents of a scaling run (fewer: the fixed ~0.5 s of planning and phase changes weigh more) |
//! | `C2C_BENCH_LATENCY_MS` | 2 | per-operation latency of both testbeds (set after the load) |
//! | `C2C_BENCH_CEA_SECONDS` | 8 | seconds of source writes per scaling run |
//! | `C2C_BENCH_PARTITION_KIB` | 512 | copy partition size (`C2C_PARTITION_TARGET_BYTES`) |
//! | `C2C_BENCH_LOAD_LEVEL` | 3 | `--loadLevel` of the coordinators: 1, 2, 4 or 8 partitions copied at once per worker |
//! | `C2C_BENCH_FAILOVERS` | 3 | leader kills in the failover run |
//! | `C2C_BENCH_LOSS_DOCS` | 60000 | documents of the worker-loss run |
//! | `C2C_BENCH_LOSS_LATENCY_MS` | 20 | latency of the worker-loss run (so its copy lasts) |
//! | `C2C_BENCH_LOSS_PARTITION_KIB` | 64 | partition size of the worker-loss run |
//! | `C2C_BENCH_VERIFICATION` | 0 | 1: the embedded verifier on (mongosync's default); its initial hashing of the whole dataset then runs in the CEA window, on the shard owners (see the verify bench for its own throughput) |
//! | `C2C_BENCH_ROUNDS` | 2 | passes over the worker counts, every other one in reverse (1, 2, 4, 4, 2, 1): the machine's speed drifts, and in mirrored order a steady drift favours no count; ratios and targets use each count's mean |
//! | `C2C_BENCH_WARMUP` | 1 | 0: no warm-up; 1: one uncounted scaling run with the most workers first, since the first run in the process pays for touching the testbeds' memory (see `run`) |
//! | `C2C_BENCH_PARTS` | `scaling,ceiling,failover,loss` | which of the four runs to do |
//! | `C2C_BENCH_VERBOSITY` | `WARN` | `--verbosity` of the c2c processes |
//! | `C2C_BENCH_KEEP_LOGS` | unset | set: keep the processes' logs (the path is printed) |
//!
//! The `c2c` binary is the package's own (`CARGO_BIN_EXE_c2c`, built by `cargo bench` in
//! the same profile). etcd is the membership crate's test server (Debian's `etcd`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bson::{doc, Bson, Document};
use c2c_coordinator::rest_client::RestClient;
use c2c_membership::etcd_testing::EtcdServer;
use c2c_membership::{CandidateInfo, Election, EtcdElection, MigrationId};
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use mongodb::options::ClientOptions;
use mongodb::Client;
use serde_json::{json, Value};

const MIGRATION: &str = "bench";
const DATABASES: [&str; 4] = ["shop", "crm", "logs", "geo"];
const COLLECTIONS: [&str; 2] = ["a", "b"];
const DOC_BYTES: usize = 1024;
const INSERT_BATCH: i64 = 1000;
/// Concurrent source writers during the CEA window, and `$inc` statements per `update`
/// command: one command is one round trip (the latency) but 50 change events.
const WRITER_TASKS: usize = 8;
const UPDATES_PER_COMMAND: usize = 50;
/// The failover run's dataset: small, it only needs a running migration.
const FAILOVER_DOCS: i64 = 8_000;
const LOSS_WORKERS: usize = 3;
const LOSS_VICTIM: &str = "w2";
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Settings.

struct Settings {
    workers: Vec<usize>,
    documents: i64,
    latency_ms: u64,
    cea_seconds: u64,
    partition_bytes: u64,
    /// `--loadLevel` of the coordinators (copy partitions in flight per worker).
    load_level: u64,
    failovers: usize,
    loss_documents: i64,
    loss_latency_ms: u64,
    loss_partition_bytes: u64,
    parts: Vec<String>,
    verification: bool,
    warm_up: bool,
    /// Passes over the worker counts, every other one in reverse order.
    rounds: usize,
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

fn env_one(name: &str, default: u64) -> u64 {
    env_list::<u64>(name, &default.to_string())[0]
}

impl Settings {
    fn from_env() -> Settings {
        Settings {
            workers: env_list("C2C_BENCH_WORKERS", "1,2,4"),
            documents: env_one("C2C_BENCH_DOCS", 960_000).max(8 * INSERT_BATCH as u64) as i64,
            latency_ms: env_one("C2C_BENCH_LATENCY_MS", 2),
            cea_seconds: env_one("C2C_BENCH_CEA_SECONDS", 8).max(1),
            partition_bytes: env_one("C2C_BENCH_PARTITION_KIB", 512).max(16) * 1024,
            load_level: env_one("C2C_BENCH_LOAD_LEVEL", 3).clamp(1, 4),
            failovers: env_one("C2C_BENCH_FAILOVERS", 3) as usize,
            loss_documents: env_one("C2C_BENCH_LOSS_DOCS", 60_000).max(8 * INSERT_BATCH as u64)
                as i64,
            loss_latency_ms: env_one("C2C_BENCH_LOSS_LATENCY_MS", 20),
            loss_partition_bytes: env_one("C2C_BENCH_LOSS_PARTITION_KIB", 64).max(16) * 1024,
            parts: env_list("C2C_BENCH_PARTS", "scaling,ceiling,failover,loss"),
            verification: env_one("C2C_BENCH_VERIFICATION", 0) != 0,
            warm_up: env_one("C2C_BENCH_WARMUP", 1) != 0,
            rounds: env_one("C2C_BENCH_ROUNDS", 2).max(1) as usize,
        }
    }

    fn wants(&self, part: &str) -> bool {
        self.parts.iter().any(|p| p == part)
    }

    /// The scaling runs' worker counts in the order they run: forward, then backward,
    /// and so on. The machine's speed drifts over minutes; in mirrored order every worker
    /// count's mean sits at the same point in time, so a steady drift favours none.
    fn scaling_order(&self) -> Vec<usize> {
        (0..self.rounds)
            .flat_map(|round| {
                let mut counts = self.workers.clone();
                if round % 2 == 1 {
                    counts.reverse();
                }
                counts
            })
            .collect()
    }

    /// The distinct worker counts, in the order given.
    fn worker_counts(&self) -> Vec<usize> {
        let mut counts: Vec<usize> = Vec::new();
        for &workers in &self.workers {
            if !counts.contains(&workers) {
                counts.push(workers);
            }
        }
        counts
    }
}

// ---------------------------------------------------------------------------------------
// Machine context and CPU accounting.

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The fields of /proc/<pid>/stat after the command name (which may hold spaces), so
/// field N of proc(5) is at index N - 3; empty when the process is gone.
fn proc_stat_fields(pid: &str) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().map(str::to_string).collect())
        })
        .unwrap_or_default()
}

/// CPU seconds (user + system) a process used so far.
fn cpu_seconds(pid: &str) -> f64 {
    // USER_HZ is 100 on every Linux the project runs on.
    const TICKS: f64 = 100.0;
    let fields = proc_stat_fields(pid);
    [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum::<f64>()
        / TICKS
}

/// Minor page faults of a process so far (a page touched for the first time).
fn minor_faults(pid: &str) -> f64 {
    proc_stat_fields(pid)
        .get(7)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0.0)
}

/// The whole machine's busy and stolen CPU seconds so far (all processes and the
/// kernel; stolen: time a hypervisor gave this VM's cores to others), from /proc/stat.
fn machine_cpu_seconds() -> (f64, f64) {
    const TICKS: f64 = 100.0;
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return (0.0, 0.0);
    };
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return (0.0, 0.0);
    };
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 8 {
        return (0.0, 0.0);
    }
    let busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6];
    (busy / TICKS, fields[7] / TICKS)
}

/// Keys of a snapshot that are the machine's, not one party's.
const MACHINE_BUSY: &str = "machine: busy";
const MACHINE_STOLEN: &str = "machine: stolen";
/// Not CPU: the benchmark process's minor page faults (its testbeds' memory).
const BENCH_FAULTS: &str = "faults: bench";

/// CPU seconds per party: this process (testbeds, loader, writer), etcd and every c2c
/// child that runs; and the machine's, to tell whether the cores were all used.
type CpuSnapshot = BTreeMap<String, f64>;

/// Cores each party used between two snapshots.
fn cores_used(before: &CpuSnapshot, after: &CpuSnapshot, wall: f64) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, seconds)| {
            let base = before.get(name).copied().unwrap_or(*seconds);
            (name.clone(), (seconds - base).max(0.0) / wall.max(1e-9))
        })
        .collect()
}

fn cores_line(used: &BTreeMap<String, f64>) -> String {
    let parties = || {
        used.iter()
            .filter(|(name, _)| !name.starts_with("machine") && !name.starts_with("faults"))
    };
    let total: f64 = parties().map(|(_, used)| used).sum();
    let parts: Vec<String> = parties()
        .map(|(name, used)| format!("{name} {used:.2}"))
        .collect();
    let machine = used.get(MACHINE_BUSY).copied().unwrap_or_default();
    let stolen = used.get(MACHINE_STOLEN).copied().unwrap_or_default();
    format!(
        "cores used: {} (total {total:.2}; whole machine busy {machine:.2} of {}, stolen {stolen:.2})",
        parts.join(", "),
        cores()
    )
}

// ---------------------------------------------------------------------------------------
// Child processes.

/// A port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binding a probe port")
        .local_addr()
        .expect("the probe's address")
        .port()
}

/// A `c2c coordinator` or `c2c worker` child, its output appended to a log file. Killed
/// (SIGKILL) when dropped.
struct Proc {
    id: String,
    port: u16,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_c2c"))
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("cloning a log file")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning c2c");
        self.child = Some(child);
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn rest(&self) -> RestClient {
        RestClient::new(self.address())
    }

    /// `kill -9` (by pid, through `Child::kill`) and reap.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_listening(address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{address} did not listen in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Data.

/// The padding that makes `{_id: i64, n: i64, v: i64, s: pad}` exactly 1 KiB.
fn padding() -> String {
    let probe = doc! {"_id": 0i64, "n": 0i64, "v": 0i64, "s": ""};
    let size = bson::to_vec(&probe).expect("encoding a probe").len();
    "x".repeat(DOC_BYTES - size)
}

/// xorshift64*: enough randomness for picking keys.
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

fn namespaces() -> Vec<(&'static str, &'static str)> {
    DATABASES
        .iter()
        .flat_map(|db| COLLECTIONS.iter().map(move |coll| (*db, *coll)))
        .collect()
}

async fn client(uri: &str, pool: u32) -> Client {
    let mut options = ClientOptions::parse(uri).await.expect("parsing a URI");
    options.max_pool_size = Some(pool);
    Client::with_options(options).expect("creating a driver client")
}

/// A worker's partitions still to copy in the current plan.
fn unfinished(worker: &Value) -> u64 {
    as_u64(&worker["partitionsAssigned"]).saturating_sub(as_u64(&worker["partitionsDone"]))
}

fn as_u64(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

fn bson_count(reply: &Document, field: &str) -> u64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => *n as u64,
        Some(Bson::Int64(n)) => *n as u64,
        Some(Bson::Double(n)) => *n as u64,
        _ => 0,
    }
}

// ---------------------------------------------------------------------------------------
// A deployment: etcd, two testbeds, coordinators and workers.

struct Deployment {
    etcd: EtcdServer,
    election: EtcdElection,
    source_testbed: Option<TestbedHandle>,
    destination_testbed: Option<TestbedHandle>,
    source_uri: String,
    destination_uri: String,
    source: Client,
    destination: Client,
    coordinators: Vec<Proc>,
    workers: Vec<Proc>,
    partition_bytes: u64,
    load_level: u64,
    dir: PathBuf,
}

impl Deployment {
    async fn start(partition_bytes: u64, load_level: u64) -> Deployment {
        let etcd = EtcdServer::start().await;
        let etcd_client = c2c_membership::connect(&etcd.endpoints())
            .await
            .expect("connecting to etcd");
        let election = EtcdElection::new(
            etcd_client,
            &MigrationId::new(MIGRATION).expect("a valid migration id"),
            CandidateInfo {
                id: "observer".into(),
                address: "none:0".into(),
            },
        );
        let config = || TestbedConfig {
            idle_noop_interval: Duration::from_millis(200),
            ..TestbedConfig::default()
        };
        let [source_host, destination_host] = TESTBED_HOSTS.get().expect("set by main");
        let source_testbed = source_host
            .spawn(Testbed::start(config()))
            .await
            .expect("the testbed task")
            .expect("starting a testbed");
        let destination_testbed = destination_host
            .spawn(Testbed::start(config()))
            .await
            .expect("the testbed task")
            .expect("starting a testbed");
        let (source_uri, destination_uri) = (source_testbed.uri(), destination_testbed.uri());
        let dir = std::env::temp_dir().join(format!(
            "c2c-bench-scaleout-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).expect("creating the log directory");
        Deployment {
            etcd,
            election,
            source: client(&source_uri, 32).await,
            destination: client(&destination_uri, 16).await,
            source_testbed: Some(source_testbed),
            destination_testbed: Some(destination_testbed),
            source_uri,
            destination_uri,
            coordinators: Vec::new(),
            workers: Vec::new(),
            partition_bytes,
            load_level,
            dir,
        }
    }

    /// `documents` 1 KiB documents spread evenly over the 8 collections.
    async fn load(&self, documents: i64) -> f64 {
        let started = Instant::now();
        let per_collection = documents / namespaces().len() as i64;
        let pad = Arc::new(padding());
        let mut tasks = Vec::new();
        for (db, coll) in namespaces() {
            let collection = self.source.database(db).collection::<Document>(coll);
            let pad = pad.clone();
            tasks.push(tokio::spawn(async move {
                let mut id = 0;
                while id < per_collection {
                    let end = (id + INSERT_BATCH).min(per_collection);
                    let batch: Vec<Document> = (id..end)
                        .map(|i| doc! {"_id": i, "n": i, "v": 0i64, "s": pad.as_str()})
                        .collect();
                    collection
                        .insert_many(batch)
                        .ordered(false)
                        .await
                        .expect("loading the source");
                    id = end;
                }
            }));
        }
        for task in tasks {
            task.await.expect("a loader task panicked");
        }
        started.elapsed().as_secs_f64()
    }

    fn per_collection(documents: i64) -> i64 {
        documents / namespaces().len() as i64
    }

    /// `testbedSetLatency` on both clusters.
    async fn set_latency(&self, ms: u64) {
        for client in [&self.source, &self.destination] {
            client
                .database("admin")
                .run_command(doc! {"testbedSetLatency": 1, "ms": ms as i64})
                .await
                .expect("testbedSetLatency");
        }
    }

    fn etcd_flag(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    fn add_coordinator(&mut self, id: &str) {
        let port = free_port();
        let args = vec![
            "coordinator".into(),
            "--cluster0".into(),
            self.source_uri.clone(),
            "--cluster1".into(),
            self.destination_uri.clone(),
            "--etcd".into(),
            self.etcd_flag(),
            "--migration-id".into(),
            MIGRATION.into(),
            "--id".into(),
            id.into(),
            "--port".into(),
            port.to_string(),
            "--verbosity".into(),
            process_verbosity(),
            "--loadLevel".into(),
            self.load_level.to_string(),
        ];
        let mut proc = Proc {
            id: id.into(),
            port,
            args,
            envs: vec![(
                "C2C_PARTITION_TARGET_BYTES".into(),
                self.partition_bytes.to_string(),
            )],
            log: self.dir.join(format!("{id}.log")),
            child: None,
        };
        proc.spawn();
        self.coordinators.push(proc);
    }

    fn add_worker(&mut self, id: &str) {
        let port = free_port();
        let args = vec![
            "worker".into(),
            "--etcd".into(),
            self.etcd_flag(),
            "--migration-id".into(),
            MIGRATION.into(),
            "--id".into(),
            id.into(),
            "--port".into(),
            port.to_string(),
            "--verbosity".into(),
            process_verbosity(),
        ];
        let mut proc = Proc {
            id: id.into(),
            port,
            args,
            envs: Vec::new(),
            log: self.dir.join(format!("{id}.log")),
            child: None,
        };
        proc.spawn();
        self.workers.push(proc);
    }

    /// `coordinators` coordinators (c1 first, so it usually wins the first election) and
    /// `workers` workers; returns once a leader serves and every worker is registered.
    async fn start_processes(&mut self, coordinators: usize, workers: usize) -> String {
        self.add_coordinator("c1");
        self.serving_leader(None, Duration::from_secs(30)).await;
        for index in 2..=coordinators {
            self.add_coordinator(&format!("c{index}"));
        }
        for index in 1..=workers {
            self.add_worker(&format!("w{index}"));
        }
        for coordinator in &self.coordinators {
            wait_listening(coordinator.address()).await;
        }
        let leader = self.serving_leader(None, Duration::from_secs(30)).await;
        self.wait_for(
            &leader,
            |p| p["state"] == "IDLE" && p["workers"].as_array().is_some_and(|w| w.len() == workers),
            Duration::from_secs(60),
        )
        .await;
        leader
    }

    fn coordinator(&mut self, id: &str) -> &mut Proc {
        self.coordinators
            .iter_mut()
            .find(|c| c.id == id)
            .expect("a known coordinator")
    }

    fn rest(&self, coordinator: &str) -> RestClient {
        self.coordinators
            .iter()
            .find(|c| c.id == coordinator)
            .expect("a known coordinator")
            .rest()
    }

    /// The coordinator etcd names leader.
    async fn etcd_leader(&self) -> Option<String> {
        self.election
            .leader()
            .await
            .ok()
            .flatten()
            .map(|info| info.id)
    }

    /// A coordinator (other than `except`) that etcd names leader and that answers
    /// `/progress` itself: with its own id as `coordinatorID` once a migration runs (a
    /// follower forwards to the leader; a coordinator that does not lead yet answers 503).
    async fn serving_leader(&self, except: Option<&str>, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self
                .etcd_leader()
                .await
                .filter(|l| Some(l.as_str()) != except)
            {
                if let Some(proc) = self.coordinators.iter().find(|c| c.id == leader) {
                    if let Ok((200, body)) = proc.rest().get("/api/v1/progress").await {
                        let id = &body["progress"]["coordinatorID"];
                        if id.is_null() || id.as_str() == Some(leader.as_str()) {
                            return leader;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no serving leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `/progress` of `coordinator`, `None` while it does not answer 200. Panics on a
    /// reported migration failure.
    async fn progress(&self, coordinator: &str) -> Option<Value> {
        match self.rest(coordinator).get("/api/v1/progress").await {
            Ok((200, body)) => {
                let progress = body["progress"].clone();
                if let Some(warnings) = progress["warnings"].as_array() {
                    let failed = warnings
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|w| w.contains("failed"));
                    assert!(failed.is_none(), "the migration failed: {progress}");
                }
                Some(progress)
            }
            _ => None,
        }
    }

    async fn wait_for(
        &self,
        coordinator: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            if let Some(progress) = self.progress(coordinator).await {
                if predicate(&progress) {
                    return progress;
                }
                last = progress;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} on {coordinator}; last progress: {last}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn start_migration(&self, coordinator: &str, verification: bool) {
        let (status, body) = self
            .rest(coordinator)
            .post(
                "/api/v1/start",
                &json!({
                    "source": "cluster0", "destination": "cluster1",
                    "verification": {"enabled": verification},
                }),
            )
            .await
            .expect("POST /api/v1/start");
        assert_eq!(status, 200, "/start: {body}");
    }

    fn cpu_snapshot(&self) -> CpuSnapshot {
        let mut snapshot = CpuSnapshot::new();
        let (busy, stolen) = machine_cpu_seconds();
        snapshot.insert(MACHINE_BUSY.into(), busy);
        snapshot.insert(MACHINE_STOLEN.into(), stolen);
        snapshot.insert("bench (testbeds, load)".into(), cpu_seconds("self"));
        snapshot.insert(BENCH_FAULTS.into(), minor_faults("self"));
        if let Some(pid) = self.etcd.pid() {
            snapshot.insert("etcd".into(), cpu_seconds(&pid.to_string()));
        }
        for proc in self.coordinators.iter().chain(&self.workers) {
            if let Some(pid) = proc.pid() {
                snapshot.insert(proc.id.clone(), cpu_seconds(&pid.to_string()));
            }
        }
        snapshot
    }

    /// Documents on the destination over the 8 collections.
    async fn destination_count(&self) -> u64 {
        let mut total = 0;
        for (db, coll) in namespaces() {
            total += self
                .destination
                .database(db)
                .collection::<Document>(coll)
                .count_documents(doc! {})
                .await
                .expect("counting on the destination");
        }
        total
    }

    async fn stop(mut self) {
        for proc in self.coordinators.iter_mut().chain(self.workers.iter_mut()) {
            proc.kill();
        }
        for testbed in [self.source_testbed.take(), self.destination_testbed.take()]
            .into_iter()
            .flatten()
        {
            testbed.shutdown().await;
        }
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for proc in self.coordinators.iter().chain(&self.workers) {
                eprintln!("===== {} (last 40 lines) =====", proc.id);
                eprintln!("{}", proc.log_tail(40));
            }
        }
        if std::env::var_os("C2C_BENCH_KEEP_LOGS").is_some() {
            eprintln!("process logs kept in {}", self.dir.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `--verbosity` of the c2c processes: `C2C_BENCH_VERBOSITY` (WARN), e.g. INFO with
/// `C2C_BENCH_KEEP_LOGS=1` to read where a run's time went.
fn process_verbosity() -> String {
    std::env::var("C2C_BENCH_VERBOSITY").unwrap_or_else(|_| "WARN".into())
}

// ---------------------------------------------------------------------------------------
// 1. Scaling: copy and CEA with 1, 2, 4 workers.

/// One timed copy: from `/start` until every byte is copied and the stream is steady.
struct CopyRun {
    workers: usize,
    documents: i64,
    bytes: u64,
    first_bytes_seconds: f64,
    copied_seconds: f64,
    steady_seconds: f64,
    copy_cores: BTreeMap<String, f64>,
    /// Between the first and the last bytes copied: whether the workers' part is
    /// bound by the machine.
    copying_cores: BTreeMap<String, f64>,
    shares: Vec<Value>,
    copy_page_faults: f64,
}

impl CopyRun {
    fn docs_per_second(&self) -> f64 {
        self.documents as f64 / self.steady_seconds
    }

    fn mib_per_second(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.steady_seconds
    }
}

fn copy_json(run: &CopyRun, scaling_vs_first: Option<f64>) -> Value {
    json!({
        "workers": run.workers,
        "documents": run.documents,
        "bytes": run.bytes,
        "seconds_until_first_bytes_copied": run.first_bytes_seconds,
        "seconds_until_all_bytes_copied": run.copied_seconds,
        "seconds_until_steady_state": run.steady_seconds,
        "docs_per_second": run.docs_per_second(),
        "mib_per_second": run.mib_per_second(),
        "scaling_vs_first": scaling_vs_first,
        "cores_used": run.copy_cores,
        "cores_used_first_to_all_bytes_copied": run.copying_cores,
        "shares": run.shares,
        "bench_process_page_faults": run.copy_page_faults,
    })
}

struct ScalingRow {
    copy: CopyRun,
    cea: CeaResult,
}

/// One worker count's mean rates over its scaling runs.
struct CountMean {
    workers: usize,
    runs: usize,
    copy: f64,
    cea: f64,
}

impl CountMean {
    fn of(workers: usize, rows: &[ScalingRow]) -> Option<CountMean> {
        let runs: Vec<&ScalingRow> = rows.iter().filter(|r| r.copy.workers == workers).collect();
        if runs.is_empty() {
            return None;
        }
        let mean = |rate: fn(&ScalingRow) -> f64| {
            runs.iter().map(|r| rate(r)).sum::<f64>() / runs.len() as f64
        };
        Some(CountMean {
            workers,
            runs: runs.len(),
            copy: mean(|r| r.copy.docs_per_second()),
            cea: mean(|r| r.cea.events_per_second()),
        })
    }
}

struct CeaResult {
    written: u64,
    /// How long the writers ran (the migration paused meanwhile).
    write_seconds: f64,
    /// From `/resume` until every event written is applied.
    drain_seconds: f64,
    counted_seconds: Option<f64>,
    lag_max: i64,
    cores: BTreeMap<String, f64>,
}

impl CeaResult {
    fn written_per_second(&self) -> f64 {
        self.written as f64 / self.write_seconds
    }

    /// Events written ÷ time from `/resume` until all are applied.
    fn events_per_second(&self) -> f64 {
        self.written as f64 / self.drain_seconds
    }
}

async fn scaling_run(settings: &Settings, workers: usize) -> ScalingRow {
    let mut d = Deployment::start(settings.partition_bytes, settings.load_level).await;
    let load_seconds = d.load(settings.documents).await;
    d.set_latency(settings.latency_ms).await;
    let leader = d.start_processes(1, workers).await;
    println!(
        "[{workers} worker(s)] loaded {} documents in {load_seconds:.1} s; load average {}",
        settings.documents,
        load_average()
    );
    let copy = copy_run(
        &d,
        &leader,
        settings,
        workers,
        &format!("{workers} worker(s)"),
    )
    .await;
    let cea = cea_run(&d, &leader, settings).await;
    println!(
        "[{workers} worker(s)] CEA: wrote {} events in {:.1} s ({:.0}/s) while paused; after /resume all applied in {:.2} s = {:.0} events/s; lagTimeSeconds max {}",
        cea.written,
        cea.write_seconds,
        cea.written_per_second(),
        cea.drain_seconds,
        cea.events_per_second(),
        cea.lag_max
    );
    println!("  {}", cores_line(&cea.cores));
    d.stop().await;
    ScalingRow { copy, cea }
}

/// The same copy and CEA with no latency, so that nothing waits and they go as fast as
/// this machine's cores let every process (testbeds and writers included) go: the
/// machine's limits, which more workers cannot pass. Best of `workers` and twice as many.
async fn ceiling_run(settings: &Settings, workers: usize) -> Vec<ScalingRow> {
    let mut runs = Vec::new();
    for workers in [workers, workers * 2] {
        let mut d = Deployment::start(settings.partition_bytes, settings.load_level).await;
        let load_seconds = d.load(settings.documents).await;
        let leader = d.start_processes(1, workers).await;
        println!(
            "[ceiling, {workers} worker(s), no latency] loaded {} documents in {load_seconds:.1} s",
            settings.documents
        );
        let label = format!("ceiling, {workers} worker(s), no latency");
        let copy = copy_run(&d, &leader, settings, workers, &label).await;
        let cea = cea_run(&d, &leader, settings).await;
        println!(
            "[{label}] CEA: wrote {} events in {:.1} s ({:.0}/s) while paused; after /resume all applied in {:.2} s = {:.0} events/s",
            cea.written,
            cea.write_seconds,
            cea.written_per_second(),
            cea.drain_seconds,
            cea.events_per_second(),
        );
        println!("  {}", cores_line(&cea.cores));
        runs.push(ScalingRow { copy, cea });
        d.stop().await;
    }
    runs
}

/// Starts the migration on `leader` and times the copy (see `CopyRun`).
async fn copy_run(
    d: &Deployment,
    leader: &str,
    settings: &Settings,
    workers: usize,
    label: &str,
) -> CopyRun {
    let cpu_before = d.cpu_snapshot();
    let started = Instant::now();
    d.start_migration(leader, settings.verification).await;
    let mut copied_at: Option<f64> = None;
    let mut first_bytes_at: Option<f64> = None;
    let mut cpu_first_bytes: Option<CpuSnapshot> = None;
    let mut cpu_copied: Option<CpuSnapshot> = None;
    // The most partitions each worker held at once (a finished share drops to 0).
    let mut most_partitions: BTreeMap<String, u64> = BTreeMap::new();
    let steady_progress = loop {
        let Some(progress) = d.progress(leader).await else {
            tokio::time::sleep(POLL).await;
            continue;
        };
        let copy = &progress["collectionCopy"];
        let (copied, total) = (
            as_u64(&copy["estimatedCopiedBytes"]),
            as_u64(&copy["estimatedTotalBytes"]),
        );
        for (id, worker) in workers_of(&progress) {
            let held = most_partitions.entry(id).or_default();
            *held = (*held).max(as_u64(&worker["partitionsAssigned"]));
        }
        if first_bytes_at.is_none() && copied > 0 {
            first_bytes_at = Some(started.elapsed().as_secs_f64());
            cpu_first_bytes = Some(d.cpu_snapshot());
        }
        if copied_at.is_none()
            && ((total > 1 && copied >= total) || !progress["ceaStage"].is_null())
        {
            copied_at = Some(started.elapsed().as_secs_f64());
            cpu_copied = Some(d.cpu_snapshot());
        }
        if copied_at.is_some()
            && (progress["ceaStage"] == "steady state" || progress["canCommit"] == true)
        {
            break progress;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "no steady state after 10 minutes: {progress}"
        );
        tokio::time::sleep(POLL).await;
    };
    let steady_seconds = started.elapsed().as_secs_f64();
    let cpu_steady = d.cpu_snapshot();
    let copy_cores = cores_used(&cpu_before, &cpu_steady, steady_seconds);
    let copy_page_faults = cpu_steady.get(BENCH_FAULTS).copied().unwrap_or_default()
        - cpu_before.get(BENCH_FAULTS).copied().unwrap_or_default();
    let copied_seconds = copied_at.unwrap_or(steady_seconds);
    let first_bytes = first_bytes_at.unwrap_or(copied_seconds);
    let copying_cores = match (&cpu_first_bytes, &cpu_copied) {
        (Some(first), Some(copied)) => cores_used(first, copied, copied_seconds - first_bytes),
        _ => BTreeMap::new(),
    };
    let bytes = as_u64(&steady_progress["collectionCopy"]["estimatedCopiedBytes"]);
    let shares: Vec<Value> = steady_progress["workers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|w| {
            let id = w["workerId"].as_str().unwrap_or("").to_string();
            json!({
                "workerId": w["workerId"], "partitionsAssigned": most_partitions.get(&id),
                "copiedBytes": w["copiedBytes"], "streamShards": w["streamShards"],
            })
        })
        .collect();
    let on_destination = d.destination_count().await;
    assert_eq!(
        on_destination,
        (Deployment::per_collection(settings.documents) * namespaces().len() as i64) as u64,
        "the destination does not hold every document"
    );
    println!(
        "[{label}] copy: first bytes copied after {first_bytes:.2} s, all after {copied_seconds:.2} s, steady state after {steady_seconds:.2} s = {:.0} docs/s, {:.1} MiB/s",
        settings.documents as f64 / steady_seconds,
        bytes as f64 / (1024.0 * 1024.0) / steady_seconds
    );
    println!("  {}", cores_line(&copy_cores));
    println!("  first → all bytes copied, {}", cores_line(&copying_cores));
    println!("  page faults of the benchmark process (testbed memory touched for the first time): {copy_page_faults:.0}");
    for share in &shares {
        println!(
            "  {}: {} partitions at most, {:.1} MiB, change-stream shards {}",
            share["workerId"].as_str().unwrap_or("?"),
            share["partitionsAssigned"],
            as_u64(&share["copiedBytes"]) as f64 / (1024.0 * 1024.0),
            share["streamShards"]
        );
    }

    CopyRun {
        workers,
        documents: settings.documents,
        bytes,
        first_bytes_seconds: first_bytes,
        copied_seconds,
        steady_seconds,
        copy_cores,
        copying_cores,
        shares,
        copy_page_faults,
    }
}

/// `$inc` updates of random documents of one collection, `UPDATES_PER_COMMAND` per
/// `update` command, until `stop`; returns the documents modified (= change events).
async fn writer(
    client: Client,
    db: &str,
    coll: &str,
    keys: i64,
    stop: Arc<AtomicBool>,
    seed: u64,
) -> u64 {
    let database = client.database(db);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
    let mut modified = 0;
    while !stop.load(Ordering::Relaxed) {
        let updates: Vec<Document> = (0..UPDATES_PER_COMMAND)
            .map(|_| doc! {"q": {"_id": rng.below(keys)}, "u": {"$inc": {"v": 1i64}}})
            .collect();
        let reply = database
            .run_command(doc! {"update": coll, "updates": updates, "ordered": false})
            .await
            .expect("source writes");
        modified += bson_count(&reply, "nModified");
    }
    modified
}

/// CEA throughput on a backlog: the migration is paused while the writers run, so the
/// events pile up in the source's oplog; then it resumes and the time until every event
/// is applied is measured. Measured live instead, the rate is whatever the shared
/// source takes while it also serves every shard's change stream (c2c kept up at every
/// worker count, so the writers were the limit, not c2c).
async fn cea_run(d: &Deployment, leader: &str, settings: &Settings) -> CeaResult {
    let baseline = d
        .progress(leader)
        .await
        .map_or(0, |p| as_u64(&p["totalEventsApplied"]));
    let (status, body) = d
        .rest(leader)
        .post("/api/v1/pause", &json!({}))
        .await
        .expect("POST /api/v1/pause");
    assert_eq!(status, 200, "/pause: {body}");
    d.wait_for(leader, |p| p["state"] == "PAUSED", Duration::from_secs(60))
        .await;

    let keys = Deployment::per_collection(settings.documents);
    let stop = Arc::new(AtomicBool::new(false));
    let writing = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..WRITER_TASKS {
        let (db, coll) = (
            DATABASES[task % DATABASES.len()],
            COLLECTIONS[(task / DATABASES.len()) % COLLECTIONS.len()],
        );
        let (client, stop) = (d.source.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            writer(client, db, coll, keys, stop, task as u64 + 1).await
        }));
    }
    tokio::time::sleep(Duration::from_secs(settings.cea_seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for task in tasks {
        written += task.await.expect("a writer panicked");
    }
    // A marker per database after the last write: each database is one change-stream
    // shard applied in order, so a marker on the destination means everything before it
    // in that database is applied.
    let token = writing.elapsed().as_nanos() as i64 ^ 0x5bd1_e995;
    for db in DATABASES {
        d.source
            .database(db)
            .collection::<Document>(COLLECTIONS[0])
            .update_one(doc! {"_id": 0i64}, doc! {"$set": {"marker": token}})
            .await
            .expect("writing a marker");
    }
    written += DATABASES.len() as u64;
    let write_seconds = writing.elapsed().as_secs_f64();

    let cpu_before = d.cpu_snapshot();
    let resumed = Instant::now();
    let (status, body) = d
        .rest(leader)
        .post("/api/v1/resume", &json!({}))
        .await
        .expect("POST /api/v1/resume");
    assert_eq!(status, 200, "/resume: {body}");
    let mut lag_max = 0;
    let mut pending: Vec<&str> = DATABASES.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for db in pending {
            let found = d
                .destination
                .database(db)
                .collection::<Document>(COLLECTIONS[0])
                .find_one(doc! {"_id": 0i64, "marker": token})
                .await
                .expect("polling the destination for a marker");
            if found.is_none() {
                still.push(db);
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                resumed.elapsed() < Duration::from_secs(600),
                "markers missing on the destination after 10 minutes: {pending:?}"
            );
            if let Some(progress) = d.progress(leader).await {
                lag_max = lag_max.max(progress["lagTimeSeconds"].as_i64().unwrap_or(0));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let drain_seconds = resumed.elapsed().as_secs_f64();
    let cores = cores_used(&cpu_before, &d.cpu_snapshot(), drain_seconds);
    // Cross-check: the coordinator's event count (reports every 500 ms) reaches them too.
    let mut counted_seconds = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let applied = d
            .progress(leader)
            .await
            .map_or(0, |p| as_u64(&p["totalEventsApplied"]))
            .saturating_sub(baseline);
        if applied >= written {
            counted_seconds = Some(resumed.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    if counted_seconds.is_none() {
        println!("  note: totalEventsApplied did not reach the {written} events written within 30 s of the markers");
    }
    CeaResult {
        written,
        write_seconds,
        drain_seconds,
        counted_seconds,
        lag_max,
        cores,
    }
}

// ---------------------------------------------------------------------------------------
// 2. Leader failover.

struct Failover {
    elected: f64,
    serving: f64,
}

async fn failover_run(settings: &Settings) -> Vec<Failover> {
    let mut d = Deployment::start(settings.partition_bytes, settings.load_level).await;
    d.load(FAILOVER_DOCS).await;
    d.set_latency(settings.latency_ms).await;
    let leader = d.start_processes(2, 2).await;
    d.start_migration(&leader, settings.verification).await;
    d.wait_for(
        &leader,
        |p| p["canCommit"] == true,
        Duration::from_secs(120),
    )
    .await;
    let mut runs = Vec::new();
    for round in 1..=settings.failovers {
        let old = d.serving_leader(None, Duration::from_secs(30)).await;
        let killed = Instant::now();
        d.coordinator(&old).kill();
        let mut elected = None;
        let new = loop {
            if let Some(leader) = d.etcd_leader().await.filter(|l| *l != old) {
                elected.get_or_insert_with(|| killed.elapsed().as_secs_f64());
                if let Some(progress) = d.progress(&leader).await {
                    if progress["coordinatorID"].as_str() == Some(leader.as_str()) {
                        break leader;
                    }
                }
            }
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "no new serving leader 60 s after killing {old}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let serving = killed.elapsed().as_secs_f64();
        let elected = elected.unwrap_or(serving);
        println!(
            "[failover {round}] kill -9 {old}: {new} elected after {elected:.2} s, serving /progress as coordinator after {serving:.2} s"
        );
        runs.push(Failover { elected, serving });
        // The killed one comes back as a follower; the migration runs on before the next.
        d.coordinator(&old).restart();
        let address = d.coordinator(&old).address();
        wait_listening(address).await;
        d.wait_for(
            &old,
            |p| p["coordinatorID"].as_str() == Some(new.as_str()) && p["canCommit"] == true,
            Duration::from_secs(120),
        )
        .await;
    }
    d.stop().await;
    runs
}

// ---------------------------------------------------------------------------------------
// 3. Worker loss during the copy.

struct WorkerLoss {
    gone: f64,
    reassigned: f64,
    recovered: f64,
    copied_fraction_at_kill: f64,
    copy_completed: f64,
}

fn workers_of(progress: &Value) -> BTreeMap<String, Value> {
    progress["workers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|w| (w["workerId"].as_str().unwrap_or("").to_string(), w))
        .collect()
}

async fn worker_loss_run(settings: &Settings) -> WorkerLoss {
    let mut d = Deployment::start(settings.loss_partition_bytes, settings.load_level).await;
    d.load(settings.loss_documents).await;
    d.set_latency(settings.loss_latency_ms).await;
    let leader = d.start_processes(1, LOSS_WORKERS).await;
    d.start_migration(&leader, settings.verification).await;
    // Kill once the copy is under way and the victim still has partitions to copy.
    let before = d
        .wait_for(
            &leader,
            |p| {
                let copy = &p["collectionCopy"];
                let (copied, total) = (
                    as_u64(&copy["estimatedCopiedBytes"]),
                    as_u64(&copy["estimatedTotalBytes"]),
                );
                let victim = workers_of(p).remove(LOSS_VICTIM).unwrap_or(Value::Null);
                total > 1
                    && copied * 10 >= total
                    && as_u64(&victim["partitionsAssigned"]) > as_u64(&victim["partitionsDone"])
            },
            Duration::from_secs(300),
        )
        .await;
    let total = as_u64(&before["collectionCopy"]["estimatedTotalBytes"]);
    let copied_before = as_u64(&before["collectionCopy"]["estimatedCopiedBytes"]);
    let assigned_before: BTreeMap<String, u64> = workers_of(&before)
        .into_iter()
        .map(|(id, w)| (id, unfinished(&w)))
        .collect();
    let killed = Instant::now();
    let victim = d
        .workers
        .iter_mut()
        .find(|w| w.id == LOSS_VICTIM)
        .expect("the victim");
    victim.kill();
    println!(
        "[worker loss] kill -9 {LOSS_VICTIM} at {:.0} % copied (unfinished partitions per worker: {assigned_before:?})",
        100.0 * copied_before as f64 / total.max(1) as f64,
    );
    let (mut gone, mut reassigned): (Option<(f64, u64)>, Option<f64>) = (None, None);
    let mut previous = assigned_before.clone();
    let recovered = loop {
        if let Some(progress) = d.progress(&leader).await {
            let now = killed.elapsed().as_secs_f64();
            let workers = workers_of(&progress);
            let copied = as_u64(&progress["collectionCopy"]["estimatedCopiedBytes"]);
            if gone.is_none() && !workers.contains_key(LOSS_VICTIM) {
                gone = Some((now, copied));
            }
            // A worker's unfinished partitions only shrink — unless the plan hands it a
            // lost worker's partitions.
            if reassigned.is_none()
                && workers.iter().any(|(id, w)| {
                    id != LOSS_VICTIM
                        && unfinished(w) > previous.get(id).copied().unwrap_or(u64::MAX)
                })
            {
                reassigned = Some(now);
            }
            previous = workers
                .iter()
                .map(|(id, w)| (id.clone(), unfinished(w)))
                .collect();
            if let (Some((_, copied_at_gone)), Some(_)) = (gone, reassigned) {
                if copied > copied_at_gone {
                    break now;
                }
            }
            assert!(
                progress["ceaStage"].is_null(),
                "the copy finished before the lost worker's partitions moved (gone {gone:?}, reassigned {reassigned:?}): use a larger C2C_BENCH_LOSS_DOCS"
            );
        }
        assert!(
            killed.elapsed() < Duration::from_secs(120),
            "no recovery 120 s after the kill (gone {gone:?}, reassigned {reassigned:?})"
        );
        tokio::time::sleep(POLL).await;
    };
    let (gone, _) = gone.expect("set before recovery");
    let reassigned = reassigned.expect("set before recovery");
    println!(
        "[worker loss] {LOSS_VICTIM} gone from /progress after {gone:.2} s, partitions reassigned after {reassigned:.2} s, copy progressing again after {recovered:.2} s"
    );
    // The copy completes on the survivors, every document there.
    d.wait_for(
        &leader,
        |p| p["ceaStage"] == "steady state" || p["canCommit"] == true,
        Duration::from_secs(600),
    )
    .await;
    let copy_completed = killed.elapsed().as_secs_f64();
    let on_destination = d.destination_count().await;
    assert_eq!(
        on_destination,
        (Deployment::per_collection(settings.loss_documents) * namespaces().len() as i64) as u64,
        "the destination does not hold every document after the worker loss"
    );
    println!(
        "[worker loss] copy complete on the survivors {copy_completed:.1} s after the kill; all {on_destination} documents on the destination"
    );
    d.stop().await;
    WorkerLoss {
        gone,
        reassigned,
        recovered,
        copied_fraction_at_kill: copied_before as f64 / total.max(1) as f64,
        copy_completed,
    }
}

// ---------------------------------------------------------------------------------------
// Report.

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The runtimes the source and the destination testbed run on, apart from each other
/// and from the benchmark's own tasks, as two clusters on their own hosts would: a
/// testbed command blocked on its store's lock then holds up one of its own threads,
/// not the other cluster's or the load generator's. Four threads each (threads, not
/// cores: the machine's cores are shared by all): mongod serves each connection on its
/// own thread, and with two, two commands waiting for the lock stopped the testbed from
/// reading any other request (4 workers copied 195,000 docs/s with two, 215,000 with four).
static TESTBED_HOSTS: std::sync::OnceLock<[tokio::runtime::Handle; 2]> = std::sync::OnceLock::new();

fn testbed_runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("building a testbed's Tokio runtime")
}

fn main() {
    let settings = Settings::from_env();
    let source_host = testbed_runtime("source-testbed");
    let destination_host = testbed_runtime("destination-testbed");
    TESTBED_HOSTS
        .set([
            source_host.handle().clone(),
            destination_host.handle().clone(),
        ])
        .expect("set once");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("building the Tokio runtime");
    let report = runtime.block_on(run(settings));
    let directory = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&directory).expect("creating target/bench");
    let path = directory.join("scaleout.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&report).expect("encoding the report"),
    )
    .expect("writing target/bench/scaleout.json");
    println!("wrote {}", path.display());
}

async fn run(settings: Settings) -> Value {
    let machine = json!({
        "cores": cores(),
        "cpu": cpu_model(),
        "load_average_at_start": load_average(),
    });
    println!(
        "machine: {} core(s) ({}), load average {}; etcd, the coordinator(s), the workers, both testbeds and the writers all share them",
        cores(),
        cpu_model(),
        load_average()
    );
    println!(
        "settings: {} documents of 1 KiB over 8 collections in 4 databases, {} ms latency per operation on both clusters, {} KiB partitions, loadLevel {}, {} s of CEA writes ({WRITER_TASKS} writers, {UPDATES_PER_COMMAND} $inc per command), verification {}",
        settings.documents,
        settings.latency_ms,
        settings.partition_bytes / 1024,
        settings.load_level,
        settings.cea_seconds,
        if settings.verification { "on" } else { "off" }
    );
    let started = Instant::now();
    let mut rows = Vec::new();
    if settings.wants("scaling") {
        if settings.warm_up {
            // The first run in this process touches the testbeds' memory for the first
            // time; later runs reuse what the allocator already holds. Measured: the same
            // 4-worker copy ran at 57,000 docs/s first and 140,000 docs/s second, so
            // without this run the first worker count (the base of every ratio) is slow.
            let workers = settings.workers.iter().copied().max().unwrap_or(1);
            println!("[warm-up] one whole scaling run with {workers} worker(s), not counted");
            scaling_run(&settings, workers).await;
        }
        for workers in settings.scaling_order() {
            rows.push(scaling_run(&settings, workers).await);
        }
    }
    let ceiling_runs = if settings.wants("ceiling") {
        let workers = settings.workers.iter().copied().max().unwrap_or(1);
        ceiling_run(&settings, workers).await
    } else {
        Vec::new()
    };
    // The machine's limits: the best rates seen. The runs without latency are meant to
    // reach them, but a scaling run that went faster shows the machine can do more (it
    // happens to CEA, whose backlog written without latency is larger).
    let best_seen = |rate: fn(&ScalingRow) -> f64| {
        if ceiling_runs.is_empty() {
            return None;
        }
        ceiling_runs
            .iter()
            .chain(&rows)
            .map(rate)
            .max_by(f64::total_cmp)
    };
    let ceiling = best_seen(|run| run.copy.docs_per_second());
    let cea_ceiling = best_seen(|run| run.cea.events_per_second());
    let failovers = if settings.wants("failover") && settings.failovers > 0 {
        failover_run(&settings).await
    } else {
        Vec::new()
    };
    let loss = if settings.wants("loss") {
        Some(worker_loss_run(&settings).await)
    } else {
        None
    };

    // Table.
    println!();
    // Each worker count's mean over its runs: the ratios and the verdict use these.
    let means: Vec<CountMean> = settings
        .worker_counts()
        .into_iter()
        .filter_map(|workers| CountMean::of(workers, &rows))
        .collect();
    let base = means
        .first()
        .map(|first| (first.workers as f64, first.copy, first.cea));
    // 0.8 × N times the first rate, up to the machine's limit: N times the first rate
    // cannot be asked beyond what the machine can copy or apply at all.
    let targets = |workers: usize| {
        let (n0, copy0, cea0) = base.expect("rows exist");
        let linear = workers as f64 / n0;
        (
            0.8 * ceiling.map_or(linear, |c| linear.min(c / copy0)),
            0.8 * cea_ceiling.map_or(linear, |c| linear.min(c / cea0)),
        )
    };
    if let (Some(ceiling), Some(cea_ceiling)) = (ceiling, cea_ceiling) {
        println!(
            "machine limit for this copy (best seen; no latency: {}): {ceiling:.0} docs/s",
            ceiling_runs
                .iter()
                .map(|run| format!(
                    "{} workers {:.0}",
                    run.copy.workers,
                    run.copy.docs_per_second()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "machine limit for this CEA (best seen; no latency: {}): {cea_ceiling:.0} events/s",
            ceiling_runs
                .iter()
                .map(|run| format!(
                    "{} workers {:.0}",
                    run.copy.workers,
                    run.cea.events_per_second()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!(
        "{:<8} {:>10} {:>8} {:>9} {:>9} {:>9} {:>12} {:>9} {:>9} {:>11} {:>10}",
        "workers",
        "copy doc/s",
        "MiB/s",
        "copy ×",
        "target ×",
        "CEA ev/s",
        "written/s",
        "CEA ×",
        "target ×",
        "busy copy",
        "busy CEA"
    );
    // How much of the machine was busy: at 100 % more workers cannot go faster here.
    let busy = |used: &BTreeMap<String, f64>| {
        used.get(MACHINE_BUSY).copied().unwrap_or_default() / cores() as f64 * 100.0
    };
    let mut scaling_json = Vec::new();
    for row in &rows {
        let (_, copy0, cea0) = base.expect("rows exist");
        let copy_factor = row.copy.docs_per_second() / copy0;
        let cea_factor = row.cea.events_per_second() / cea0;
        let (copy_target, cea_target) = targets(row.copy.workers);
        println!(
            "{:<8} {:>10.0} {:>8.1} {:>9.2} {:>9.2} {:>9.0} {:>12.0} {:>9.2} {:>9.2} {:>10.0}% {:>9.0}%",
            row.copy.workers,
            row.copy.docs_per_second(),
            row.copy.mib_per_second(),
            copy_factor,
            copy_target,
            row.cea.events_per_second(),
            row.cea.written_per_second(),
            cea_factor,
            cea_target,
            busy(&row.copy.copying_cores),
            busy(&row.cea.cores)
        );
        scaling_json.push(json!({
            "workers": row.copy.workers,
            "copy": copy_json(&row.copy, Some(copy_factor)),
            "cea": {
                "events_written": row.cea.written,
                "write_seconds": row.cea.write_seconds,
                "written_per_second": row.cea.written_per_second(),
                "method": "backlog: written while paused, timed from /resume until applied",
                "seconds_from_resume_until_all_applied": row.cea.drain_seconds,
                "seconds_until_total_events_applied_counted_them": row.cea.counted_seconds,
                "events_per_second": row.cea.events_per_second(),
                "lag_time_seconds_max": row.cea.lag_max,
                "scaling_vs_first": cea_factor,
                "cores_used": row.cea.cores,
            },
            "target_scaling": {"copy": copy_target, "cea": cea_target},
        }));
    }
    let mut means_json = Vec::new();
    let mut scaling_met = true;
    if rows.len() > means.len() {
        println!(
            "means over the runs of each worker count (runs in mirrored order: {}):",
            settings
                .scaling_order()
                .iter()
                .map(|w| w.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for mean in &means {
        let (n0, copy0, cea0) = base.expect("rows exist");
        let (copy_factor, cea_factor) = (mean.copy / copy0, mean.cea / cea0);
        let (copy_target, cea_target) = targets(mean.workers);
        let met = copy_factor >= copy_target && cea_factor >= cea_target;
        if mean.workers as f64 > n0 {
            scaling_met &= met;
        }
        if rows.len() > means.len() {
            println!(
                "{:<8} {:>10.0} {:>8} {:>9.2} {:>9.2} {:>9.0} {:>12} {:>9.2} {:>9.2}   ({} runs)",
                mean.workers,
                mean.copy,
                "",
                copy_factor,
                copy_target,
                mean.cea,
                "",
                cea_factor,
                cea_target,
                mean.runs
            );
        }
        means_json.push(json!({
            "workers": mean.workers,
            "runs": mean.runs,
            "copy_docs_per_second": mean.copy,
            "cea_events_per_second": mean.cea,
            "scaling_vs_first": {"copy": copy_factor, "cea": cea_factor},
            "target_scaling": {"copy": copy_target, "cea": cea_target},
        }));
    }
    let mut serving: Vec<f64> = failovers.iter().map(|f| f.serving).collect();
    let failover_median = median(&mut serving);
    if !failovers.is_empty() {
        println!(
            "leader failover (kill -9 → the other coordinator serves /progress as coordinator), {} runs: min {:.2} s, median {failover_median:.2} s, max {:.2} s; elected after {}",
            failovers.len(),
            serving.first().copied().unwrap_or(0.0),
            serving.last().copied().unwrap_or(0.0),
            failovers
                .iter()
                .map(|f| format!("{:.2} s", f.elected))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(loss) = &loss {
        println!(
            "worker loss (kill -9 of 1 of {LOSS_WORKERS} workers at {:.0} % copied): gone {:.2} s, reassigned {:.2} s, copy progressing {:.2} s after the kill",
            loss.copied_fraction_at_kill * 100.0,
            loss.gone,
            loss.reassigned,
            loss.recovered
        );
    }
    let failover_met = serving.last().map(|max| *max < 3.0);
    let loss_met = loss.as_ref().map(|l| l.recovered < 10.0);
    let verdict = |met: Option<bool>| match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    };
    println!(
        "targets: scaling ≥ 0.8 × N (copy: up to the machine's limit): {} (the {} core(s) are shared by every process); failover < 3 s: {}; worker-loss recovery < 10 s: {}",
        verdict((rows.len() > 1).then_some(scaling_met)),
        cores(),
        verdict(failover_met),
        verdict(loss_met)
    );
    println!("total {:.0} s", started.elapsed().as_secs_f64());

    json!({
        "machine": machine,
        "settings": {
            "documents": settings.documents,
            "document_bytes": DOC_BYTES,
            "databases": DATABASES,
            "collections_per_database": COLLECTIONS.len(),
            "latency_ms": settings.latency_ms,
            "partition_bytes": settings.partition_bytes,
            "load_level": settings.load_level,
            "cea_seconds": settings.cea_seconds,
            "writer_tasks": WRITER_TASKS,
            "updates_per_command": UPDATES_PER_COMMAND,
            "failover_documents": FAILOVER_DOCS,
            "loss_documents": settings.loss_documents,
            "loss_latency_ms": settings.loss_latency_ms,
            "loss_partition_bytes": settings.loss_partition_bytes,
            "loss_workers": LOSS_WORKERS,
            "verification": settings.verification,
            "warm_up_run": settings.warm_up,
        },
        "scaling": scaling_json,
        "scaling_means": {
            "method": "each worker count's mean docs/s and events/s over its runs (C2C_BENCH_ROUNDS passes, every other one in reverse order); the ratios and the target are judged on these",
            "order": settings.scaling_order(),
            "by_workers": means_json,
        },
        "machine_limit": {
            "method": "the best rates seen: the same copy and CEA with no latency (the most workers and twice as many) and the scaling runs",
            "docs_per_second": ceiling,
            "cea_events_per_second": cea_ceiling,
            "runs": ceiling_runs.iter().map(|run| json!({
                "copy": copy_json(&run.copy, None),
                "cea": {
                    "events_written": run.cea.written,
                    "events_per_second": run.cea.events_per_second(),
                    "seconds_from_resume_until_all_applied": run.cea.drain_seconds,
                    "cores_used": run.cea.cores,
                },
            })).collect::<Vec<_>>(),
        },
        "failover": {
            "runs": failovers.iter().map(|f| json!({"elected_seconds": f.elected, "serving_seconds": f.serving})).collect::<Vec<_>>(),
            "serving_seconds": {
                "min": serving.first(), "median": (!serving.is_empty()).then_some(failover_median), "max": serving.last(),
            },
        },
        "worker_loss": loss.as_ref().map(|l| json!({
            "copied_fraction_at_kill": l.copied_fraction_at_kill,
            "gone_seconds": l.gone,
            "reassigned_seconds": l.reassigned,
            "recovered_seconds": l.recovered,
            "copy_complete_seconds_after_kill": l.copy_completed,
        })),
        "targets": {
            "scaling_ge_0_8_n": (rows.len() > 1).then_some(scaling_met),
            "failover_under_3s": failover_met,
            "worker_loss_recovery_under_10s": loss_met,
        },
        "total_seconds": started.elapsed().as_secs_f64(),
    })
}
