//! The scaled-out processes, `c2c coordinator` and `c2c worker`: the binary's edge,
//! where etcd, the listener, signals and the library's pieces meet.

pub mod coordinator;
pub mod worker;

use std::net::SocketAddr;

use anyhow::{bail, Context};
use tokio_util::sync::CancellationToken;

/// The address other processes reach this one at: `--advertise`, or the bound address
/// when it is a specific one.
pub fn advertise(flag: Option<String>, bound: SocketAddr) -> anyhow::Result<String> {
    if let Some(address) = flag {
        let (host, port) = address
            .rsplit_once(':')
            .with_context(|| format!("--advertise {address:?} is not HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!("--advertise {address:?} is not HOST:PORT");
        }
        return Ok(address);
    }
    if bound.ip().is_unspecified() {
        bail!(
            "--bind {} listens on every interface, so other processes cannot tell which address reaches this one: pass --advertise HOST:PORT",
            bound.ip()
        );
    }
    Ok(bound.to_string())
}

/// Connects to etcd, waiting for it as long as it takes (it may restart, or start after
/// this process): every failed attempt is logged. `None` when stopped meanwhile.
pub async fn connect_etcd(
    endpoints: &[String],
    security: &c2c_membership::EtcdSecurity,
    stopping: &CancellationToken,
) -> anyhow::Result<Option<c2c_membership::EtcdClient>> {
    const RETRY: std::time::Duration = std::time::Duration::from_secs(1);
    loop {
        match c2c_membership::connect_with(endpoints, security).await {
            Ok(client) => return Ok(Some(client)),
            // A refused user or password stays refused: stop with the reason.
            Err(error) if !error.is_retryable() => {
                return Err(anyhow::anyhow!(error)).context(
                    "etcd refused this process (--etcd, --etcdUser, --etcdPasswordFile/C2C_ETCD_PASSWORD, --etcdCAFile)",
                )
            }
            Err(error) => {
                tracing::warn!(error = %c2c_coordinator::log_format::error_chain(&error), endpoints = ?endpoints, "etcd is unreachable (--etcd); retrying")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stopping.cancelled() => return Ok(None),
        }
    }
}

/// This host's name, for default ids.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A token cancelled when `shutdown` completes, so several parts can wait on it.
pub fn shutdown_token(
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        cancel.cancel();
    });
    token
}

/// Crash-only restart: the process replaces itself with a fresh copy of the same
/// command (same pid, clean state). Used when a coordinator loses leadership, so no
/// leader task can survive into the follower role.
pub fn restart_process(reason: &str) -> ! {
    use std::os::unix::process::CommandExt;
    tracing::error!(reason, "restarting this process");
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .exec(),
        Err(error) => error,
    };
    eprintln!("c2c: {reason}; cannot restart ({error}); exiting");
    std::process::exit(3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_needs_a_reachable_address() {
        let any: SocketAddr = "0.0.0.0:27182".parse().unwrap();
        assert!(advertise(None, any).is_err());
        assert_eq!(
            advertise(None, "10.0.0.5:27182".parse().unwrap()).unwrap(),
            "10.0.0.5:27182"
        );
        assert_eq!(
            advertise(Some("c2c-0.c2c:27182".into()), any).unwrap(),
            "c2c-0.c2c:27182"
        );
        assert!(advertise(Some("nohost".into()), any).is_err());
        assert!(advertise(Some("host:notaport".into()), any).is_err());
    }
}
