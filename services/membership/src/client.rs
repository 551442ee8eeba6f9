//! Connecting to etcd, and the timeout wrapper every unary etcd call goes through.

use std::future::Future;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use tokio_util::sync::CancellationToken;

use crate::retry::retry;
use crate::timing::{
    CONNECT_ATTEMPTS, CONNECT_TIMEOUT, HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT,
    REQUEST_TIMEOUT,
};
use crate::MembershipError;

/// Connects to etcd and proves the connection with a status call, retrying a few times.
///
/// The client carries a connect timeout and HTTP/2 keep-alive but deliberately *no*
/// channel-wide request timeout: a campaign blocks for as long as another candidate
/// leads and watches live forever, and a channel timeout would cut both. Unary calls made
/// by this crate are bounded one by one instead ([`REQUEST_TIMEOUT`]); code that uses the
/// returned client directly should do the same.
///
/// `require_leader` makes etcd fail requests (and cancel watches) on a member that has
/// lost its raft leader, instead of serving stale reads from a partitioned member.
pub async fn connect(endpoints: &[String]) -> Result<Client, MembershipError> {
    connect_with(endpoints, &EtcdSecurity::default()).await
}

/// How a process authenticates to etcd: TLS (the CA that signed etcd's server
/// certificates, and optionally a client certificate for `--client-cert-auth`) and
/// etcd's own user/password authentication. `Debug` never shows the password.
#[derive(Clone, Default)]
pub struct EtcdSecurity {
    pub tls: Option<EtcdTls>,
    pub user: Option<EtcdUser>,
}

/// PEM bytes, read by the caller (so a missing file is reported at start, naming its flag).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    pub ca_pem: Vec<u8>,
    /// A client certificate chain and its private key.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Clone)]
pub struct EtcdUser {
    pub name: String,
    pub password: String,
}

impl std::fmt::Debug for EtcdSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSecurity")
            .field("tls", &self.tls.as_ref().map(|tls| tls.identity.is_some()))
            .field("user", &self.user.as_ref().map(|user| user.name.as_str()))
            .finish()
    }
}

impl EtcdSecurity {
    fn apply(&self, mut options: ConnectOptions) -> ConnectOptions {
        if let Some(tls) = &self.tls {
            let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(&tls.ca_pem));
            if let Some((cert, key)) = &tls.identity {
                config = config.identity(Identity::from_pem(cert, key));
            }
            options = options.with_tls(config);
        }
        if let Some(user) = &self.user {
            // etcd's simple tokens expire (5 minutes by default): fetch a new one instead
            // of failing every call after that.
            options = options
                .with_user(user.name.clone(), user.password.clone())
                .with_auto_token_refresh(true);
        }
        options
    }
}

/// [`connect`] with TLS and/or user authentication. With TLS, endpoints without a
/// scheme are reached over `https://`; `http://` endpoints are refused by the client.
pub async fn connect_with(
    endpoints: &[String],
    security: &EtcdSecurity,
) -> Result<Client, MembershipError> {
    if endpoints.is_empty() {
        return Err(MembershipError::Etcd {
            op: "connect",
            source: etcd_client::Error::InvalidArgs("no etcd endpoints given".to_owned()),
        });
    }
    let options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_keep_alive(HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT)
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    let options = security.apply(options);
    let never = CancellationToken::new();
    retry(
        "etcd connect",
        CONNECT_ATTEMPTS,
        |error| !error.is_retryable(),
        &never,
        || {
            let options = options.clone();
            async move {
                let mut client = Client::connect(endpoints, Some(options))
                    .await
                    .map_err(MembershipError::etcd("connect"))?;
                // The channel connects lazily; a status call is the cheapest proof that
                // an endpoint answers.
                call("status", client.status()).await?;
                Ok(client)
            }
        },
    )
    .await
}

/// Bounds one unary etcd call by [`REQUEST_TIMEOUT`] and names it in the error.
pub(crate) async fn call<T>(
    op: &'static str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, MembershipError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(MembershipError::etcd(op)),
        Err(_) => Err(MembershipError::Timeout {
            op,
            after: REQUEST_TIMEOUT,
        }),
    }
}

/// Revokes a lease, logging instead of failing: used on paths where the lease expires on
/// its own anyway and revoking only makes that faster.
pub(crate) async fn revoke_quietly(client: &Client, lease_id: i64) {
    let mut client = client.clone();
    match call("lease revoke", client.lease_revoke(lease_id)).await {
        Ok(_) => tracing::debug!(lease_id = format_args!("{lease_id:x}"), "lease revoked"),
        Err(error) => tracing::debug!(
            lease_id = format_args!("{lease_id:x}"),
            error = %error,
            "lease revoke failed; it expires on its own"
        ),
    }
}

/// The error for a watch stream that ended or was cancelled by the server.
pub(crate) fn watch_error(reason: &str) -> MembershipError {
    MembershipError::Etcd {
        op: "watch",
        source: etcd_client::Error::WatchError(reason.to_owned()),
    }
}
