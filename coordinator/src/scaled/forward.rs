//! A follower coordinator answers the API by forwarding each call to the leader, so a
//! client can talk to any coordinator (or a load balancer in front of all of them).
//! As in mongosync, `mongosyncID` in a forwarded progress document is the answering
//! process's own id while `coordinatorID` stays the leader's.

use std::time::Duration;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use c2c_api::v1::migration_client::MigrationClient;
use c2c_api::v1::ProgressReply;
use parking_lot::Mutex;
use serde_json::Value;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::Status;

use crate::api::error::ApiError;
use crate::rest_client::RestClient;

/// The largest body a follower forwards (the leader enforces its own, smaller, limit).
const FORWARD_BODY_LIMIT: usize = 4 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Unary calls; `/commit` answers once the commit is accepted, not when it finishes.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

/// How a follower reaches the leader's API when the coordinators serve it over TLS:
/// trusting the CA that signed their API certificates (`--tlsCAFile`).
#[derive(Clone)]
pub struct ForwardTls {
    rest: std::sync::Arc<rustls::ClientConfig>,
    grpc: ClientTlsConfig,
}

impl ForwardTls {
    pub fn load(ca: &std::path::Path) -> Result<ForwardTls, String> {
        let rest = crate::tls::client_config(ca)?;
        let pem =
            std::fs::read(ca).map_err(|error| format!("cannot read {}: {error}", ca.display()))?;
        Ok(ForwardTls {
            rest,
            grpc: ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)),
        })
    }
}

/// Forwards REST and gRPC calls to whichever coordinator currently leads.
pub struct Forwarder {
    /// This coordinator's id (the `mongosyncID` it answers with).
    me: String,
    tls: Option<ForwardTls>,
    /// One channel to the current leader; replaced when the leader changes.
    client: Mutex<Option<(String, MigrationClient<Channel>)>>,
}

fn unavailable(leader: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::LeaderUnavailable(format!(
        "this coordinator is a follower and cannot reach the leader at {leader}: {why}; retry shortly (a new leader is elected within seconds if it is gone)"
    ))
}

impl Forwarder {
    pub fn new(me: String, tls: Option<ForwardTls>) -> Forwarder {
        Forwarder {
            me,
            tls,
            client: Mutex::new(None),
        }
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Sends the REST call to the leader at `leader` (host:port) and relays its answer.
    pub async fn rest(&self, leader: &str, request: Request) -> Response {
        match self.try_rest(leader, request).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn try_rest(&self, leader: &str, request: Request) -> Result<Response, ApiError> {
        let method = request.method().as_str().to_string();
        // The caller's credentials go along: the leader checks them itself.
        let authorization = request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let path = request.uri().path_and_query().map_or_else(
            || request.uri().path().to_string(),
            |p| p.as_str().to_string(),
        );
        let body = axum::body::to_bytes(request.into_body(), FORWARD_BODY_LIMIT)
            .await
            .map_err(|_| {
                ApiError::RequestTooLarge(format!(
                    "the request body exceeds {FORWARD_BODY_LIMIT} bytes"
                ))
            })?;
        let body = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        let address = tokio::net::lookup_host(leader)
            .await
            .map_err(|error| unavailable(leader, error))?
            .next()
            .ok_or_else(|| unavailable(leader, "the address resolves to nothing"))?;
        let mut client = RestClient::new(address).with_authorization(authorization);
        if let Some(tls) = &self.tls {
            let name = crate::tls::server_name(leader).map_err(|why| unavailable(leader, why))?;
            client = client.with_tls(tls.rest.clone(), name);
        }
        let (status, mut value) = client
            .send(&method, &path, body)
            .await
            .map_err(|error| unavailable(leader, error))?;
        if let Some(progress) = value.get_mut("progress").and_then(Value::as_object_mut) {
            // Null before /start (as mongosync): only an id is replaced.
            if progress.get("mongosyncID").is_some_and(Value::is_string) {
                progress.insert("mongosyncID".into(), Value::String(self.me.clone()));
            }
        }
        let status = axum::http::StatusCode::from_u16(status)
            .map_err(|_| unavailable(leader, format!("the leader answered HTTP {status}")))?;
        Ok((status, Json(value)).into_response())
    }

    /// A gRPC client to the leader at `leader`, reusing the channel while it leads.
    pub fn grpc(&self, leader: &str) -> Result<MigrationClient<Channel>, Status> {
        let mut cached = self.client.lock();
        if let Some((address, client)) = cached.as_ref() {
            if address == leader {
                return Ok(client.clone());
            }
        }
        let unusable = |error: &dyn std::fmt::Display| {
            Status::unavailable(format!(
                "the leader's address {leader} is unusable: {error}"
            ))
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{leader}"))
            .map_err(|error| unusable(&error))?;
        if let Some(tls) = &self.tls {
            endpoint = endpoint
                .tls_config(tls.grpc.clone())
                .map_err(|error| unusable(&error))?;
        }
        let channel = endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FORWARD_TIMEOUT)
            .connect_lazy();
        let client = MigrationClient::new(channel);
        *cached = Some((leader.to_string(), client.clone()));
        Ok(client)
    }

    /// A forwarded progress reply, answered as this coordinator.
    pub fn as_mine(&self, mut reply: ProgressReply) -> ProgressReply {
        reply.mongosync_id = self.me.clone();
        reply
    }
}

/// The REST answer when there is no leader to forward to.
pub fn no_leader(detail: &str) -> Response {
    ApiError::LeaderUnavailable(format!(
        "no coordinator leads this migration right now ({detail}); retry shortly"
    ))
    .into_response()
}

/// A gRPC status for a forward that failed before the leader answered; the leader's
/// own statuses are relayed unchanged.
pub fn forward_failed(leader: &str, status: Status) -> Status {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
            if status
                .metadata()
                .get(crate::grpc::ERROR_METADATA_KEY)
                .is_none() =>
        {
            crate::grpc::api_status(unavailable(leader, status.message()))
        }
        _ => status,
    }
}
