//! The scaled-out migration as separate processes: a real etcd (Debian's `etcd`,
//! started here on free ports), `c2c coordinator` and `c2c worker` children of this
//! test that it can `kill -9`, SIGSTOP/SIGCONT and restart, and the two clusters.
//! Each child's output goes to a log file that is printed when the test fails.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use c2c_coordinator::rest_client::RestClient;
use c2c_membership::etcd_testing::EtcdServer;
use serde_json::Value;

use super::{fast, Cluster};

pub const MIGRATION: &str = "e2e";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

pub struct Child {
    pub id: String,
    pub port: u16,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    log: PathBuf,
    process: Option<tokio::process::Child>,
    /// How to reach its API when it serves TLS.
    api_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Child {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
            .args(&self.args)
            .envs(self.envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn c2c");
        self.process = Some(process);
    }

    pub fn pid(&self) -> u32 {
        self.process.as_ref().and_then(|p| p.id()).expect("running")
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn rest(&self) -> RestClient {
        let client = RestClient::new(self.address());
        match &self.api_tls {
            None => client,
            Some(tls) => client.with_tls(
                tls.clone(),
                c2c_coordinator::tls::server_name("127.0.0.1:0").expect("name"),
            ),
        }
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.start_kill().expect("kill -9");
            let _ = process.wait().await;
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn();
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.pid());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A deployment's etcd and the flags that secure it.
pub struct Secured {
    pub etcd: EtcdServer,
    pub etcd_security: c2c_membership::EtcdSecurity,
    /// Flags of every process.
    pub args: Vec<String>,
    /// Flags of coordinators only (API TLS).
    pub coordinator_args: Vec<String>,
    /// Trusts the coordinators' API certificates when they serve TLS.
    pub api_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

pub struct Deployment {
    pub etcd: EtcdServer,
    pub source: Cluster,
    pub destination: Cluster,
    pub coordinators: Vec<Child>,
    pub workers: Vec<Child>,
    /// Variables every child gets (besides its own).
    env: Vec<(String, String)>,
    /// Flags every child gets (etcd and cluster security).
    common_args: Vec<String>,
    coordinator_args: Vec<String>,
    api_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// How this test reaches etcd itself.
    etcd_security: c2c_membership::EtcdSecurity,
    dir: PathBuf,
    passed: bool,
}

impl Deployment {
    /// etcd, two clusters, `coordinators` coordinators and `workers` workers (the
    /// workers read the cluster URIs the leader publishes). `partition_bytes` sizes the
    /// copy partitions (`C2C_PARTITION_TARGET_BYTES`).
    pub async fn start(coordinators: usize, workers: usize, partition_bytes: u64) -> Deployment {
        Deployment::start_with_env(coordinators, workers, partition_bytes, Vec::new()).await
    }

    /// As [`Deployment::start`], with `env` in every child's environment.
    pub async fn start_with_env(
        coordinators: usize,
        workers: usize,
        partition_bytes: u64,
        env: Vec<(String, String)>,
    ) -> Deployment {
        let options = Secured {
            etcd: EtcdServer::start().await,
            etcd_security: Default::default(),
            args: Vec::new(),
            coordinator_args: Vec::new(),
            api_tls: None,
        };
        Deployment::start_secured(coordinators, workers, partition_bytes, env, options).await
    }

    /// As [`Deployment::start_with_env`], on a given etcd, with `options.args` given to
    /// every child.
    pub async fn start_secured(
        coordinators: usize,
        workers: usize,
        partition_bytes: u64,
        env: Vec<(String, String)>,
        options: Secured,
    ) -> Deployment {
        let Secured {
            etcd,
            etcd_security,
            args: common_args,
            coordinator_args,
            api_tls,
        } = options;
        let source = Cluster::start("C2C_TEST_SOURCE_URI", fast()).await;
        let destination = Cluster::start("C2C_TEST_DESTINATION_URI", fast()).await;
        let dir = std::env::temp_dir().join(format!(
            "c2c-e2e-{}-{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos() ^ u128::from(free_port())
        ));
        std::fs::create_dir_all(&dir).expect("log dir");
        let mut deployment = Deployment {
            etcd,
            source,
            destination,
            coordinators: Vec::new(),
            workers: Vec::new(),
            env,
            common_args,
            coordinator_args,
            api_tls,
            etcd_security,
            dir,
            passed: false,
        };
        for index in 1..=coordinators {
            deployment.add_coordinator(&format!("c{index}"), partition_bytes);
            // The first one started usually wins the first election.
            if index == 1 {
                deployment.wait_for_leader(Duration::from_secs(30)).await;
            }
        }
        for index in 1..=workers {
            deployment.add_worker(&format!("w{index}"));
        }
        for coordinator in &deployment.coordinators {
            wait_listening(coordinator.address()).await;
        }
        deployment
    }

    fn etcd_flag(&self) -> String {
        self.etcd.endpoints().join(",")
    }

    fn add_coordinator(&mut self, id: &str, partition_bytes: u64) {
        let port = free_port();
        let args = vec![
            "coordinator".into(),
            "--cluster0".into(),
            self.source.uri.clone(),
            "--cluster1".into(),
            self.destination.uri.clone(),
            "--etcd".into(),
            self.etcd_flag(),
            "--migration-id".into(),
            MIGRATION.into(),
            "--id".into(),
            id.into(),
            "--port".into(),
            port.to_string(),
            "--verbosity".into(),
            "INFO".into(),
        ];
        let args = args
            .into_iter()
            .chain(self.common_args.clone())
            .chain(self.coordinator_args.clone())
            .collect();
        let mut child = Child {
            id: id.into(),
            port,
            args,
            envs: [(
                "C2C_PARTITION_TARGET_BYTES".to_string(),
                partition_bytes.to_string(),
            )]
            .into_iter()
            .chain(self.env.iter().cloned())
            .collect(),
            log: self.dir.join(format!("{id}.log")),
            process: None,
            api_tls: self.api_tls.clone(),
        };
        child.spawn();
        self.coordinators.push(child);
    }

    fn add_worker(&mut self, id: &str) {
        self.add_worker_with(id, self.common_args.clone());
    }

    /// A worker with its own security flags instead of the deployment's.
    pub fn add_worker_with(&mut self, id: &str, security_args: Vec<String>) {
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
            "INFO".into(),
        ];
        let args = args.into_iter().chain(security_args).collect();
        let mut child = Child {
            id: id.into(),
            port,
            args,
            envs: self.env.clone(),
            log: self.dir.join(format!("{id}.log")),
            process: None,
            api_tls: None,
        };
        child.spawn();
        self.workers.push(child);
    }

    /// Waits (up to 180 s) until the destination equals the source, then asserts it.
    pub async fn assert_clusters_equal(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let report = c2c_engine::compare::compare_clusters(
                &self.source.client,
                &self.destination.client,
                &c2c_engine::filter::NamespaceFilter::default(),
            )
            .await
            .expect("compare");
            if report.is_equal() || Instant::now() > deadline {
                super::assert_equal(&report);
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    pub fn coordinator(&mut self, id: &str) -> &mut Child {
        self.coordinators
            .iter_mut()
            .find(|c| c.id == id)
            .expect("coordinator")
    }

    pub fn worker(&mut self, id: &str) -> &mut Child {
        self.workers
            .iter_mut()
            .find(|w| w.id == id)
            .expect("worker")
    }

    /// The id of the coordinator etcd names as leader (`c2c.leader` SERVING is the
    /// process's own view; this is the election's).
    pub async fn leader(&self) -> Option<String> {
        let client = c2c_membership::connect_with(&self.etcd.endpoints(), &self.etcd_security)
            .await
            .ok()?;
        let election = c2c_membership::EtcdElection::new(
            client,
            &c2c_membership::MigrationId::new(MIGRATION).expect("id"),
            c2c_membership::CandidateInfo {
                id: "observer".into(),
                address: "none:0".into(),
            },
        );
        use c2c_membership::Election;
        election.leader().await.ok().flatten().map(|info| info.id)
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until a leader other than `old` is elected and answers `/progress` itself.
    pub async fn wait_for_new_leader(&self, old: &str, timeout: Duration) -> String {
        self.serving_leader(Some(old), timeout).await
    }

    /// The coordinator that leads and answers as the leader: etcd names it, and its own
    /// `/progress` answers (with itself as `coordinatorID` once a migration runs). A
    /// restarted process may still be named by its previous incarnation's key until
    /// that key's lease expires; it answers 503 meanwhile.
    pub async fn serving_leader(&self, except: Option<&str>, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await.filter(|l| Some(l.as_str()) != except) {
                let child = self.coordinators.iter().find(|c| c.id == leader);
                if let Some(child) = child {
                    if let Ok((200, body)) = child.rest().get("/api/v1/progress").await {
                        let coordinator = &body["progress"]["coordinatorID"];
                        if coordinator.is_null() || coordinator.as_str() == Some(leader.as_str()) {
                            return leader;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no serving leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A coordinator other than the leader (its API forwards to the leader).
    pub async fn follower(&self) -> String {
        let leader = self.wait_for_leader(Duration::from_secs(30)).await;
        self.coordinators
            .iter()
            .find(|c| c.id != leader && c.process.is_some())
            .expect("a follower")
            .id
            .clone()
    }

    /// Polls `/progress` on `coordinator` until `predicate` holds; fails on a reported
    /// migration failure or the timeout. Errors while coordinators change are retried.
    pub async fn wait_for(
        &self,
        coordinator: &str,
        predicate: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        let rest = self
            .coordinators
            .iter()
            .find(|c| c.id == coordinator)
            .expect("coordinator")
            .rest();
        let deadline = Instant::now() + timeout;
        let mut last = Value::Null;
        loop {
            if let Ok((200, body)) = rest.get("/api/v1/progress").await {
                let progress = body["progress"].clone();
                if predicate(&progress) {
                    return progress;
                }
                if let Some(warnings) = progress["warnings"].as_array() {
                    let failed = warnings
                        .iter()
                        .filter_map(Value::as_str)
                        .find(|w| w.contains("failed"));
                    assert!(failed.is_none(), "migration failed: {progress}");
                }
                last = progress;
            }
            assert!(
                Instant::now() < deadline,
                "timed out on {coordinator}; last progress: {last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn post(&self, coordinator: &str, path: &str, body: Value) -> (u16, Value) {
        let rest = self
            .coordinators
            .iter()
            .find(|c| c.id == coordinator)
            .expect("coordinator")
            .rest();
        rest.post(path, &body).await.expect("REST call")
    }

    /// Marks the test passed: the logs are deleted instead of printed.
    pub fn passed(&mut self) {
        self.passed = true;
    }

    pub fn logs(&self) -> BTreeMap<String, String> {
        self.coordinators
            .iter()
            .chain(&self.workers)
            .map(|c| (c.id.clone(), c.log_text()))
            .collect()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        // C2C_E2E_LOGS=1 prints them for a passing test too.
        if !self.passed || std::env::var_os("C2C_E2E_LOGS").is_some() {
            for (id, text) in self.logs() {
                let keep = if self.passed { usize::MAX } else { 80 };
                let lines: Vec<&str> = text.lines().collect();
                eprintln!("===== {id} (last {} lines) =====", keep.min(lines.len()));
                for line in &lines[lines.len().saturating_sub(keep)..] {
                    eprintln!("{line}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait_listening(address: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(address).await.is_err() {
        assert!(Instant::now() < deadline, "{address} did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
