//! `c2c verify`: compares two clusters once, document by document (canonical hashes per
//! `_id` range, differences confirmed by re-fetching), plus namespaces, options, views
//! and indexes; prints a report and says by its exit code whether they are equal.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use c2c_engine::connect::client_for;
use c2c_engine::filter::{FilterSpec, NamespaceFilter};
use c2c_engine::options::LoadLevel;
use c2c_engine::verify::oneshot::{verify_clusters, OneShotProgress, OneShotReport};
use clap::Args;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// How often progress is printed to stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

#[derive(Clone, Args)]
pub struct VerifyArgs {
    /// The source (the reference side).
    #[arg(long, value_name = "URI")]
    pub cluster0: String,
    /// The destination (the side checked against it).
    #[arg(long, value_name = "URI")]
    pub cluster1: String,
    /// What to compare: databases (`sales`) and collections (`sales.orders`),
    /// comma-separated [default: every user database].
    #[arg(long, value_name = "NS[,NS…]", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Parallel reads, as `--loadLevel` of `c2c run` (1–4).
    #[arg(long = "loadLevel", alias = "load-level", default_value_t = 3)]
    pub load_level: u8,
    /// Print the report as one JSON document.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyCommandError {
    #[error("--namespaces: {0}")]
    Namespaces(String),
    #[error("--loadLevel: {0} is not between 1 and 4")]
    LoadLevel(u8),
    #[error(transparent)]
    Engine(#[from] c2c_engine::EngineError),
}

/// Namespaces as an include filter: `db` takes the database, `db.coll` one collection.
pub fn namespace_filter(namespaces: &[String]) -> Result<NamespaceFilter, VerifyCommandError> {
    let mut by_db: BTreeMap<String, Option<Vec<String>>> = BTreeMap::new();
    for entry in namespaces
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
    {
        match entry.split_once('.') {
            None => {
                by_db.insert(entry.to_string(), None);
            }
            Some((db, coll)) if !db.is_empty() && !coll.is_empty() => {
                let slot = by_db
                    .entry(db.to_string())
                    .or_insert_with(|| Some(Vec::new()));
                if let Some(collections) = slot {
                    collections.push(coll.to_string());
                }
            }
            Some(_) => {
                return Err(VerifyCommandError::Namespaces(format!(
                    "{entry:?} is neither a database nor database.collection"
                )))
            }
        }
    }
    let include: Vec<FilterSpec> = by_db
        .into_iter()
        .map(|(database, collections)| FilterSpec {
            database: Some(database),
            database_regex: None,
            collections,
            collections_regex: None,
        })
        .collect();
    NamespaceFilter::compile(&include, &[])
        .map_err(|error| VerifyCommandError::Namespaces(error.to_string()))
}

/// Runs the comparison; `Ok(true)` when the clusters are equal.
pub async fn run(args: VerifyArgs) -> Result<bool, VerifyCommandError> {
    let filter = namespace_filter(&args.namespaces)?;
    let load =
        LoadLevel::new(args.load_level).ok_or(VerifyCommandError::LoadLevel(args.load_level))?;
    let source = client_for(&args.cluster0, "c2c-verify").await?;
    let destination = client_for(&args.cluster1, "c2c-verify").await?;
    let progress = Arc::new(OneShotProgress::default());
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let reporter = tokio::spawn(report_progress(progress.clone(), cancel.clone()));
    let outcome = verify_clusters(
        &source,
        &destination,
        &filter,
        load.copy_concurrency(),
        progress,
        cancel.clone(),
    )
    .await;
    cancel.cancel();
    let _ = reporter.await;
    let report = outcome?;
    print_report(&report, started.elapsed(), args.json);
    Ok(report.is_equal())
}

async fn report_progress(progress: Arc<OneShotProgress>, cancel: CancellationToken) {
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(PROGRESS_EVERY) => {}
        }
        eprintln!(
            "verifying: {} of ~{} documents hashed, {}/{} segments",
            progress.source_documents.load(Ordering::Relaxed),
            progress.estimated_documents.load(Ordering::Relaxed),
            progress.segments_done.load(Ordering::Relaxed),
            progress.segments_total.load(Ordering::Relaxed),
        );
    }
}

fn print_report(report: &OneShotReport, elapsed: Duration, as_json: bool) {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        report.source_documents as f64 / seconds
    } else {
        0.0
    };
    if as_json {
        let mismatches: Vec<_> = report
            .mismatches
            .iter()
            .map(|m| {
                json!({
                    "namespace": m.ns.to_string(),
                    "id": m.id.clone().map(|id| id.into_relaxed_extjson()),
                    "kind": m.kind,
                    "detail": m.detail,
                })
            })
            .collect();
        let document = json!({
            "equal": report.is_equal(),
            "namespaces": report.namespaces,
            "sourceDocuments": report.source_documents,
            "destinationDocuments": report.destination_documents,
            "mismatchCount": report.mismatch_count,
            "mismatches": mismatches,
            "seconds": seconds,
            "documentsPerSecond": rate,
        });
        println!("{document}");
        return;
    }
    println!(
        "{} namespaces, {} source documents, {} destination documents in {:.1} s ({:.0} documents/s)",
        report.namespaces, report.source_documents, report.destination_documents, seconds, rate
    );
    if report.is_equal() {
        println!("equal: no differences");
        return;
    }
    println!("{} difference(s):", report.mismatch_count);
    for mismatch in &report.mismatches {
        println!("  {mismatch}");
    }
    if report.mismatch_count as usize > report.mismatches.len() {
        println!(
            "  … and {} more",
            report.mismatch_count as usize - report.mismatches.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use c2c_engine::Namespace;

    #[test]
    fn namespaces_become_an_include_filter() {
        let filter = namespace_filter(&["sales".into(), "hr.people".into(), "hr.pay".into()])
            .expect("filter");
        assert!(filter.matches(&Namespace::new("sales", "orders")));
        assert!(filter.matches(&Namespace::new("hr", "people")));
        assert!(filter.matches(&Namespace::new("hr", "pay")));
        assert!(!filter.matches(&Namespace::new("hr", "other")));
        assert!(!filter.matches(&Namespace::new("ops", "x")));
        assert!(namespace_filter(&[]).expect("empty").is_empty());
        assert!(namespace_filter(&[".x".into()]).is_err());
    }
}
