//! `serve` over a real socket: binds 127.0.0.1, initializes, answers, shuts down.

use std::time::Duration;

use c2c_coordinator::cli::RunArgs;
use c2c_coordinator::testing::FakeDriver;
use c2c_coordinator::{bind, serve, RunConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn http_get(address: std::net::SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn serves_on_localhost_until_shutdown() {
    let args = RunArgs {
        cluster0: Some("mongodb://127.0.0.1:1".into()),
        cluster1: Some("mongodb://127.0.0.1:2".into()),
        port: Some(0),
        ..RunArgs::default()
    };
    let config = RunConfig::from_yaml(&args, "").expect("config");
    let listener = bind(&config).await.expect("bind");
    let address = listener.local_addr().expect("address");
    assert!(
        address.ip().is_loopback(),
        "the API binds 127.0.0.1 by default"
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(&config, FakeDriver::new(), listener, async {
            let _ = stopped.await;
        })
        .await
    });
    let mut response = String::new();
    for _ in 0..100 {
        response = http_get(address, "/api/v1/progress").await;
        if response.contains("\"IDLE\"") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains(r#""state":"IDLE""#), "{response}");
    stop.send(()).expect("server alive");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("stops")
        .expect("join")
        .expect("served");
}
