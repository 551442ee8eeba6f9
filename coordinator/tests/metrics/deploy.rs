//! The shipped monitoring files: valid for `promtool`, and using only metrics c2c
//! exports (rendered in-process for every kind of process); the README lists them all.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use c2c_coordinator::metrics::render_run;
use c2c_coordinator::metrics::roles::{render_worker, CoordinatorMetrics};
use c2c_coordinator::testing::FakeDriver;
use c2c_coordinator::{Coordinator, CoordinatorSettings};
use c2c_engine::migration::EngineConfig;
use c2c_worker::{WorkerService, WorkerSettings};
use serde_json::Value;

use crate::common::processes::free_port;
use crate::common::scaled::TestLease;
use crate::scrape::{deploy, promtool, repo_root, Scrape};

/// Every family each kind of process exports, rendered in-process.
async fn exported_families() -> BTreeMap<String, String> {
    let settings = CoordinatorSettings {
        id: "metrics-test".into(),
        cluster0_hosts: vec!["a:1".into()],
        cluster1_hosts: vec!["b:1".into()],
        load_level: None,
        init_retry: Duration::from_secs(1),
        continue_persisted: false,
    };
    let coordinator = Coordinator::new(settings, FakeDriver::new());
    let scaled = CoordinatorMetrics::new("c1");
    let follower = scaled.render();
    scaled.set_leader(coordinator.clone(), 7);
    let client = || mongodb::Client::with_uri_str("mongodb://127.0.0.1:1/?directConnection=true");
    let service = WorkerService::new(
        WorkerSettings {
            id: "w1".into(),
            cluster0: (client().await.expect("lazy client"), vec![]),
            cluster1: (client().await.expect("lazy client"), vec![]),
            load_level: None,
            engine: EngineConfig::default(),
        },
        Arc::new(TestLease::default()),
    );
    let mut families = BTreeMap::new();
    for text in [
        render_run(&coordinator),
        follower,
        scaled.render(),
        render_worker(&service).await,
    ] {
        let scraped = Scrape::parse(&text);
        for (name, kind) in &scraped.types {
            assert!(name.starts_with("c2c_"), "{name}");
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name}");
            }
            families.insert(name.clone(), kind.clone());
        }
    }
    families
}

/// `c2c_…` names a text uses, with histogram suffixes folded into their family.
fn used_metrics(text: &str, families: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut index = 0;
    while let Some(found) = text[index..].find("c2c_") {
        let start = index + found;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |length| start + length);
        let name = &text[start..end];
        index = end;
        if !boundary {
            continue;
        }
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| families.get(*base).map(String::as_str) == Some("histogram"))
            .unwrap_or(name);
        used.insert(family.to_string());
    }
    used
}

#[tokio::test]
async fn shipped_prometheus_files_pass_promtool_and_use_exported_metrics() {
    let prometheus = deploy("prometheus");
    promtool(&["check", "config", "prometheus.yml"], None, &prometheus);
    promtool(
        &["check", "config", "prometheus.static.yml"],
        None,
        &prometheus,
    );
    promtool(&["check", "rules", "alerts.yml"], None, &prometheus);
    promtool(&["test", "rules", "alerts_test.yml"], None, &prometheus);

    // The dashboard's queries are valid PromQL: checked as recording rules.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/c2c-dashboard.json")).expect("dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL target");
            queries.push(expr.replace("$job", ".*"));
        }
    }
    assert!(queries.len() >= 20, "{} queries", queries.len());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, query) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      - record: dashboard:query{index}\n        expr: {}\n",
            serde_json::to_string(query).expect("quoted")
        ));
    }
    let dir = std::env::temp_dir().join(format!(
        "c2c-dashboard-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("dashboard.yml"), rules).expect("write rules");
    promtool(&["check", "rules", "dashboard.yml"], None, &dir);
    let _ = std::fs::remove_dir_all(&dir);

    // Every metric the alerts and the dashboard use is one c2c exports.
    let families = exported_families().await;
    for file in ["prometheus/alerts.yml", "grafana/c2c-dashboard.json"] {
        let text = std::fs::read_to_string(deploy(file)).expect("deploy file");
        let used = used_metrics(&text, &families);
        assert!(!used.is_empty(), "{file} uses no c2c metric");
        let unknown: Vec<_> = used
            .iter()
            .filter(|name| !families.contains_key(*name))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file} uses metrics c2c does not export: {unknown:?}"
        );
    }
    // … and the README documents every exported family.
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README");
    let undocumented: Vec<_> = families
        .keys()
        .filter(|name| !readme.contains(name.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "README.md (\"Metrics\") does not list {undocumented:?}"
    );
}
