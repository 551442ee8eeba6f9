//! A real, single-member etcd for tests: Debian's `/usr/bin/etcd` (package
//! `etcd-server`), `etcd` on `PATH`, or `$C2C_ETCD_BIN`, on two free loopback ports in a
//! temporary data directory.
//!
//! Tests that need etcd *fail* when it is missing — a skipped membership test looks
//! exactly like a passing one.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long a fresh or restarted member may take to report healthy.
const HEALTHY_WITHIN: Duration = Duration::from_secs(15);
/// Fresh ports per start attempt, in case another process grabs one between our probe
/// and etcd's bind.
const START_ATTEMPTS: u32 = 3;

/// Why a test etcd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EtcdTestError {
    /// No binary found.
    #[error(
        "etcd binary not found (looked at {looked_at}); install Debian's etcd-server \
         package (`apt-get install etcd-server`) or point C2C_ETCD_BIN at an etcd binary"
    )]
    NotFound {
        /// where we looked
        looked_at: String,
    },
    /// Spawning, port or directory trouble.
    #[error("{context}: {source}")]
    Io {
        /// what we were doing
        context: String,
        /// the I/O error
        #[source]
        source: std::io::Error,
    },
    /// The process started but never became healthy.
    #[error("etcd at {endpoint} not healthy within {within:?}; log tail:\n{log_tail}")]
    Unhealthy {
        /// the client URL
        endpoint: String,
        /// how long we waited
        within: Duration,
        /// the end of etcd's output
        log_tail: String,
    },
}

/// A running (or stopped) test etcd. Dropping it kills the process and removes its
/// directory.
#[derive(Debug)]
pub struct EtcdServer {
    binary: PathBuf,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    /// Plain-HTTP `/health` when clients speak TLS.
    metrics_port: u16,
    tls: Option<EtcdServerTls>,
    child: Option<Child>,
}

/// PEM files of a TLS-serving test etcd.
#[derive(Debug, Clone)]
pub struct EtcdServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate this CA signed (`--client-cert-auth`).
    pub client_ca: Option<PathBuf>,
}

impl EtcdServer {
    /// Starts etcd and waits until it is healthy. Panics with a clear message otherwise
    /// (including when etcd is not installed): tests must fail, not skip.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(server) => server,
            Err(error) => panic!("cannot start a test etcd: {error}"),
        }
    }

    /// [`Self::start`] serving clients over TLS only (https endpoints).
    pub async fn start_tls(tls: EtcdServerTls) -> Self {
        match Self::try_start_with(Some(tls)).await {
            Ok(server) => server,
            Err(error) => panic!("cannot start a test etcd with TLS: {error}"),
        }
    }

    /// [`Self::start`] without the panic.
    pub async fn try_start() -> Result<Self, EtcdTestError> {
        Self::try_start_with(None).await
    }

    async fn try_start_with(tls: Option<EtcdServerTls>) -> Result<Self, EtcdTestError> {
        let binary = find_binary()?;
        let mut server = Self {
            binary,
            dir: unique_dir()?,
            client_port: 0,
            peer_port: 0,
            metrics_port: 0,
            tls,
            child: None,
        };
        let mut attempt = 1;
        loop {
            server.client_port = free_port()?;
            server.peer_port = free_port()?;
            server.metrics_port = free_port()?;
            match server.launch().await {
                Ok(()) => return Ok(server),
                // Dropping `server` kills etcd and removes the directory.
                Err(error) if attempt >= START_ATTEMPTS => return Err(error),
                Err(_) => {
                    server.kill();
                    let _ = std::fs::remove_dir_all(server.dir.join("data"));
                    attempt += 1;
                }
            }
        }
    }

    /// Client URLs, as [`crate::connect`] wants them.
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.client_url()]
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process (SIGKILL, by pid), like a crash. Data stays for [`Self::restart`].
    pub fn stop(&mut self) {
        self.kill();
    }

    /// Starts the process again on the same ports and data directory, and waits until it
    /// is healthy. Panics if it does not come back.
    pub async fn restart(&mut self) {
        self.kill();
        if let Err(error) = self.launch().await {
            panic!("cannot restart the test etcd: {error}");
        }
    }

    fn client_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("etcd.log")
    }

    async fn launch(&mut self) -> Result<(), EtcdTestError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|source| io("open etcd log", source))?;
        let log_err = log
            .try_clone()
            .map_err(|source| io("clone etcd log", source))?;
        let mut command = Command::new(&self.binary);
        command
            .arg("--name=c2c-test")
            .arg(format!("--data-dir={}", self.dir.join("data").display()))
            .arg(format!("--listen-client-urls={}", self.client_url()))
            .arg(format!("--advertise-client-urls={}", self.client_url()))
            .arg(format!("--listen-peer-urls={}", self.peer_url()))
            .arg(format!("--initial-advertise-peer-urls={}", self.peer_url()))
            .arg(format!("--initial-cluster=c2c-test={}", self.peer_url()))
            .arg("--initial-cluster-state=new")
            // A single member elects itself within a few ticks: fast start and restart.
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=50")
            .arg("--quota-backend-bytes=268435456")
            .arg("--snapshot-count=10000")
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .arg("--log-level=error")
            .arg(format!(
                "--listen-metrics-urls=http://127.0.0.1:{}",
                self.metrics_port
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert.display()))
                .arg(format!("--key-file={}", tls.key.display()));
            if let Some(ca) = &tls.client_ca {
                command
                    .arg("--client-cert-auth")
                    .arg(format!("--trusted-ca-file={}", ca.display()));
            }
        }
        if cfg!(not(target_arch = "x86_64")) {
            // etcd 3.4 refuses to start on other architectures without this.
            command.env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
        }
        let child = command
            .spawn()
            .map_err(|source| io(&format!("spawn {}", self.binary.display()), source))?;
        self.child = Some(child);
        self.wait_healthy().await
    }

    async fn wait_healthy(&mut self) -> Result<(), EtcdTestError> {
        let deadline = Instant::now() + HEALTHY_WITHIN;
        // The metrics listener serves /health in plain HTTP whatever the clients speak.
        let address = SocketAddr::from(([127, 0, 0, 1], self.metrics_port));
        loop {
            if is_healthy(address).await {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() >= deadline {
                return Err(EtcdTestError::Unhealthy {
                    endpoint: self.client_url(),
                    within: HEALTHY_WITHIN,
                    log_tail: log_tail(&self.log_path()),
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_binary() -> Result<PathBuf, EtcdTestError> {
    if let Some(explicit) = std::env::var_os("C2C_ETCD_BIN") {
        let path = PathBuf::from(explicit);
        if path.is_file() {
            return Ok(path);
        }
        return Err(EtcdTestError::NotFound {
            looked_at: format!("C2C_ETCD_BIN={}", path.display()),
        });
    }
    let debian = PathBuf::from("/usr/bin/etcd");
    if debian.is_file() {
        return Ok(debian);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcd"))
            .find(|candidate| candidate.is_file())
    });
    on_path.ok_or_else(|| EtcdTestError::NotFound {
        looked_at: "/usr/bin/etcd and PATH".to_owned(),
    })
}

fn unique_dir() -> Result<PathBuf, EtcdTestError> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let name = format!(
        "c2c-etcd-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).map_err(|source| io("create etcd temp dir", source))?;
    Ok(dir)
}

fn free_port() -> Result<u16, EtcdTestError> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|source| io("probe a free port", source))?;
    let port = listener
        .local_addr()
        .map_err(|source| io("probe a free port", source))?
        .port();
    Ok(port)
}

/// `GET /health` by hand: `{"health":"true"}` once the member has a raft leader.
async fn is_healthy(address: SocketAddr) -> bool {
    let probe = async {
        let mut stream = TcpStream::connect(address).await.ok()?;
        let request = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).contains("\"health\":\"true\""))
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(500), probe).await,
        Ok(Some(true))
    )
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn io(context: &str, source: std::io::Error) -> EtcdTestError {
    EtcdTestError::Io {
        context: context.to_owned(),
        source,
    }
}
