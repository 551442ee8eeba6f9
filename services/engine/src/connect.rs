//! Connecting to a cluster the same way in every process (coordinator, worker, tools).

use std::time::Duration;

use mongodb::options::ClientOptions;
use mongodb::Client;

use crate::error::EngineError;
use crate::redact::redact_uri;

/// How long the driver waits for a usable server before an operation fails (the
/// engine's retry helper then retries it).
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client for `uri`; errors never show the URI's password.
pub async fn client_for(uri: &str, app_name: &str) -> Result<Client, EngineError> {
    let mut options = ClientOptions::parse(uri).await.map_err(|error| {
        EngineError::Fatal(format!(
            "invalid connection string {}: {error}",
            redact_uri(uri)
        ))
    })?;
    options
        .server_selection_timeout
        .get_or_insert(SERVER_SELECTION_TIMEOUT);
    options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
    options.app_name.get_or_insert_with(|| app_name.to_string());
    Client::with_options(options)
        .map_err(|error| EngineError::Fatal(format!("cannot create a client: {error}")))
}
