//! Connecting to etcd, and the timeout wrapper every unary etcd call goes through.

use std::future::Future;

use etcd_client::{Client, ConnectOptions};
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
