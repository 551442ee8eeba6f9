//! `GET /metrics`: scraped during a real sync (`c2c run` as a process, then coordinators
//! and a worker with real etcd) to check the counters move as the data does; linted
//! with `promtool check metrics`; scraped by Debian's `prometheus` with the shipped
//! config; and the shipped config, alert rules (with their unit tests) and Grafana
//! dashboard checked with `promtool`, using only metrics c2c exports.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package (scripts/test.sh
//! installs it); without them these tests fail rather than skip.
//!
//! | module | what |
//! | --- | --- |
//! | `scrape` | `GET /metrics` over a socket, a small parser, `promtool` |
//! | `run` | `c2c run` during copy and CEA, then Debian's `prometheus` scraping it |
//! | `scaled` | a leader, a follower and a worker (real etcd) |
//! | `deploy` | `deploy/prometheus` and `deploy/grafana` against promtool and the exported names |

#[path = "../common/mod.rs"]
mod common;
mod deploy;
mod run;
mod scaled;
mod scrape;

use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(180);

/// Documents `common::load_databases` loads with `per_collection`.
fn loaded_documents(per_collection: i32) -> f64 {
    f64::from(per_collection) * common::SCALEOUT_DATABASES.len() as f64 * 2.0
}
