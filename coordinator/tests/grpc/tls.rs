//! The API over TLS (`--tlsCertFile`/`--tlsKeyFile`): REST and gRPC (with the token)
//! answer over TLS with a certificate from a test CA; a client that trusts another CA,
//! or speaks plain HTTP, gets nothing. Certificates come from the `openssl` command.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use c2c_api::v1::ProgressRequest;
use c2c_coordinator::auth::{ApiAuth, Secret};
use c2c_coordinator::ctl::{connect_with, CtlError};
use c2c_coordinator::tls::{read_roots, server_config};
use c2c_coordinator::ApiSecurity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::serve_with;
use crate::pki::TestPki;

const TOKEN: &str = "tls-test-token";

/// `GET path` over TLS trusting `ca`; the raw response, or the handshake's error.
async fn https_get(port: u16, ca: &Path, path: &str, token: &str) -> Result<String, String> {
    let roots = read_roots(ca)?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let mut stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .map_err(|_| "timeout".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[tokio::test]
async fn rest_and_grpc_answer_over_tls_only() {
    let pki = TestPki::new("api");
    pki.issue("server");
    pki.issue("other");
    let tls = server_config(&pki.path("server.pem"), &pki.path("server.key"), None)
        .expect("server config");
    let server = serve_with(ApiSecurity {
        auth: ApiAuth::new(Some(Secret::new(TOKEN)), false),
        tls: Some(tls),
    })
    .await;
    let port = server.address.port();

    let response = https_get(port, &pki.path("server-ca.pem"), "/api/v1/progress", TOKEN)
        .await
        .expect("TLS with the right CA");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"IDLE\""), "{response}");
    let refused = https_get(port, &pki.path("server-ca.pem"), "/api/v1/progress", "bad")
        .await
        .expect("TLS");
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let untrusted = https_get(port, &pki.path("other-ca.pem"), "/api/v1/progress", TOKEN).await;
    assert!(untrusted.is_err(), "{untrusted:?}");

    // Plain HTTP on the TLS port gets no answer.
    let plain = c2c_coordinator::rest_client::RestClient::new(server.address)
        .with_token(TOKEN)
        .get("/api/v1/progress")
        .await;
    assert!(plain.is_err(), "{plain:?}");

    // gRPC (`c2c ctl`'s client) over TLS, with the CA and the token.
    let url = format!("https://127.0.0.1:{port}");
    let mut client = connect_with(&url, Some(TOKEN), Some(&pki.path("server-ca.pem")))
        .await
        .expect("gRPC over TLS");
    let reply = client.progress(ProgressRequest {}).await.expect("progress");
    assert_eq!(reply.into_inner().state, "IDLE");
    let wrong_ca = connect_with(&url, Some(TOKEN), Some(&pki.path("other-ca.pem"))).await;
    assert!(
        matches!(wrong_ca, Err(CtlError::Connect { .. })),
        "{:?}",
        wrong_ca.err()
    );
    assert!(matches!(
        connect_with(&url, Some(TOKEN), None).await,
        Err(CtlError::Usage(_))
    ));
    server.stop_within(Duration::from_secs(10)).await;
}
