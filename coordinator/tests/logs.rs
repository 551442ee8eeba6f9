//! `c2c run`, `c2c coordinator` and `c2c worker` as child processes: their JSON-line
//! logs (mongosync's fields, `mongosyncID` per process), `c2c.log` rotated at start and
//! on SIGUSR1, and configuration from environment variables. No cluster is needed: the
//! clients connect lazily and nothing here calls /start; the etcd endpoints are ports
//! nobody listens on, so the scaled-out processes log their start and keep retrying.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(30);
/// The configuration variables: cleared for every child, so the test's own
/// environment cannot change what it checks.
const CONFIG_VARIABLES: [&str; 9] = [
    "C2C_CLUSTER0",
    "C2C_CLUSTER1",
    "C2C_PORT",
    "C2C_BIND",
    "C2C_WORKERS",
    "C2C_LOG_PATH",
    "C2C_VERBOSITY",
    "C2C_LOAD_LEVEL",
    "C2C_ID",
];

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A fresh directory for one test, removed when the test passes.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("c2c-logs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `c2c` child, killed (by its pid) when dropped; its stdout and stderr go to `output`.
struct C2c {
    child: std::process::Child,
    output: PathBuf,
}

impl C2c {
    fn spawn(args: &[&str], env: &[(&str, &str)], output: PathBuf) -> C2c {
        let file = std::fs::File::create(&output).expect("output file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_c2c"));
        command.args(args);
        for variable in CONFIG_VARIABLES {
            command.env_remove(variable);
        }
        let child = command
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone().expect("output")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn c2c");
        C2c { child, output }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        let status = self.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "c2c exited ({status:?}): {}",
            self.output()
        );
    }

    fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "c2c did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }
}

impl Drop for C2c {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of(path: &Path) -> Vec<serde_json::Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| match serde_json::from_str(line) {
            Ok(Value::Object(map)) => map,
            other => panic!(
                "{} has a line that is not a JSON object ({other:?}): {line}",
                path.display()
            ),
        })
        .collect()
}

/// The first line of `path` with `message`, waited for.
fn wait_for_line(c2c: &mut C2c, path: &Path, message: &str) -> serde_json::Map<String, Value> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        // Leniently: until c2c rotated it, the file is the previous run's, and the last
        // line may be half written. The callers check every line strictly afterwards.
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found = text
            .lines()
            .filter_map(|line| match serde_json::from_str(line) {
                Ok(Value::Object(map)) => Some(map),
                _ => None,
            })
            .find(|line| line["message"] == message);
        if let Some(line) = found {
            return line;
        }
        c2c.assert_running();
        assert!(
            Instant::now() < deadline,
            "no {message:?} in {}: {}\noutput: {}",
            path.display(),
            std::fs::read_to_string(path).unwrap_or_default(),
            c2c.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The rotated files `c2c-<YYYY-MM-DDTHH-MM-SS.mmm>.log` in `dir`, oldest first.
fn rotated_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            name != "c2c.log"
        })
        .collect();
    files.sort();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let stamp = name
            .strip_prefix("c2c-")
            .and_then(|rest| rest.strip_suffix(".log"))
            .unwrap_or_else(|| panic!("unexpected file {name}"));
        let stamp = stamp.get(..23).unwrap_or(stamp);
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H-%M-%S%.3f").unwrap_or_else(
            |error| panic!("{name}: not c2c-<YYYY-MM-DDTHH-MM-SS.mmm>.log: {error}"),
        );
    }
    files
}

fn assert_mongosync_line(line: &serde_json::Map<String, Value>, id: &str) {
    let level = line["level"].as_str().expect("level");
    assert!(
        ["trace", "debug", "info", "warn", "error"].contains(&level),
        "{line:?}"
    );
    let time = line["time"].as_str().expect("time");
    chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|_| panic!("time {time:?}"));
    assert_eq!(line["mongosyncID"], id, "{line:?}");
    assert!(line["message"].is_string(), "{line:?}");
}

#[test]
fn run_logs_json_lines_and_rotates_at_start_and_on_sigusr1() {
    let root = TempDir::new("run");
    let logs = root.0.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join("c2c.log");
    std::fs::write(&log, "a line of the previous run\n").unwrap();
    let port = free_port().to_string();
    let mut c2c = C2c::spawn(
        &[
            "run",
            "--cluster0",
            "mongodb://alice:topsecret@127.0.0.1:1",
            "--port",
            &port,
            "--logPath",
            logs.to_str().unwrap(),
            "--id",
            "logtest",
        ],
        &[
            ("C2C_CLUSTER1", "mongodb://127.0.0.1:2"),
            ("C2C_LOAD_LEVEL", "2"),
            ("C2C_VERBOSITY", "INFO"),
            // Not configuration: must be left alone.
            ("C2C_E2E_LOGS", "whatever"),
            ("C2C_TEST_SOURCE_URI", "not a uri"),
        ],
        root.0.join("output.txt"),
    );

    // At start: the previous file is rotated, the effective options logged.
    let options = wait_for_line(&mut c2c, &log, "c2c options");
    let rotated = rotated_files(&logs);
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(
        std::fs::read_to_string(&rotated[0]).unwrap(),
        "a line of the previous run\n"
    );
    let first = &lines_of(&log)[0];
    assert_eq!(first["message"], "rotated the previous log file");
    assert_eq!(first["previous"], rotated[0].to_str().unwrap());

    assert_eq!(options["level"], "info");
    assert_eq!(options["componentName"], "Configuration");
    assert_eq!(options["port"], port.parse::<u64>().unwrap());
    assert_eq!(options["loadLevel"], "2");
    assert_eq!(options["verbosity"], "INFO");
    assert_eq!(options["id"], "logtest");
    assert_eq!(options["pid"], c2c.pid());
    let cluster0 = options["cluster0"].as_str().unwrap();
    assert!(cluster0.contains("alice:*****@127.0.0.1:1"), "{cluster0}");
    let sources = options["sources"].as_str().unwrap();
    for expected in [
        "cluster0: flag --cluster0",
        "cluster1: environment variable C2C_CLUSTER1",
        "loadLevel: environment variable C2C_LOAD_LEVEL",
        "bind: the default",
    ] {
        assert!(sources.contains(expected), "{expected:?} in {sources}");
    }
    wait_for_line(&mut c2c, &log, "REST and gRPC API listening");
    // --verbosity INFO (from the environment): no debug lines.
    for line in lines_of(&log) {
        assert_mongosync_line(&line, "logtest");
        assert_ne!(line["level"], "debug", "{line:?}");
    }

    // kill -USR1: the current file is rotated, logging continues in a new c2c.log.
    c2c.signal("USR1");
    let rotated_line = wait_for_line(&mut c2c, &log, "log file rotated on SIGUSR1");
    assert_mongosync_line(&rotated_line, "logtest");
    let rotated = rotated_files(&logs);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_eq!(rotated_line["previous"], rotated[1].to_str().unwrap());
    let before: Vec<_> = lines_of(&rotated[1])
        .into_iter()
        .map(|line| line["message"].clone())
        .collect();
    assert!(before.contains(&Value::from("c2c options")), "{before:?}");
    assert!(
        !lines_of(&log)
            .iter()
            .any(|line| line["message"] == "c2c options"),
        "the new file starts after the rotation"
    );
    c2c.assert_running();

    // The password is nowhere in the logs.
    for file in rotated.iter().chain([&log]) {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains("topsecret"), "{}: {text}", file.display());
    }
}

#[test]
fn a_bad_value_stops_the_start_naming_key_and_layer() {
    let root = TempDir::new("bad");
    let mut c2c = C2c::spawn(
        &[
            "run",
            "--cluster0",
            "mongodb://127.0.0.1:1",
            "--cluster1",
            "mongodb://127.0.0.1:2",
        ],
        &[("C2C_PORT", "twenty")],
        root.0.join("output.txt"),
    );
    let status = c2c.wait_for_exit();
    assert!(!status.success(), "{}", c2c.output());
    let output = c2c.output();
    assert!(
        output.contains("invalid port from environment variable C2C_PORT: \"twenty\""),
        "{output}"
    );

    let config = root.0.join("c2c.yaml");
    std::fs::write(
        &config,
        "cluster0: mongodb://a\ncluster1: mongodb://b\nloadLevel: 7\n",
    )
    .unwrap();
    let mut c2c = C2c::spawn(
        &["run", "--config", config.to_str().unwrap()],
        &[],
        root.0.join("output2.txt"),
    );
    let status = c2c.wait_for_exit();
    assert!(!status.success(), "{}", c2c.output());
    let expected = format!("invalid loadLevel from config file {}", config.display());
    assert!(c2c.output().contains(&expected), "{}", c2c.output());
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[test]
fn worker_and_coordinator_lines_carry_their_own_ids() {
    let root = TempDir::new("scaled");
    let etcd = format!("http://127.0.0.1:{}", free_port());

    let worker_logs = root.0.join("worker");
    let worker_port = free_port().to_string();
    let mut worker = C2c::spawn(
        &[
            "worker",
            "--etcd",
            &etcd,
            "--id",
            "w-logs",
            "--port",
            &worker_port,
        ],
        &[
            ("C2C_LOG_PATH", worker_logs.to_str().unwrap()),
            // Read by `c2c run` and `c2c coordinator` only; a worker ignores it.
            ("C2C_PORT", "not a port"),
        ],
        root.0.join("worker.txt"),
    );
    let coordinator_logs = root.0.join("coordinator");
    let coordinator_port = free_port().to_string();
    let mut coordinator = C2c::spawn(
        &[
            "coordinator",
            "--etcd",
            &etcd,
            "--cluster0",
            "mongodb://127.0.0.1:1",
            "--cluster1",
            "mongodb://127.0.0.1:2",
            "--port",
            &coordinator_port,
            "--logPath",
            coordinator_logs.to_str().unwrap(),
        ],
        &[],
        root.0.join("coordinator.txt"),
    );

    let worker_line = wait_for_line(&mut worker, &worker_logs.join("c2c.log"), "c2c worker");
    assert_mongosync_line(&worker_line, "w-logs");
    assert_eq!(worker_line["componentName"], "Worker");

    let coordinator_id = format!("{}-{coordinator_port}", hostname());
    let coordinator_log = coordinator_logs.join("c2c.log");
    let coordinator_line = wait_for_line(&mut coordinator, &coordinator_log, "c2c coordinator");
    assert_mongosync_line(&coordinator_line, &coordinator_id);
    assert_eq!(coordinator_line["componentName"], "Coordinator");
    // The default --verbosity is DEBUG: debug lines from c2c may appear; every line has
    // the coordinator's id once it is known (its default id needs the bound port).
    for line in lines_of(&coordinator_log) {
        assert_eq!(line["mongosyncID"], coordinator_id, "{line:?}");
    }
    worker.assert_running();
    coordinator.assert_running();
}

#[test]
fn the_error_that_ends_the_process_is_fatal_and_verbosity_fatal_keeps_only_it() {
    let root = TempDir::new("fatal");
    // The port is taken: `c2c run` cannot listen and stops.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("address").port().to_string();
    let run = |verbosity: &str, dir: &str| {
        let logs = root.0.join(dir);
        let mut c2c = C2c::spawn(
            &[
                "run",
                "--cluster0",
                "mongodb://127.0.0.1:1",
                "--cluster1",
                "mongodb://127.0.0.1:2",
                "--port",
                &port,
                "--verbosity",
                verbosity,
                "--logPath",
                logs.to_str().unwrap(),
            ],
            &[],
            root.0.join(format!("{dir}.txt")),
        );
        assert!(!c2c.wait_for_exit().success(), "{}", c2c.output());
        lines_of(&logs.join("c2c.log"))
    };
    let fatal = run("FATAL", "fatal");
    assert!(!fatal.is_empty());
    assert!(
        fatal.iter().all(|line| line["level"] == "fatal"),
        "{fatal:?}"
    );
    assert!(
        fatal.iter().any(|line| line["message"] == "c2c stopped"
            && line["error"]
                .as_str()
                .unwrap_or("")
                .contains("cannot listen")),
        "{fatal:?}"
    );
    let info = run("INFO", "info");
    let stopped: Vec<_> = info
        .iter()
        .filter(|line| line["message"] == "c2c stopped")
        .collect();
    assert_eq!(stopped.len(), 1, "{info:?}");
    assert_eq!(stopped[0]["level"], "fatal");
    assert!(info.iter().any(|line| line["level"] == "info"), "{info:?}");
}
