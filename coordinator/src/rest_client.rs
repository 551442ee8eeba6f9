//! A minimal HTTP/1.1 JSON client for c2c's own REST API (what `curl` does in the
//! docs): used by `c2c demo` and the end-to-end tests, so they drive c2c exactly as a
//! user would, over a socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RestError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("i/o with {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("request to {addr} timed out")]
    Timeout { addr: SocketAddr },
    #[error("malformed response from {addr}: {reason}")]
    Malformed { addr: SocketAddr, reason: String },
}

#[derive(Clone)]
pub struct RestClient {
    addr: SocketAddr,
    /// The `Authorization` header sent with every request (a bearer token).
    authorization: Option<String>,
    /// HTTPS: the client configuration and the name the server's certificate must hold.
    tls: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
}

impl std::fmt::Debug for RestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestClient")
            .field("addr", &self.addr)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl RestClient {
    pub fn new(addr: SocketAddr) -> RestClient {
        RestClient {
            addr,
            authorization: None,
            tls: None,
        }
    }

    /// Speaks HTTPS, checking the server's certificate for `server_name`.
    pub fn with_tls(
        mut self,
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
    ) -> RestClient {
        self.tls = Some((config, server_name));
        self
    }

    /// Sends `Authorization: Bearer <token>` with every request.
    pub fn with_token(self, token: &str) -> RestClient {
        self.with_authorization(Some(format!("Bearer {token}")))
    }

    /// Sends this `Authorization` header value (as received, when forwarding).
    pub fn with_authorization(mut self, value: Option<String>) -> RestClient {
        self.authorization = value;
        self
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value), RestError> {
        self.request("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), RestError> {
        self.request("POST", path, Some(body.to_string())).await
    }

    /// Any method and path (with its query), the body sent as is: how a follower
    /// coordinator forwards an API call to the leader.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), RestError> {
        self.request(method, path, body).await
    }

    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), RestError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, path, body))
            .await
            .map_err(|_| RestError::Timeout { addr: self.addr })?
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), RestError> {
        let addr = self.addr;
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| RestError::Connect { addr, source })?;
        match &self.tls {
            None => self.exchange_on(stream, method, path, body).await,
            Some((config, name)) => {
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), stream)
                    .await
                    .map_err(|source| RestError::Tls { addr, source })?;
                self.exchange_on(stream, method, path, body).await
            }
        }
    }

    async fn exchange_on(
        &self,
        mut stream: impl AsyncRead + AsyncWrite + Unpin,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, Value), RestError> {
        let addr = self.addr;
        let body = body.unwrap_or_default();
        // A header value with a line break would inject headers: never send one.
        let authorization = self
            .authorization
            .as_deref()
            .filter(|value| !value.contains(['\r', '\n']))
            .map_or_else(String::new, |value| format!("Authorization: {value}\r\n"));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|source| RestError::Io { addr, source })?;
        let mut response = Vec::new();
        match stream.read_to_end(&mut response).await {
            Ok(_) => {}
            // A TLS peer that closes without close_notify after a complete response
            // (`Connection: close`) is not an error for us.
            Err(error)
                if error.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
            Err(source) => return Err(RestError::Io { addr, source }),
        }
        parse_response(addr, &response)
    }
}

fn parse_response(addr: SocketAddr, response: &[u8]) -> Result<(u16, Value), RestError> {
    let malformed = |reason: &str| RestError::Malformed {
        addr,
        reason: reason.to_string(),
    };
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| malformed("no header terminator"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| malformed("no status code"))?;
    let chunked = head.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = if chunked {
        dechunk(body).ok_or_else(|| malformed("bad chunked body"))?
    } else {
        body.to_string()
    };
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).map_err(|e| malformed(&e.to_string()))?
    };
    Ok((status, value))
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size_line, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 16\r\n\r\n{\"success\":true}";
        assert_eq!(
            parse_response(addr, plain).unwrap(),
            (200, serde_json::json!({"success": true}))
        );
        let chunked = b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(addr, chunked).unwrap(),
            (400, serde_json::json!({"a": 1}))
        );
    }
}
