//! The scaled-out processes secured as a production deployment would be: etcd serves
//! TLS only, wants client certificates and has authentication on (c2c uses a user
//! limited to the `/c2c/` prefix); coordinators and workers talk mutual TLS with
//! certificates of one cluster CA. A worker whose certificate another CA signed
//! registers in etcd but is never given work, a client without the cluster
//! certificate cannot call a worker, the coordinators serve their API over TLS only and
//! the follower forwards to the leader over TLS, and a wrong etcd password stops a process with a
//! clear error that does not repeat the password. The migration still commits with
//! equal data.

mod common;

use std::time::Duration;

use c2c_api::v1::migration_client::MigrationClient;
use c2c_api::v1::worker_client::WorkerClient;
use c2c_api::v1::{ProgressRequest, WatchWorkerRequest};
use c2c_membership::etcd_testing::{EtcdServer, EtcdServerTls};
use c2c_membership::{EtcdSecurity, EtcdTls};
use common::load_databases;
use common::pki::TestPki;
use common::processes::{Deployment, Secured};
use etcd_client::{Permission, PermissionType};
use serde_json::{json, Value};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

const CONVERGE: Duration = Duration::from_secs(180);
const ROOT_PASSWORD: &str = "root-Pw-7c1e";
const C2C_PASSWORD: &str = "c2c-Pw-52ab";

fn read(pki: &TestPki, file: &str) -> Vec<u8> {
    std::fs::read(pki.path(file)).expect("pki file")
}

/// A TLS-only etcd requiring client certificates, with a `c2c` user that may only touch
/// `/c2c/`, and authentication enabled.
async fn secured_etcd(pki: &TestPki) -> (EtcdServer, EtcdTls) {
    let etcd = EtcdServer::start_tls(EtcdServerTls {
        cert: pki.path("etcd.pem"),
        key: pki.path("etcd.key"),
        client_ca: Some(pki.path("etcd-ca.pem")),
    })
    .await;
    let tls = EtcdTls {
        ca_pem: read(pki, "etcd-ca.pem"),
        identity: Some((read(pki, "etcd.pem"), read(pki, "etcd.key"))),
    };
    let mut admin = c2c_membership::connect_with(
        &etcd.endpoints(),
        &EtcdSecurity {
            tls: Some(tls.clone()),
            user: None,
        },
    )
    .await
    .expect("etcd over TLS");
    admin
        .user_add("root", ROOT_PASSWORD, None)
        .await
        .expect("root");
    admin.user_grant_role("root", "root").await.expect("grant");
    admin.role_add("c2c").await.expect("role");
    admin
        .role_grant_permission(
            "c2c",
            Permission::new(PermissionType::Readwrite, "/c2c/").with_prefix(),
        )
        .await
        .expect("permission");
    admin
        .user_add("c2c", C2C_PASSWORD, None)
        .await
        .expect("user");
    admin.user_grant_role("c2c", "c2c").await.expect("grant");
    admin.auth_enable().await.expect("auth enable");
    (etcd, tls)
}

fn etcd_args(pki: &TestPki) -> Vec<String> {
    [
        "--etcdCAFile",
        "etcd-ca.pem",
        "--etcdCertFile",
        "etcd.pem",
        "--etcdKeyFile",
        "etcd.key",
        "--etcdUser",
        "c2c",
    ]
    .chunks(2)
    .flat_map(|pair| {
        let value = if pair[1].ends_with(".pem") || pair[1].ends_with(".key") {
            pki.path(pair[1]).display().to_string()
        } else {
            pair[1].to_string()
        };
        [pair[0].to_string(), value]
    })
    .collect()
}

fn cluster_args(pki: &TestPki, name: &str) -> Vec<String> {
    vec![
        "--clusterCAFile".into(),
        pki.path(&format!("{name}-ca.pem")).display().to_string(),
        "--clusterCertFile".into(),
        pki.path(&format!("{name}.pem")).display().to_string(),
        "--clusterKeyFile".into(),
        pki.path(&format!("{name}.key")).display().to_string(),
    ]
}

/// Opens a worker's progress stream with `tls` (`None`: plain h2c).
async fn call_worker(port: u16, tls: Option<ClientTlsConfig>) -> Result<(), String> {
    let endpoint = match tls {
        None => Endpoint::from_shared(format!("http://127.0.0.1:{port}")),
        Some(tls) => Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
            .and_then(|endpoint| endpoint.tls_config(tls)),
    }
    .map_err(|error| error.to_string())?
    .connect_timeout(Duration::from_secs(3))
    .timeout(Duration::from_secs(5));
    let channel = endpoint
        .connect()
        .await
        .map_err(|error| error.to_string())?;
    WorkerClient::new(channel)
        .watch_progress(WatchWorkerRequest { interval_ms: 500 })
        .await
        .map(|_| ())
        .map_err(|status| status.to_string())
}

fn worker<'a>(progress: &'a Value, id: &str) -> &'a Value {
    progress["workers"]
        .as_array()
        .and_then(|workers| workers.iter().find(|w| w["workerId"] == id))
        .unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_between_processes_and_etcd_with_tls_and_a_user() {
    let pki = TestPki::new("cluster-security");
    for name in ["etcd", "cluster", "rogue", "api"] {
        pki.issue(name);
    }
    let (etcd, etcd_tls) = secured_etcd(&pki).await;
    let args: Vec<String> = etcd_args(&pki)
        .into_iter()
        .chain(cluster_args(&pki, "cluster"))
        .collect();
    let api_tls = c2c_coordinator::tls::client_config(&pki.path("api-ca.pem")).expect("api CA");
    let mut d = Deployment::start_secured(
        2,
        1,
        64 * 1024,
        vec![("C2C_ETCD_PASSWORD".into(), C2C_PASSWORD.into())],
        Secured {
            etcd,
            etcd_security: EtcdSecurity {
                tls: Some(etcd_tls),
                user: Some(c2c_membership::EtcdUser {
                    name: "c2c".into(),
                    password: C2C_PASSWORD.into(),
                }),
            },
            args,
            coordinator_args: [
                "--tlsCertFile",
                "api.pem",
                "--tlsKeyFile",
                "api.key",
                "--tlsCAFile",
                "api-ca.pem",
            ]
            .chunks(2)
            .flat_map(|pair| [pair[0].to_string(), pki.path(pair[1]).display().to_string()])
            .collect(),
            api_tls: Some(api_tls),
        },
    )
    .await;
    // Holds the etcd credentials, but its cluster certificate is another CA's.
    d.add_worker_with(
        "rogue",
        etcd_args(&pki)
            .into_iter()
            .chain(cluster_args(&pki, "rogue"))
            .collect(),
    );
    load_databases(&d.source.client, 1_000, 200).await;
    let leader = d.serving_leader(None, Duration::from_secs(30)).await;
    // Both registered in etcd (through TLS and the c2c user).
    d.wait_for(
        &leader,
        |p| !worker(p, "w1").is_null() && !worker(p, "rogue").is_null(),
        Duration::from_secs(30),
    )
    .await;

    // The API is TLS only; the follower forwards to the leader over TLS (REST and gRPC).
    let follower = d.follower().await;
    let plain = c2c_coordinator::rest_client::RestClient::new(d.coordinator(&follower).address())
        .get("/api/v1/progress")
        .await;
    assert!(
        !matches!(plain, Ok((200, _))),
        "plain HTTP reached the API: {plain:?}"
    );

    let (status, body) = d
        .post(
            &follower,
            "/api/v1/start",
            json!({"source": "cluster0", "destination": "cluster1"}),
        )
        .await;
    assert_eq!(status, 200, "/start: {body}");
    let channel = Endpoint::from_shared(format!(
        "https://127.0.0.1:{}",
        d.coordinator(&follower).port
    ))
    .unwrap()
    .tls_config(
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&pki, "api-ca.pem"))),
    )
    .unwrap()
    .connect()
    .await
    .expect("gRPC over TLS to the follower");
    let reply = MigrationClient::new(channel)
        .progress(ProgressRequest {})
        .await
        .expect("Progress forwarded over TLS")
        .into_inner();
    assert_eq!(reply.coordinator_id, leader, "{reply:?}");
    assert_eq!(reply.mongosync_id, follower, "{reply:?}");
    let progress = d
        .wait_for(&leader, |p| p["canCommit"] == json!(true), CONVERGE)
        .await;
    let w1 = worker(&progress, "w1");
    assert_eq!(w1["status"], "live", "{progress}");
    // w1 copied everything: the rogue's share was never planned.
    assert_eq!(w1["copiedDocuments"], json!(8_000), "{progress}");
    let rogue = worker(&progress, "rogue");
    assert_eq!(rogue["status"], "unreachable", "{progress}");
    assert_eq!(rogue["partitionsAssigned"], json!(0), "{progress}");
    assert_eq!(rogue["streamShards"], json!([]), "{progress}");

    // The worker's port: nothing gets in without a certificate of the cluster CA.
    let port = d.worker("w1").port;
    let ca = Certificate::from_pem(read(&pki, "cluster-ca.pem"));
    let refused_plain = call_worker(port, None).await;
    assert!(refused_plain.is_err(), "plain h2c reached the worker");
    let refused_anonymous = call_worker(
        port,
        Some(ClientTlsConfig::new().ca_certificate(ca.clone())),
    )
    .await;
    assert!(
        refused_anonymous.is_err(),
        "a client without a certificate reached the worker"
    );
    let rogue_identity = Identity::from_pem(read(&pki, "rogue.pem"), read(&pki, "rogue.key"));
    let refused_rogue = call_worker(
        port,
        Some(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .identity(rogue_identity),
        ),
    )
    .await;
    assert!(
        refused_rogue.is_err(),
        "another CA's certificate reached the worker"
    );
    let identity = Identity::from_pem(read(&pki, "cluster.pem"), read(&pki, "cluster.key"));
    call_worker(
        port,
        Some(ClientTlsConfig::new().ca_certificate(ca).identity(identity)),
    )
    .await
    .expect("the cluster certificate is accepted");

    let (status, body) = d.post(&follower, "/api/v1/commit", json!({})).await;
    assert_eq!(status, 200, "/commit: {body}");
    d.wait_for(&leader, |p| p["state"] == "COMMITTED", CONVERGE)
        .await;
    d.assert_clusters_equal().await;
    let leader_log = d.coordinator(&leader).log_text();
    assert!(
        leader_log
            .lines()
            .any(|line| line.contains("cannot reach this registered worker")
                && line.contains("rogue")),
        "the leader says why the rogue worker gets no work"
    );

    // A wrong etcd password: the process stops, says why, and does not echo it.
    let wrong = "wrong-Pw-0d9e";
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args(["worker", "--id", "intruder", "--port", "0", "--etcd"])
        .arg(d.etcd.endpoints().join(","))
        .args(["--migration-id", common::processes::MIGRATION])
        .args(etcd_args(&pki))
        .env("C2C_ETCD_PASSWORD", wrong)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), output)
        .await
        .expect("a refused password ends the process")
        .expect("run c2c worker");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("etcd refused this process"), "{text}");
    assert!(!text.contains(wrong), "the password was printed: {text}");
    d.passed();
}
