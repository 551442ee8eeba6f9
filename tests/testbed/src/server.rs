//! The server: shared state of one testbed instance, the accept loop, and the handle
//! tests hold. Several instances in one process are fully independent (own clock,
//! own catalog, own oplog), as two real clusters are.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bson::oid::ObjectId;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::users::UserStore;
use crate::config::TestbedConfig;
use crate::cursor::CursorTable;
use crate::failpoint::FailPoints;
use crate::session::RetryCache;
use crate::store::Store;

/// State shared by every connection of one instance.
pub struct Server {
    pub config: TestbedConfig,
    /// `host:port` exactly as clients connect (`hosts`, `me`, `primary` in hello).
    pub host: String,
    pub process_id: ObjectId,
    pub topology_counter: AtomicI64,
    /// Bumped with `topology_counter` so awaitable hellos wake up.
    pub topology_changed: watch::Sender<i64>,
    pub store: RwLock<Store>,
    /// Latest oplog sequence number, so change-stream getMores can wait for writes.
    pub oplog_seq: watch::Sender<u64>,
    pub cursors: Mutex<CursorTable>,
    /// Present when authentication is on.
    pub users: Option<Arc<UserStore>>,
    pub write_block: AtomicBool,
    pub failpoints: Mutex<FailPoints>,
    pub retry_cache: Mutex<RetryCache>,
    pub connection_counter: AtomicI64,
    /// Extra latency before every command, in microseconds (emulates a remote cluster).
    pub latency_micros: AtomicU64,
    pub shutting_down: AtomicBool,
}

impl Server {
    pub fn auth_enabled(&self) -> bool {
        self.users.is_some()
    }

    /// Wakes change-stream waiters after writes.
    pub fn notify_oplog(&self, store: &Store) {
        let seq = store.oplog.next_seq();
        self.oplog_seq.send_if_modified(|current| {
            if *current != seq {
                *current = seq;
                true
            } else {
                false
            }
        });
    }

    pub fn bump_topology(&self) {
        let counter = self.topology_counter.fetch_add(1, Ordering::SeqCst) + 1;
        let _ = self.topology_changed.send(counter);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot load users: {0}")]
    Users(#[from] crate::auth::users::AuthError),
    #[error("invalid user: {0}")]
    User(String),
}

/// A running testbed. Dropping the handle does not stop it; call `shutdown`.
pub struct TestbedHandle {
    server: Arc<Server>,
    accept_task: JoinHandle<()>,
    ticker_task: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl TestbedHandle {
    /// `host:port` as advertised in hello.
    pub fn host(&self) -> &str {
        &self.server.host
    }

    pub fn port(&self) -> u16 {
        self.server
            .host
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    /// A connection string drivers accept: the replica-set name and the exact host.
    pub fn uri(&self) -> String {
        format!(
            "mongodb://{}/?replicaSet={}",
            self.server.host, self.server.config.repl_set
        )
    }

    /// A connection string with credentials (auth source admin).
    pub fn uri_with_auth(&self, user: &str, password: &str) -> String {
        format!(
            "mongodb://{}:{}@{}/?replicaSet={}&authSource=admin",
            percent_encode(user),
            percent_encode(password),
            self.server.host,
            self.server.config.repl_set
        )
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(self) {
        self.server.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.stop.send(true);
        self.accept_task.abort();
        self.ticker_task.abort();
        let _ = self.accept_task.await;
        let _ = self.ticker_task.await;
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Starts an instance and returns once its port accepts connections.
pub async fn start(config: TestbedConfig) -> Result<TestbedHandle, StartError> {
    let addr = std::net::SocketAddr::new(config.bind, config.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let host = match local.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]:{}", local.port()),
        std::net::IpAddr::V4(ip) => format!("{ip}:{}", local.port()),
    };
    let users = load_users(&config)?;
    let mut store = Store::new(config.oplog_retention);
    store.compact_documents = config.compact_documents;
    let (oplog_seq, _) = watch::channel(store.oplog.next_seq());
    let (topology_changed, _) = watch::channel(0);
    let server = Arc::new(Server {
        host,
        process_id: ObjectId::new(),
        topology_counter: AtomicI64::new(0),
        topology_changed,
        store: RwLock::new(store),
        oplog_seq,
        cursors: Mutex::new(CursorTable::default()),
        users,
        write_block: AtomicBool::new(false),
        failpoints: Mutex::new(FailPoints::default()),
        retry_cache: Mutex::new(RetryCache::default()),
        connection_counter: AtomicI64::new(0),
        latency_micros: AtomicU64::new(0),
        shutting_down: AtomicBool::new(false),
        config,
    });
    let (stop, stop_rx) = watch::channel(false);
    let accept_task = tokio::spawn(accept_loop(server.clone(), listener, stop_rx.clone()));
    let ticker_task = tokio::spawn(idle_ticker(server.clone()));
    Ok(TestbedHandle {
        server,
        accept_task,
        ticker_task,
        stop,
    })
}

fn load_users(config: &TestbedConfig) -> Result<Option<Arc<UserStore>>, StartError> {
    if config.auth_users_file.is_none() && config.auth_users.is_empty() {
        return Ok(None);
    }
    let store = match &config.auth_users_file {
        Some(path) => UserStore::from_json_file(path)?,
        None => UserStore::new(),
    };
    for spec in &config.auth_users {
        store
            .add(spec.clone())
            .map_err(|error| StartError::User(error.message))?;
    }
    Ok(Some(Arc::new(store)))
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, stop: watch::Receiver<bool>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                connections.spawn(crate::conn::serve(server.clone(), stream, stop.clone()));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Real replica sets write a no-op every 10 s when idle, so cluster time and
/// change-stream high-water marks keep advancing; the testbed does it more often.
async fn idle_ticker(server: Arc<Server>) {
    let interval = server
        .config
        .idle_noop_interval
        .max(Duration::from_millis(10));
    let mut seen_seq = 0;
    loop {
        tokio::time::sleep(interval).await;
        let mut store = server.store.write();
        // Only an interval without any write gets a no-op, as on a real primary.
        if store.oplog.next_seq() == seen_seq {
            store.noop();
            server.notify_oplog(&store);
        }
        seen_seq = store.oplog.next_seq();
    }
}
