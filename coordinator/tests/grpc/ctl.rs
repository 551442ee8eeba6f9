//! `c2c ctl`, the built binary, against a served coordinator.

use std::net::SocketAddr;
use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

use c2c_engine::progress::Phase;
use serde_json::Value;

use crate::common::{serve, serve_with};

/// Runs `c2c ctl --addr ADDRESS ARGS…` off the runtime's threads (the server runs on them).
async fn ctl(address: SocketAddr, args: &[&str]) -> Output {
    ctl_env(address, args, &[]).await
}

/// `ctl` with environment variables.
async fn ctl_env(address: SocketAddr, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_c2c"));
    command.env_remove("C2C_API_TOKEN");
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .arg("ctl")
        .arg("--addr")
        .arg(address.to_string())
        .args(args);
    let run = tokio::task::spawn_blocking(move || command.output().expect("run c2c"));
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("c2c ctl finishes")
        .expect("join")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_prints_a_summary_and_json() {
    let server = serve().await;
    let output = ctl(server.address, &["progress"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("state") && text.contains("IDLE"), "{text}");

    let output = ctl(server.address, &["progress", "--json"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("JSON");
    assert_eq!(json["state"], "IDLE");
    assert_eq!(json["canCommit"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_print_the_error_name_and_exit_non_zero() {
    let server = serve().await;
    let output = ctl(server.address, &["pause"]).await;
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("InvalidState") && text.contains("IDLE"),
        "{text}"
    );

    let output = ctl(server.address, &["start", "--include", ".x"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("invalid namespace"),
        "{}",
        stderr(&output)
    );

    // Nothing listens on a just-freed port.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap();
    drop(free);
    let output = ctl(address, &["progress"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot connect"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_pause_workers_and_watch_to_committed() {
    let server = serve().await;
    let output = ctl(
        server.address,
        &["start", "--include", "sales.orders", "--include", "hr"],
    )
    .await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("state RUNNING"),
        "{}",
        stdout(&output)
    );

    let output = ctl(server.address, &["workers"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("local"), "{}", stdout(&output));

    // Commit needs canCommit: play the engine into steady state, then finish the commit.
    let counters = server.driver.counters();
    counters.set_phase(Phase::SteadyState);
    counters.copy_done.store(true, Ordering::Relaxed);
    counters
        .estimated_total_bytes
        .store(1000, Ordering::Relaxed);
    counters.copied_bytes.store(1000, Ordering::Relaxed);
    for applied in [
        &counters.source_latest_secs,
        &counters.applied_latest_secs,
        &counters.applied_crud_secs,
    ] {
        applied.store(1_000, Ordering::Relaxed);
    }
    let output = ctl(server.address, &["commit"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    server.driver.complete_commit();

    // Not a terminal: each update is printed; COMMITTED ends the watch successfully.
    let output = ctl(server.address, &["watch", "--interval-ms", "100"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("COMMITTED") && text.contains("100.0%"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no escapes when not a terminal: {text:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_the_flag_or_the_environment() {
    use c2c_coordinator::auth::{ApiAuth, Secret};
    let server = serve_with(c2c_coordinator::ApiSecurity {
        auth: ApiAuth::new(Some(Secret::new("tok3n")), false),
        ..Default::default()
    })
    .await;
    let output = ctl(server.address, &["progress"]).await;
    assert!(!output.status.success());
    let text = stderr(&output);
    assert!(
        text.contains("Unauthenticated") && !text.contains("tok3n"),
        "{text}"
    );
    let output = ctl(server.address, &["progress", "--token", "wrong"]).await;
    assert!(!output.status.success());
    let output = ctl(server.address, &["progress", "--token", "tok3n"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let output = ctl_env(server.address, &["progress"], &[("C2C_API_TOKEN", "tok3n")]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("IDLE"));
}
