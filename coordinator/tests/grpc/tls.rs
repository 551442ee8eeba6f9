//! The API over TLS (`--tlsCertFile`/`--tlsKeyFile`): REST and gRPC (with the token)
//! answer over TLS with a certificate from a test CA; a client that trusts another CA,
//! or speaks plain HTTP, gets nothing. Certificates come from the `openssl` command.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use c2c_api::v1::ProgressRequest;
use c2c_coordinator::auth::{ApiAuth, Secret};
use c2c_coordinator::ctl::{connect_with, CtlError};
use c2c_coordinator::tls::{read_roots, server_config};
use c2c_coordinator::ApiSecurity;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::serve_with;

const TOKEN: &str = "tls-test-token";

/// A directory with a CA (`<name>-ca.pem`) and a certificate it signed for
/// 127.0.0.1/localhost, usable as server and client (`<name>.pem`, `<name>.key`).
pub struct TestPki {
    pub dir: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestPki {
    pub fn new(label: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("c2c-pki-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("pki dir");
        TestPki { dir }
    }

    /// Creates CA `name` and a leaf certificate `name` signed by it.
    pub fn issue(&self, name: &str) {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let ca_key = format!("{name}-ca.key");
        let ca_pem = format!("{name}-ca.pem");
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            &ca_key,
            "-out",
            &ca_pem,
            "-days",
            "2",
            "-subj",
            "/CN=c2c test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&self.dir, &args);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let pem = format!("{name}.pem");
        let mut args = vec!["req"];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", "/CN=localhost"]);
        openssl(&self.dir, &args);
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .expect("ext file");
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

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
