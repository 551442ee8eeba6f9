//! The scaled-out processes' own security, read once at start so a bad path or PEM
//! stops the process naming its flag:
//! - mutual TLS between coordinators and workers (`--clusterCAFile`,
//!   `--clusterCertFile`, `--clusterKeyFile`): a worker serves only callers that prove
//!   a certificate of the cluster CA, and the leader admits a registered worker into
//!   the plan only once it has reached it over TLS with the worker's certificate
//!   verified — a process without the right certificate can neither command a worker
//!   nor join as one;
//! - how a process reaches etcd (`--etcdCAFile`, `--etcdCertFile`, `--etcdKeyFile`,
//!   `--etcdUser` with `--etcdPasswordFile` or `C2C_ETCD_PASSWORD`).

use std::path::Path;
use std::sync::Arc;

use c2c_membership::{EtcdSecurity, EtcdTls, EtcdUser};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::cli::EtcdArgs;

/// The environment variable holding the etcd user's password.
pub const ETCD_PASSWORD_ENV: &str = "C2C_ETCD_PASSWORD";

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("--{flag}: {reason}")]
    File { flag: &'static str, reason: String },
    #[error("--etcdUser {user} needs a password: pass --etcdPasswordFile FILE or set {ETCD_PASSWORD_ENV}")]
    MissingPassword { user: String },
    #[error("--etcdUser: the name is empty")]
    EmptyUser,
    #[error("--etcd {endpoint}: {reason}")]
    Scheme {
        endpoint: String,
        reason: &'static str,
    },
}

/// An endpoint's scheme must match whether TLS is on, or the connection fails later
/// with a transport error that does not say why.
fn check_schemes(endpoints: &[String], tls: bool) -> Result<(), SecurityError> {
    for endpoint in endpoints {
        let reason = if tls && endpoint.starts_with("http://") {
            "is plain http but --etcdCAFile turns TLS on: use https://"
        } else if !tls && endpoint.starts_with("https://") {
            "is https: give the CA that signed etcd's certificate with --etcdCAFile"
        } else {
            continue;
        };
        return Err(SecurityError::Scheme {
            endpoint: endpoint.clone(),
            reason,
        });
    }
    Ok(())
}

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|error| SecurityError::File {
        flag,
        reason: format!("cannot read {}: {error}", path.display()),
    })
}

/// Mutual TLS between the migration's processes.
#[derive(Clone)]
pub struct ClusterTls {
    /// A worker's server side: clients must present a certificate of the cluster CA.
    pub server: Arc<rustls::ServerConfig>,
    /// The leader's side towards workers: trusts only the cluster CA, presents this
    /// process's certificate.
    pub client: ClientTlsConfig,
}

impl std::fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterTls")
    }
}

impl ClusterTls {
    /// `None` when `--clusterCAFile` is not given (clap makes the three flags go together).
    pub fn load(args: &EtcdArgs) -> Result<Option<ClusterTls>, SecurityError> {
        let (Some(ca), Some(cert), Some(key)) = (
            &args.cluster_ca_file,
            &args.cluster_cert_file,
            &args.cluster_key_file,
        ) else {
            return Ok(None);
        };
        // Read first, so a missing file is named by its own flag.
        let ca_pem = read("clusterCAFile", ca)?;
        let cert_pem = read("clusterCertFile", cert)?;
        let key_pem = read("clusterKeyFile", key)?;
        // Parsing the server side proves all three files (CA, chain, key) are usable.
        let server = crate::tls::server_config(cert, key, Some(ca)).map_err(|reason| {
            SecurityError::File {
                flag: "clusterCAFile/--clusterCertFile/--clusterKeyFile",
                reason,
            }
        })?;
        let client = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(ca_pem))
            .identity(Identity::from_pem(cert_pem, key_pem));
        Ok(Some(ClusterTls { server, client }))
    }
}

/// How this process authenticates to etcd; `env` reads `C2C_ETCD_PASSWORD` (a
/// parameter so tests do not depend on the process environment).
pub fn etcd_security(
    args: &EtcdArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<EtcdSecurity, SecurityError> {
    let tls = match &args.etcd_ca_file {
        None => None,
        Some(ca) => {
            let ca_pem = read("etcdCAFile", ca)?;
            crate::tls::read_roots(ca).map_err(|reason| SecurityError::File {
                flag: "etcdCAFile",
                reason,
            })?;
            let identity = match (&args.etcd_cert_file, &args.etcd_key_file) {
                (Some(cert), Some(key)) => {
                    Some((read("etcdCertFile", cert)?, read("etcdKeyFile", key)?))
                }
                _ => None,
            };
            Some(EtcdTls { ca_pem, identity })
        }
    };
    let user = match &args.etcd_user {
        None => None,
        Some(name) if name.trim().is_empty() => return Err(SecurityError::EmptyUser),
        Some(name) => {
            let password = match &args.etcd_password_file {
                Some(path) => String::from_utf8_lossy(&read("etcdPasswordFile", path)?)
                    .trim()
                    .to_string(),
                None => env(ETCD_PASSWORD_ENV).unwrap_or_default(),
            };
            if password.is_empty() {
                return Err(SecurityError::MissingPassword { user: name.clone() });
            }
            Some(EtcdUser {
                name: name.clone(),
                password,
            })
        }
    };
    check_schemes(&args.etcd, tls.is_some())?;
    Ok(EtcdSecurity { tls, user })
}

/// One line for the start-up log: what is on, never a secret.
pub fn describe(etcd: &EtcdSecurity, cluster: Option<&ClusterTls>) -> String {
    format!(
        "etcd TLS: {}, etcd user: {}, mutual TLS with {}: {}",
        match &etcd.tls {
            None => "off",
            Some(tls) if tls.identity.is_some() => "on (client certificate)",
            Some(_) => "on",
        },
        etcd.user.as_ref().map_or("none", |user| user.name.as_str()),
        "coordinators/workers",
        if cluster.is_some() { "on" } else { "off" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        etcd: EtcdArgs,
    }

    fn parse(args: &[&str]) -> Result<EtcdArgs, clap::Error> {
        Wrapper::try_parse_from(
            ["c2c", "--etcd", "http://127.0.0.1:2379"]
                .iter()
                .chain(args),
        )
        .map(|w| w.etcd)
    }

    #[test]
    fn flags_that_need_each_other_are_refused_alone() {
        assert!(parse(&["--clusterCAFile", "ca.pem"]).is_err());
        assert!(parse(&["--clusterCertFile", "c.pem", "--clusterKeyFile", "k.pem"]).is_err());
        assert!(parse(&["--etcdCertFile", "c.pem", "--etcdKeyFile", "k.pem"]).is_err());
        assert!(parse(&["--etcdPasswordFile", "p"]).is_err());
        assert!(parse(&["--etcdUser", "c2c"]).is_ok());
    }

    #[test]
    fn an_endpoint_scheme_must_match_tls() {
        assert!(check_schemes(&["http://a:2379".into(), "b:2379".into()], false).is_ok());
        assert!(check_schemes(&["https://a:2379".into(), "b:2379".into()], true).is_ok());
        let error = check_schemes(&["https://a:2379".into()], false).unwrap_err();
        assert!(error.to_string().contains("--etcdCAFile"), "{error}");
        let error = check_schemes(&["b:2379".into(), "http://a:2379".into()], true).unwrap_err();
        assert!(error.to_string().contains("http://a:2379"), "{error}");
    }

    #[test]
    fn an_etcd_user_needs_a_password() {
        let args = parse(&["--etcdUser", "c2c"]).unwrap();
        let error = etcd_security(&args, |_| None).unwrap_err();
        assert!(error.to_string().contains(ETCD_PASSWORD_ENV), "{error}");
        let security = etcd_security(&args, |name| {
            (name == ETCD_PASSWORD_ENV).then(|| "s3cret".to_string())
        })
        .unwrap();
        assert_eq!(security.user.as_ref().unwrap().password, "s3cret");
        // Neither the password nor a hint of it in what gets logged.
        assert!(!format!("{security:?}").contains("s3cret"));
        assert!(!describe(&security, None).contains("s3cret"));
    }

    #[test]
    fn missing_files_name_their_flag() {
        let args = parse(&[
            "--clusterCAFile",
            "/nonexistent/ca.pem",
            "--clusterCertFile",
            "/nonexistent/c.pem",
            "--clusterKeyFile",
            "/nonexistent/k.pem",
        ])
        .unwrap();
        let error = ClusterTls::load(&args).unwrap_err().to_string();
        assert!(error.contains("clusterCAFile"), "{error}");
        let args = parse(&["--etcdCAFile", "/nonexistent/ca.pem"]).unwrap();
        let error = etcd_security(&args, |_| None).unwrap_err().to_string();
        assert!(error.contains("--etcdCAFile"), "{error}");
    }
}
