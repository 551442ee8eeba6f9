//! A real server (REST and gRPC on one 127.0.0.1 port) over `FakeDriver`, and clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use c2c_api::v1::migration_client::MigrationClient;
use c2c_coordinator::state::State;
use c2c_coordinator::testing::FakeDriver;
use c2c_coordinator::{serve_coordinator_with, ApiSecurity, Coordinator, CoordinatorSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

pub struct Server {
    pub address: SocketAddr,
    pub driver: Arc<FakeDriver>,
    pub coordinator: Arc<Coordinator>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

pub fn settings() -> CoordinatorSettings {
    CoordinatorSettings {
        id: "coordinator".into(),
        cluster0_hosts: vec!["db0.example.net:27017".into()],
        cluster1_hosts: vec!["db1.example.net:27018".into()],
        load_level: None,
        init_retry: Duration::from_millis(5),
        continue_persisted: false,
    }
}

/// Serves a fresh coordinator and waits until it is IDLE.
pub async fn serve() -> Server {
    serve_with(ApiSecurity::default()).await
}

/// `serve` with an API token (and TLS) as `security` says.
pub async fn serve_with(security: ApiSecurity) -> Server {
    let driver = FakeDriver::new();
    let coordinator = Coordinator::new(settings(), driver.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_coordinator_with(
        Arc::clone(&coordinator),
        listener,
        async {
            let _ = stopped.await;
        },
        security,
    ));
    for _ in 0..500 {
        if coordinator.state() == State::Idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(coordinator.state(), State::Idle);
    Server {
        address,
        driver,
        coordinator,
        stop,
        task,
    }
}

impl Server {
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.address))
            .expect("uri")
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .expect("connect")
    }

    pub async fn client(&self) -> MigrationClient<Channel> {
        MigrationClient::new(self.channel().await)
    }

    /// Stops the server and checks it stopped within `within`.
    pub async fn stop_within(self, within: Duration) {
        self.stop.send(()).expect("server alive");
        tokio::time::timeout(within, self.task)
            .await
            .expect("the server stops in time")
            .expect("join")
            .expect("served");
    }
}

/// The `c2c-error` name and the code of a refused call.
#[track_caller]
pub fn refusal<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, tonic::Status>,
) -> (tonic::Code, String, String) {
    let status = result.expect_err("the call must be refused");
    let name = status
        .metadata()
        .get("c2c-error")
        .unwrap_or_else(|| panic!("no c2c-error metadata: {status:?}"))
        .to_str()
        .expect("ascii")
        .to_string();
    (status.code(), name, status.message().to_string())
}
