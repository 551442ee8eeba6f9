//! Bearer-token authentication of the API port (REST, gRPC and `/metrics` alike).
//!
//! With a token configured (`--apiToken`, `--apiTokenFile`, `C2C_API_TOKEN`, …) every
//! request must carry `Authorization: Bearer <token>`. A REST call without it gets
//! HTTP 401 in mongosync's error shape (`error: "Unauthorized"`) with
//! `WWW-Authenticate: Bearer`; a gRPC call gets `UNAUTHENTICATED`. Exempt, so probes
//! and scrapers need no secret: `grpc.health.v1.Health/*`, and `GET /metrics` unless
//! `--metricsAuth` is set. Without a token (the default) nothing is checked.
//!
//! Tokens are compared in constant time (for equal lengths: a length mismatch is
//! refused at once, which reveals only the length).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use subtle::ConstantTimeEq;

use crate::api::error::ApiError;

/// The path prefix of gRPC health checks, which never need the token.
const HEALTH_PREFIX: &str = "/grpc.health.v1.Health/";

/// A secret that never prints: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    pub fn new(value: impl Into<Arc<str>>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where the API token comes from, as configured (`apiToken` or `apiTokenFile`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TokenSource {
    #[default]
    None,
    Value(Secret),
    File(PathBuf),
}

/// Reads a token file: its content without surrounding whitespace (a trailing newline
/// from `echo` or a Kubernetes secret is not part of the token). An empty file is refused.
pub fn read_token_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(token))
}

/// The API's authentication settings.
#[derive(Debug, Clone, Default)]
pub struct ApiAuth {
    token: Option<Secret>,
    /// `GET /metrics` needs the token too.
    metrics_auth: bool,
}

impl ApiAuth {
    pub fn new(token: Option<Secret>, metrics_auth: bool) -> ApiAuth {
        ApiAuth {
            token,
            metrics_auth,
        }
    }

    /// Resolves the configured source (reading the token file).
    pub fn from_source(source: &TokenSource, metrics_auth: bool) -> Result<ApiAuth, String> {
        let token = match source {
            TokenSource::None => None,
            TokenSource::Value(token) => Some(token.clone()),
            TokenSource::File(path) => Some(read_token_file(path)?),
        };
        Ok(ApiAuth::new(token, metrics_auth))
    }

    pub fn token(&self) -> Option<&Secret> {
        self.token.as_ref()
    }

    pub fn is_enabled(&self) -> bool {
        self.token.is_some()
    }

    /// `app` behind the token check (unchanged when no token is configured).
    pub fn protect(&self, app: Router) -> Router {
        if self.token.is_none() {
            return app;
        }
        app.layer(axum::middleware::from_fn_with_state(
            Arc::new(self.clone()),
            check,
        ))
    }

    fn exempt(&self, method: &Method, path: &str) -> bool {
        path.starts_with(HEALTH_PREFIX)
            || (!self.metrics_auth && method == Method::GET && path == "/metrics")
    }

    fn accepts(&self, authorization: Option<&HeaderValue>) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let Some(presented) = authorization.and_then(bearer_token) else {
            return false;
        };
        presented.ct_eq(expected.expose().as_bytes()).into()
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is
/// case-insensitive, as RFC 7235 says).
fn bearer_token(value: &HeaderValue) -> Option<&[u8]> {
    let bytes = value.as_bytes();
    let scheme = bytes.get(..7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(bytes[7..].trim_ascii())
}

async fn check(State(auth): State<Arc<ApiAuth>>, request: Request, next: Next) -> Response {
    if auth.exempt(request.method(), request.uri().path())
        || auth.accepts(request.headers().get(AUTHORIZATION))
    {
        return next.run(request).await;
    }
    let missing = !request.headers().contains_key(AUTHORIZATION);
    let reason = if missing {
        "this c2c requires an API token: send the header `Authorization: Bearer <token>`"
    } else {
        "the API token is wrong or malformed (expected `Authorization: Bearer <token>`)"
    };
    tracing::info!(method = %request.method(), path = request.uri().path(), missing, "request refused: not authenticated");
    let grpc = request
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if grpc {
        return tonic::Status::unauthenticated(reason).into_http();
    }
    let mut response = ApiError::Unauthorized(reason.to_string()).into_response();
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(metrics_auth: bool) -> ApiAuth {
        ApiAuth::new(Some(Secret::new("s3cret")), metrics_auth)
    }

    #[test]
    fn only_the_exact_bearer_token_is_accepted() {
        let auth = auth(false);
        let header = |text: &'static str| HeaderValue::from_static(text);
        assert!(auth.accepts(Some(&header("Bearer s3cret"))));
        assert!(auth.accepts(Some(&header("bearer s3cret"))));
        assert!(!auth.accepts(Some(&header("Bearer s3cre"))));
        assert!(!auth.accepts(Some(&header("Bearer s3cretx"))));
        assert!(!auth.accepts(Some(&header("Basic s3cret"))));
        assert!(!auth.accepts(Some(&header("s3cret"))));
        assert!(!auth.accepts(None));
        assert!(ApiAuth::default().accepts(None));
    }

    #[test]
    fn health_and_metrics_are_exempt_unless_metrics_auth() {
        assert!(auth(false).exempt(&Method::POST, "/grpc.health.v1.Health/Check"));
        assert!(auth(false).exempt(&Method::GET, "/metrics"));
        assert!(!auth(true).exempt(&Method::GET, "/metrics"));
        assert!(!auth(false).exempt(&Method::GET, "/api/v1/progress"));
        assert!(!auth(false).exempt(&Method::POST, "/c2c.v1.Migration/Progress"));
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("s3cret");
        assert_eq!(format!("{secret:?} {secret}"), "<redacted> <redacted>");
        let source = TokenSource::Value(secret);
        assert!(!format!("{source:?}").contains("s3cret"));
    }

    #[test]
    fn token_files_are_trimmed_and_must_not_be_empty() {
        let dir = std::env::temp_dir().join(format!("c2c-auth-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "abc\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap().expose(), "abc");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).is_err());
        assert!(read_token_file(&dir.join("absent")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
