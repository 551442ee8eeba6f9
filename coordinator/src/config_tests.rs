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
