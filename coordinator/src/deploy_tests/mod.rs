//! The deploy files start `c2c coordinator` and `c2c worker`: every command line they
//! hold must parse with this CLI and pass the checks the binary applies after parsing
//! (those that are pure functions of the flags and the environment).
//!
//! Command lines come from compose services (merge keys applied, `${VAR:-default}`
//! taken as unset), Kubernetes pod templates (`command` + `args`, `$(VAR)` from the
//! container's `env`, ConfigMaps and Secrets of the same directory) and systemd units
//! (`ExecStart=` with `%i` and the variables of `Environment=` and the env example).
//! A variable only known where the file is deployed gets a placeholder its flag accepts.
//!
//! Not checked: `c2c-testbed` command lines (its `Args` is private to its binary, out of
//! this crate's reach; they are counted only), the binary's own checks in
//! `process/` (`--advertise`, `--workers`, `--tlsCAFile` with `--tlsCertFile`), and
//! anything that reads a file (`--config`, TLS files, `--etcdPasswordFile`).

use std::collections::BTreeMap;
use std::ffi::OsString;

use c2c_engine::options::LoadLevel;
use c2c_membership::{MigrationId, WorkerId};
use clap::Parser;

use super::{Cli, Command, EtcdArgs, RunArgs, WorkerArgs};
use crate::cluster_security::etcd_security;
use crate::config::{LogConfig, ResolvedConfig};
use crate::config_layers::{self as layers, Layers, KEYS};

mod compose;
mod kubernetes;
mod systemd;
mod words;

const COMPOSE: (&str, &str) = (
    "deploy/docker-compose.yml",
    include_str!("../../../deploy/docker-compose.yml"),
);

const K8S: [(&str, &str); 5] = [
    (
        "deploy/k8s/coordinator.yaml",
        include_str!("../../../deploy/k8s/coordinator.yaml"),
    ),
    (
        "deploy/k8s/worker.yaml",
        include_str!("../../../deploy/k8s/worker.yaml"),
    ),
    (
        "deploy/k8s/etcd.yaml",
        include_str!("../../../deploy/k8s/etcd.yaml"),
    ),
    (
        "deploy/k8s/kustomization.yaml",
        include_str!("../../../deploy/k8s/kustomization.yaml"),
    ),
    (
        "deploy/k8s/secret.example.yaml",
        include_str!("../../../deploy/k8s/secret.example.yaml"),
    ),
];

/// A template unit, the instance name `%i` stands for, and its env file's example.
struct SystemdUnit<'a> {
    file: &'a str,
    text: &'a str,
    instance: &'a str,
    env_example: &'a str,
}

const SYSTEMD: [SystemdUnit<'static>; 2] = [
    SystemdUnit {
        file: "deploy/systemd/c2c-coordinator@.service",
        text: include_str!("../../../deploy/systemd/c2c-coordinator@.service"),
        instance: "coord-a",
        env_example: include_str!("../../../deploy/systemd/coordinator.env.example"),
    },
    SystemdUnit {
        file: "deploy/systemd/c2c-worker@.service",
        text: include_str!("../../../deploy/systemd/c2c-worker@.service"),
        instance: "worker-a",
        env_example: include_str!("../../../deploy/systemd/worker.env.example"),
    },
];

/// One process a deploy file starts.
struct Launch {
    /// File and service/container, for messages.
    origin: String,
    /// The arguments after the program name.
    args: Vec<String>,
    /// The process's environment as far as the file sets it (`C2C_*` keys are config).
    env: BTreeMap<String, String>,
}

/// What one file starts: c2c processes (checked), c2c-testbed ones (counted), and what
/// could not be read.
#[derive(Default)]
struct Found {
    c2c: Vec<Launch>,
    testbed: Vec<Launch>,
    problems: Vec<String>,
}

impl Found {
    fn add(&mut self, program: &str, launch: Launch) {
        match program.rsplit('/').next() {
            Some("c2c") => self.c2c.push(launch),
            Some("c2c-testbed") => self.testbed.push(launch),
            _ => {}
        }
    }

    /// Every problem: unreadable parts, and c2c command lines the CLI refuses.
    fn all_problems(&self) -> Vec<String> {
        let refused = self.c2c.iter().filter_map(|launch| check(launch).err());
        self.problems.iter().cloned().chain(refused).collect()
    }
}

/// Parses `c2c <args>` as the binary does, then applies the pure post-parse checks.
fn check(launch: &Launch) -> Result<(), String> {
    let argv = std::iter::once("c2c").chain(launch.args.iter().map(String::as_str));
    let shown = format!("{}: `c2c {}`", launch.origin, launch.args.join(" "));
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(error) => {
            let rendered = error.to_string();
            let reason = rendered.split("\n\nUsage:").next().unwrap_or_default();
            return Err(format!("{shown}: {}", reason.trim()));
        }
    };
    let env = |name: &str| launch.env.get(name).cloned();
    after_parsing(&cli.command, &env).map_err(|reason| format!("{shown}: {reason}"))
}

fn after_parsing(command: &Command, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    match command {
        Command::Run(run) => run_config(run, env),
        Command::Coordinator(args) => {
            run_config(&args.run, env)?;
            etcd_settings(&args.etcd, env)
        }
        Command::Worker(args) => worker_settings(args, env),
        Command::Demo(_) | Command::Ctl(_) | Command::Verify(_) => Ok(()),
    }
}

/// `RunConfig`'s layers without the `--config` file (it lives on the deployed host).
fn run_config(run: &RunArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    if run.config.is_some() {
        return Ok(());
    }
    let layers = Layers::default()
        .with_env(&KEYS, |name| env(name).map(OsString::from))
        .with_run_flags(run);
    ResolvedConfig::from_layers(&layers)
        .map(drop)
        .map_err(|error| error.to_string())
}

/// `LogConfig::for_worker` with `env` for the process environment, and the worker's ids.
fn worker_settings(args: &WorkerArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let log_layers = Layers::default()
        .with_env(&[layers::LOG_PATH, layers::VERBOSITY], |name| {
            env(name).map(OsString::from)
        })
        .with_flag(layers::LOG_PATH, args.log_path.clone())
        .with_flag(layers::VERBOSITY, args.verbosity.clone());
    LogConfig::from_layers(&log_layers).map_err(|error| error.to_string())?;
    if let Some(level) = args
        .load_level
        .filter(|level| LoadLevel::new(*level).is_none())
    {
        return Err(format!("--loadLevel {level} is not between 1 and 4"));
    }
    WorkerId::new(&args.id).map_err(|error| format!("--id: {error}"))?;
    etcd_settings(&args.etcd, env)
}

fn etcd_settings(args: &EtcdArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    MigrationId::new(&args.migration_id).map_err(|error| format!("--migration-id: {error}"))?;
    let reads_files = args.etcd_ca_file.is_some() || args.etcd_password_file.is_some();
    if reads_files {
        return Ok(());
    }
    etcd_security(args, env)
        .map(drop)
        .map_err(|error| error.to_string())
}

#[test]
fn every_deploy_file_starts_c2c_with_flags_the_cli_accepts() {
    let (compose_file, compose_text) = COMPOSE;
    let mut found = vec![(compose_file, compose::compose(compose_file, compose_text))];
    for (file, found_in_file) in kubernetes::kubernetes(&K8S) {
        found.push((file, found_in_file));
    }
    for unit in &SYSTEMD {
        found.push((unit.file, systemd::systemd(unit)));
    }
    let counts: Vec<(&str, usize, usize)> = found
        .iter()
        .map(|(file, lines)| (*file, lines.c2c.len(), lines.testbed.len()))
        .collect();
    // (file, c2c command lines, c2c-testbed command lines): none may go unnoticed.
    let expected = vec![
        ("deploy/docker-compose.yml", 5, 2),
        ("deploy/k8s/coordinator.yaml", 1, 0),
        ("deploy/k8s/worker.yaml", 1, 0),
        ("deploy/k8s/etcd.yaml", 0, 0),
        ("deploy/k8s/kustomization.yaml", 0, 0),
        ("deploy/k8s/secret.example.yaml", 0, 0),
        ("deploy/systemd/c2c-coordinator@.service", 1, 0),
        ("deploy/systemd/c2c-worker@.service", 1, 0),
    ];
    assert_eq!(counts, expected, "command lines found per deploy file");
    let problems: Vec<String> = found
        .iter()
        .flat_map(|(_, lines)| lines.all_problems())
        .collect();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_checked_files_are_every_deploy_file() {
    let listed = |dir: &str, suffix: &str| -> Vec<String> {
        let path = format!("{}/../deploy/{dir}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(&path)
            .unwrap_or_else(|error| panic!("{path}: {error}"))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            // secret.yaml: the operator's git-ignored copy of secret.example.yaml.
            .filter(|name| name.ends_with(suffix) && name != "secret.yaml")
            .map(|name| format!("deploy/{dir}/{name}"))
            .collect();
        names.sort();
        names
    };
    let mut k8s: Vec<String> = K8S.iter().map(|(file, _)| file.to_string()).collect();
    k8s.sort();
    assert_eq!(listed("k8s", ".yaml"), k8s, "add new files to K8S");
    let mut units: Vec<String> = SYSTEMD.iter().map(|unit| unit.file.to_string()).collect();
    units.sort();
    assert_eq!(
        listed("systemd", ".service"),
        units,
        "add new units to SYSTEMD"
    );
}

/// The problems the checker reports for `text` with `from` replaced by `to`.
fn problems_after_edit(found: impl Fn(&str) -> Found, text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the file any more");
    found(&text.replacen(from, to, 1)).all_problems().join("\n")
}

#[test]
fn a_misspelled_flag_is_reported_with_its_file_and_service() {
    let (compose_file, compose_text) = COMPOSE;
    let compose = |text: &str| compose::compose(compose_file, text);
    let reported = problems_after_edit(compose, compose_text, "--etcd=", "--etdc=");
    assert!(
        reported.contains("deploy/docker-compose.yml service coordinator-1")
            && reported.contains("--etdc"),
        "{reported}"
    );

    let (worker_file, worker_text) = K8S[1];
    let kubernetes = |text: &str| {
        let mut files = K8S;
        files[1] = (worker_file, text);
        let mut found = Found::default();
        for (_, found_in_file) in kubernetes::kubernetes(&files) {
            found.c2c.extend(found_in_file.c2c);
            found.problems.extend(found_in_file.problems);
        }
        found
    };
    let reported =
        problems_after_edit(kubernetes, worker_text, "--migration-id=", "--migrationid=");
    assert!(
        reported.contains("deploy/k8s/worker.yaml StatefulSet c2c-worker container worker")
            && reported.contains("--migrationid"),
        "{reported}"
    );

    let unit = &SYSTEMD[0];
    let systemd = |text: &str| {
        let edited = SystemdUnit { text, ..*unit };
        systemd::systemd(&edited)
    };
    let reported = problems_after_edit(systemd, unit.text, "--advertise", "--advertize");
    assert!(
        reported.contains("deploy/systemd/c2c-coordinator@.service")
            && reported.contains("--advertize"),
        "{reported}"
    );
}

#[test]
fn checks_after_parsing_and_undefined_variables_are_reported() {
    let (compose_file, compose_text) = COMPOSE;
    let compose = |text: &str| compose::compose(compose_file, text);
    // Parses, but the layered configuration refuses it.
    let reported = problems_after_edit(
        compose,
        compose_text,
        "--verbosity=INFO",
        "--verbosity=LOUD",
    );
    assert!(reported.contains("verbosity"), "{reported}");
    let reported = problems_after_edit(compose, compose_text, "--etcd=http://", "--etcd=https://");
    assert!(reported.contains("coordinator-1"), "{reported}");
    let reported = problems_after_edit(compose, compose_text, "--id=worker-1", "--id=worker/1");
    assert!(reported.contains("--id"), "{reported}");

    let unit = &SYSTEMD[1];
    let edited = SystemdUnit {
        env_example: "C2C_ETCD=http://e:2379\n",
        ..*unit
    };
    let reported = systemd::systemd(&edited).all_problems().join("\n");
    assert!(reported.contains("C2C_ADVERTISE"), "{reported}");
}
