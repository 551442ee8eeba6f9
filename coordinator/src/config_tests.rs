use super::*;

fn args() -> RunArgs {
    RunArgs {
        cluster0: Some("mongodb://a:1".into()),
        cluster1: Some("mongodb://b:2".into()),
        ..RunArgs::default()
    }
}

#[test]
fn defaults_are_mongosyncs() {
    let config = RunConfig::from_yaml(&args(), "").unwrap();
    assert_eq!(config.port, 27182);
    assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.verbosity, Verbosity::Debug);
    assert_eq!(config.load_level, None);
    assert_eq!(config.id, "coordinator");
    assert_eq!(config.workers, 1);
    assert_eq!(config.log_path, None);
}

#[test]
fn yaml_overrides_defaults_and_flags_override_yaml() {
    let yaml = "cluster0: \"mongodb://y0:1\"\ncluster1: \"mongodb://y1:2\"\nport: 9000\nlogPath: /tmp/x\nverbosity: WARN\nloadLevel: 4\nid: shard01\nworkers: 1\nbind: 0.0.0.0\n";
    let from_yaml = RunConfig::from_yaml(&RunArgs::default(), yaml).unwrap();
    assert_eq!(from_yaml.cluster0, "mongodb://y0:1");
    assert_eq!(from_yaml.port, 9000);
    assert_eq!(from_yaml.log_path, Some(PathBuf::from("/tmp/x")));
    assert_eq!(from_yaml.verbosity, Verbosity::Warn);
    assert_eq!(from_yaml.load_level.map(LoadLevel::get), Some(4));
    assert_eq!(from_yaml.id, "shard01");
    assert_eq!(from_yaml.workers, 1);
    assert_eq!(from_yaml.bind.to_string(), "0.0.0.0");

    let flags = RunArgs {
        port: Some(9100),
        load_level: Some(1),
        verbosity: Some("error".into()),
        ..args()
    };
    let merged = RunConfig::from_yaml(&flags, yaml).unwrap();
    assert_eq!(merged.cluster0, "mongodb://a:1");
    assert_eq!(merged.port, 9100);
    assert_eq!(merged.load_level.map(LoadLevel::get), Some(1));
    assert_eq!(merged.verbosity, Verbosity::Error);
    assert_eq!(merged.id, "shard01");
}

fn error_of(args: &RunArgs, yaml: &str) -> String {
    RunConfig::from_yaml(args, yaml)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn missing_clusters_are_named() {
    assert!(error_of(&RunArgs::default(), "").contains("cluster0 is required"));
    let only0 = RunArgs {
        cluster0: Some("mongodb://a".into()),
        ..RunArgs::default()
    };
    assert!(error_of(&only0, "").contains("cluster1 is required"));
}

#[test]
fn invalid_values_name_the_key() {
    assert!(error_of(
        &RunArgs {
            load_level: Some(5),
            ..args()
        },
        ""
    )
    .contains("loadLevel"));
    assert!(error_of(&args(), "loadLevel: 0").contains("loadLevel"));
    assert!(error_of(
        &RunArgs {
            verbosity: Some("LOUD".into()),
            ..args()
        },
        ""
    )
    .contains("verbosity"));
    assert!(error_of(
        &RunArgs {
            bind: Some("localhost:1".into()),
            ..args()
        },
        ""
    )
    .contains("bind"));
    assert!(error_of(
        &RunArgs {
            workers: Some(0),
            ..args()
        },
        ""
    )
    .contains("workers"));
    assert!(error_of(
        &RunArgs {
            workers: Some(4),
            ..args()
        },
        ""
    )
    .contains("not supported yet"));
    assert!(error_of(
        &RunArgs {
            id: Some(" ".into()),
            ..args()
        },
        ""
    )
    .contains("id"));
    assert!(error_of(&args(), "port: abc").contains("port"));
    assert!(error_of(&args(), "port: 70000").contains("port"));
}

#[test]
fn unknown_yaml_keys_are_refused_by_name() {
    let message = error_of(&args(), "cluster0: mongodb://a\ndisableTelemetry: true\n");
    assert!(message.contains("disableTelemetry"), "{message}");
}

#[test]
fn bad_uris_are_refused_without_showing_the_password() {
    let message = error_of(
        &RunArgs {
            cluster1: Some("http://u:topsecret@b".into()),
            ..args()
        },
        "",
    );
    assert!(message.contains("cluster1"), "{message}");
    assert!(!message.contains("topsecret"), "{message}");
}

#[test]
fn debug_output_redacts_passwords() {
    let config = RunConfig::from_yaml(
        &RunArgs {
            cluster0: Some("mongodb://u:topsecret@h:1".into()),
            ..args()
        },
        "",
    )
    .unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("topsecret"), "{shown}");
    assert!(shown.contains("u:*****@h:1"), "{shown}");
}

#[test]
fn verbosity_accepts_every_mongosync_level() {
    for level in [
        "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC", "info",
    ] {
        assert!(level.parse::<Verbosity>().is_ok(), "{level}");
    }
}

/// The layers of a start with `yaml` as the --config file, `env` as the environment
/// and `flags`, without touching the process environment.
fn layered(
    flags: &RunArgs,
    yaml: &str,
    env: &[(&str, &str)],
) -> Result<ResolvedConfig, ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let layers = Layers::default()
        .with_yaml(Path::new("/etc/c2c.yaml"), yaml)?
        .with_env(&KEYS, |name| {
            env.iter()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value.into())
        })
        .with_run_flags(flags);
    ResolvedConfig::from_layers(&layers)
}

fn layered_error(flags: &RunArgs, yaml: &str, env: &[(&str, &str)]) -> String {
    layered(flags, yaml, env)
        .expect_err("must be refused")
        .to_string()
}

#[test]
fn layers_apply_in_order_defaults_file_environment_flags() {
    let yaml = "cluster0: mongodb://file0\ncluster1: mongodb://file1\nport: 9000\nverbosity: WARN\nloadLevel: 4\nid: from-file\n";
    let env = [
        ("C2C_PORT", "9001"),
        ("C2C_VERBOSITY", "ERROR"),
        ("C2C_CLUSTER1", "mongodb://env1"),
        ("C2C_LOG_PATH", "/var/log/c2c"),
    ];
    let flags = RunArgs {
        port: Some(9002),
        ..RunArgs::default()
    };
    let resolved = layered(&flags, yaml, &env).unwrap();
    let config = &resolved.config;
    // flag > environment > file > default
    assert_eq!(config.port, 9002);
    assert_eq!(config.verbosity, Verbosity::Error);
    assert_eq!(config.cluster1, "mongodb://env1");
    assert_eq!(config.log_path, Some(PathBuf::from("/var/log/c2c")));
    assert_eq!(config.cluster0, "mongodb://file0");
    assert_eq!(config.load_level.map(LoadLevel::get), Some(4));
    assert_eq!(config.id, "from-file");
    assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(config.workers, 1);

    let sources = &resolved.sources;
    assert_eq!(sources.of(&layers::PORT), &Source::Flag("port"));
    assert_eq!(
        sources.of(&layers::VERBOSITY),
        &Source::Env("C2C_VERBOSITY")
    );
    assert_eq!(
        sources.of(&layers::CLUSTER0),
        &Source::File(PathBuf::from("/etc/c2c.yaml"))
    );
    assert_eq!(sources.of(&layers::BIND), &Source::Default);
    let shown = sources.to_string();
    assert!(shown.contains("port: flag --port"), "{shown}");
    assert!(
        shown.contains("verbosity: environment variable C2C_VERBOSITY"),
        "{shown}"
    );
    assert!(shown.contains("bind: the default"), "{shown}");
}

#[test]
fn every_key_has_its_environment_variable() {
    let env = [
        ("C2C_CLUSTER0", "mongodb://e0"),
        ("C2C_CLUSTER1", "mongodb://e1"),
        ("C2C_PORT", "1234"),
        ("C2C_BIND", "0.0.0.0"),
        ("C2C_WORKERS", "1"),
        ("C2C_LOG_PATH", "/logs"),
        ("C2C_VERBOSITY", "info"),
        ("C2C_LOAD_LEVEL", "2"),
        ("C2C_ID", "shard07"),
        ("C2C_API_TOKEN", "t0ken"),
        ("C2C_API_TOKEN_FILE", "/run/secrets/token"),
        ("C2C_METRICS_AUTH", "true"),
        ("C2C_TLS_CERT_FILE", "/tls/cert.pem"),
        ("C2C_TLS_KEY_FILE", "/tls/key.pem"),
    ];
    let resolved = layered(&RunArgs::default(), "", &env).unwrap();
    let config = &resolved.config;
    assert_eq!(config.cluster0, "mongodb://e0");
    assert_eq!(config.cluster1, "mongodb://e1");
    assert_eq!(config.port, 1234);
    assert_eq!(config.bind.to_string(), "0.0.0.0");
    assert_eq!(config.workers, 1);
    assert_eq!(config.log_path, Some(PathBuf::from("/logs")));
    assert_eq!(config.verbosity, Verbosity::Info);
    assert_eq!(config.load_level.map(LoadLevel::get), Some(2));
    assert_eq!(config.id, "shard07");
    for key in KEYS {
        assert_eq!(resolved.sources.of(&key), &Source::Env(key.env), "{key:?}");
    }
}

#[test]
fn other_c2c_variables_and_empty_ones_are_not_configuration() {
    let env = [
        ("C2C_TEST_SOURCE_URI", "not a uri"),
        ("C2C_PARTITION_TARGET_BYTES", "x"),
        ("C2C_E2E_LOGS", "1"),
        ("C2C_PORT", ""),
    ];
    let resolved = layered(&args(), "", &env).unwrap();
    assert_eq!(resolved.config.port, DEFAULT_PORT);
    assert_eq!(resolved.sources.of(&layers::PORT), &Source::Default);
}

#[test]
fn errors_name_the_key_and_the_layer() {
    let message = layered_error(&args(), "", &[("C2C_PORT", "abc")]);
    assert!(
        message.starts_with("invalid port from environment variable C2C_PORT: "),
        "{message}"
    );
    let message = layered_error(&args(), "port: 70000\n", &[]);
    assert!(
        message.starts_with("invalid port from config file /etc/c2c.yaml: "),
        "{message}"
    );
    let flags = RunArgs {
        load_level: Some(9),
        ..args()
    };
    let message = layered_error(&flags, "", &[]);
    assert!(
        message.starts_with("invalid loadLevel from flag --loadLevel: "),
        "{message}"
    );
    let message = layered_error(&args(), "", &[("C2C_VERBOSITY", "LOUD")]);
    assert!(
        message.starts_with("invalid verbosity from environment variable C2C_VERBOSITY: "),
        "{message}"
    );
    let message = layered_error(&args(), "", &[("C2C_WORKERS", "3")]);
    assert!(
        message.contains("workers from environment variable C2C_WORKERS")
            && message.contains("not supported yet"),
        "{message}"
    );
    let message = layered_error(&args(), "bind: [a, b]\n", &[]);
    assert!(
        message.starts_with("invalid bind from config file /etc/c2c.yaml: must be a single value"),
        "{message}"
    );
    let message = layered_error(&args(), "logPath: \"\"\n", &[]);
    assert!(message.contains("logPath"), "{message}");
    // A flag that fixes a bad variable wins: the variable is never validated.
    let flags = RunArgs {
        port: Some(1),
        ..args()
    };
    assert_eq!(
        layered(&flags, "", &[("C2C_PORT", "abc")])
            .unwrap()
            .config
            .port,
        1
    );
}

#[test]
fn a_bad_uri_from_the_environment_is_named_without_its_password() {
    let env = [("C2C_CLUSTER0", "http://u:topsecret@h")];
    let message = layered_error(&RunArgs::default(), "cluster1: mongodb://b\n", &env);
    assert!(
        message.starts_with("invalid cluster0 from environment variable C2C_CLUSTER0: "),
        "{message}"
    );
    assert!(!message.contains("topsecret"), "{message}");
}

#[test]
fn a_missing_cluster_names_every_way_to_set_it() {
    let message = layered_error(&RunArgs::default(), "cluster0: mongodb://a\n", &[]);
    assert!(message.contains("cluster1 is required"), "{message}");
    assert!(message.contains("--cluster1"), "{message}");
    assert!(message.contains("C2C_CLUSTER1"), "{message}");
}

#[test]
fn the_unknown_file_key_is_refused_whatever_the_environment() {
    let message = layered_error(&args(), "logpath: /x\n", &[("C2C_LOG_PATH", "/y")]);
    assert!(message.contains("/etc/c2c.yaml"), "{message}");
    assert!(message.contains("logpath"), "{message}");
}

#[test]
fn the_sample_config_file_is_valid_and_documents_every_key() {
    let sample = include_str!("../../deploy/c2c.sample.yaml");
    for key in KEYS {
        assert!(
            sample.contains(&format!("{}:", key.yaml)),
            "deploy/c2c.sample.yaml does not document {}",
            key.yaml
        );
        assert!(
            sample.contains(key.env),
            "deploy/c2c.sample.yaml does not name {}",
            key.env
        );
    }
    // Uncommented, the sample's example values must resolve.
    let uncommented: String = sample
        .lines()
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            KEYS.iter()
                .any(|key| line.starts_with(&format!("{}:", key.yaml)))
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let resolved = layered(&RunArgs::default(), &uncommented, &[]).unwrap();
    assert!(resolved.config.cluster0.starts_with("mongodb://"));
    for key in KEYS {
        assert!(
            matches!(resolved.sources.of(&key), Source::File(_)),
            "{} has no example value in the sample",
            key.yaml
        );
    }
}

#[test]
fn worker_log_settings_layer_environment_under_flags() {
    let env = |name: &str| match name {
        "C2C_LOG_PATH" => Some("/env/logs".into()),
        "C2C_VERBOSITY" => Some("WARN".into()),
        "C2C_PORT" => Some("not read by workers".into()),
        _ => None,
    };
    let layers = Layers::default()
        .with_env(&[layers::LOG_PATH, layers::VERBOSITY], env)
        .with_flag(layers::VERBOSITY, Some("TRACE"));
    let logs = LogConfig::from_layers(&layers).unwrap();
    assert_eq!(logs.log_path, Some(PathBuf::from("/env/logs")));
    assert_eq!(logs.verbosity, Verbosity::Trace);
    let defaults = LogConfig::from_layers(&Layers::default()).unwrap();
    assert_eq!(defaults.log_path, None);
    assert_eq!(defaults.verbosity, Verbosity::Debug);
}

#[test]
fn security_settings_layer_and_never_print_the_token() {
    use crate::auth::TokenSource;
    let yaml = "cluster0: mongodb://a\ncluster1: mongodb://b\napiTokenFile: /file/token\n";
    let resolved = layered(&args(), yaml, &[("C2C_API_TOKEN", "from-env")]).unwrap();
    // The environment's token wins over the file's path (a later layer).
    assert!(
        matches!(&resolved.config.security.api_token, TokenSource::Value(token) if token.expose() == "from-env")
    );
    let shown = format!("{:?}", resolved.config);
    assert!(!shown.contains("from-env"), "{shown}");
    // In one layer the file wins.
    let resolved = layered(
        &args(),
        "",
        &[("C2C_API_TOKEN", "x"), ("C2C_API_TOKEN_FILE", "/f")],
    )
    .unwrap();
    assert_eq!(
        resolved.config.security.api_token,
        TokenSource::File(PathBuf::from("/f"))
    );
    assert!(!resolved.config.security.metrics_auth);
    assert_eq!(resolved.config.security.tls, None);

    let message = layered_error(&args(), "tlsCertFile: /c.pem\n", &[]);
    assert!(
        message.starts_with("invalid tlsCertFile from config file /etc/c2c.yaml: needs tlsKeyFile"),
        "{message}"
    );
    let message = layered_error(&args(), "", &[("C2C_METRICS_AUTH", "maybe")]);
    assert!(
        message.starts_with("invalid metricsAuth from environment variable C2C_METRICS_AUTH"),
        "{message}"
    );
}
