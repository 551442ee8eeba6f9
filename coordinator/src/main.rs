//! The `c2c` binary: parses the command line and runs the chosen mode.

use std::process::ExitCode;

use anyhow::Context;
use c2c_coordinator::cli::{Cli, Command, RunArgs};

mod demo;
mod process;
use c2c_coordinator::config::ResolvedConfig;
use c2c_coordinator::{bind, engine_driver, logging, serve, telemetry};
use clap::Parser;
use tracing::{error, info};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Verify(args) => {
            return match c2c_coordinator::verify_cmd::run(args).await {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(failure) => {
                    eprintln!("c2c verify: {failure}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Run(args) => run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Ctl(args) => c2c_coordinator::ctl::run(args)
            .await
            .map_err(anyhow::Error::from),
        Command::Coordinator(args) => process::coordinator::run(args, shutdown_signal()).await,
        Command::Worker(args) => process::worker::run(args, shutdown_signal()).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Logged (for the log file) and printed (the logger may not be up yet).
            error!(fatal = true, error = format!("{failure:#}"), "c2c stopped");
            eprintln!("c2c: {failure:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let resolved = ResolvedConfig::resolve(&args)?;
    // Kept until the process ends: it owns the SIGUSR1 log-rotation task and the traces.
    let _logging = logging::init(
        resolved.config.log_path.as_deref(),
        resolved.config.verbosity,
        &resolved.config.id,
        telemetry::Role::Run,
    )?;
    resolved.log();
    let config = resolved.config;
    let listener = bind(&config).await.with_context(|| {
        format!(
            "cannot listen on {}:{} (--bind/--port)",
            config.bind, config.port
        )
    })?;
    let _spill = engine_driver::SpillDirCleanup::new(engine_driver::spill_dir_for(&config.id));
    let driver = engine_driver::connect(&config)
        .await
        .context("cannot connect to the clusters")?;
    serve(&config, driver, listener, shutdown_signal())
        .await
        .context("REST API server failed")?;
    info!("c2c stopped");
    Ok(())
}

/// Ctrl-C or SIGTERM: stop serving; the engine's checkpoints let `/start` continue later.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => info!("Ctrl-C received, stopping"),
        () = terminate => info!("SIGTERM received, stopping"),
    }
}
