//! Document-by-document comparison of two clusters through a filter, in bounded memory:
//! both sides are streamed in `_id` order and merged. Used by `c2c demo`, the
//! end-to-end tests, and as the base of the verifier.

use std::cmp::Ordering;
use std::fmt;

use bson::{doc, Bson, Document, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::options::Hint;
use mongodb::Client;

use crate::bson_order;
use crate::error::{EngineError, Result};
use crate::filter::NamespaceFilter;
use crate::namespace::Namespace;

/// Differences reported at most (the count keeps going).
const MAX_REPORTED: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum DifferenceKind {
    MissingOnDestination,
    ExtraOnDestination,
    DocumentDiffers,
    NamespaceMissingOnDestination,
    NamespaceExtraOnDestination,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub ns: Namespace,
    pub id: Option<Bson>,
    pub kind: DifferenceKind,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}: {:?} for _id {}", self.ns, self.kind, id),
            None => write!(f, "{}: {:?}", self.ns, self.kind),
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct CompareReport {
    pub namespaces: usize,
    pub documents: u64,
    pub differences: Vec<Difference>,
    pub difference_count: u64,
}

impl CompareReport {
    pub fn is_equal(&self) -> bool {
        self.difference_count == 0
    }

    fn record(&mut self, difference: Difference) {
        self.difference_count += 1;
        if self.differences.len() < MAX_REPORTED {
            self.differences.push(difference);
        }
    }
}

/// Collections and views the filter selects on one cluster, sorted.
async fn namespaces(
    client: &Client,
    filter: &NamespaceFilter,
    side_error: fn(mongodb::error::Error) -> EngineError,
) -> Result<Vec<(Namespace, Document)>> {
    let mut found = Vec::new();
    let names = client.list_database_names().await.map_err(side_error)?;
    for db in names {
        let specs: Vec<mongodb::results::CollectionSpecification> = client
            .database(&db)
            .list_collections()
            .await
            .map_err(side_error)?
            .try_collect()
            .await
            .map_err(side_error)?;
        for spec in specs {
            let ns = Namespace::new(db.clone(), spec.name.clone());
            if filter.matches(&ns) {
                let options = bson::to_document(&spec.options).unwrap_or_default();
                found.push((ns, options));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// Compares every selected namespace and document of `source` and `destination`.
pub async fn compare_clusters(
    source: &Client,
    destination: &Client,
    filter: &NamespaceFilter,
) -> Result<CompareReport> {
    let source_namespaces = namespaces(source, filter, EngineError::source).await?;
    let destination_namespaces = namespaces(destination, filter, EngineError::destination).await?;
    let mut report = CompareReport::default();
    for (ns, _) in &destination_namespaces {
        if !source_namespaces.iter().any(|(s, _)| s == ns) {
            report.record(Difference {
                ns: ns.clone(),
                id: None,
                kind: DifferenceKind::NamespaceExtraOnDestination,
            });
        }
    }
    for (ns, options) in &source_namespaces {
        report.namespaces += 1;
        if !destination_namespaces.iter().any(|(d, _)| d == ns) {
            report.record(Difference {
                ns: ns.clone(),
                id: None,
                kind: DifferenceKind::NamespaceMissingOnDestination,
            });
            continue;
        }
        if options.contains_key("viewOn") {
            continue;
        }
        compare_collection(source, destination, ns, &mut report).await?;
    }
    Ok(report)
}

async fn compare_collection(
    source: &Client,
    destination: &Client,
    ns: &Namespace,
    report: &mut CompareReport,
) -> Result<()> {
    let open = |client: &Client| {
        let collection = client
            .database(&ns.db)
            .collection::<RawDocumentBuf>(&ns.coll);
        async move {
            collection
                .find(doc! {})
                .hint(Hint::Keys(doc! {"_id": 1}))
                .batch_size(1000)
                .await
        }
    };
    let mut left = open(source).await.map_err(EngineError::source)?;
    let mut right = open(destination).await.map_err(EngineError::destination)?;
    let mut next_left = left.try_next().await.map_err(EngineError::source)?;
    let mut next_right = right.try_next().await.map_err(EngineError::destination)?;
    loop {
        let order = match (&next_left, &next_right) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(l), Some(r)) => bson_order::compare(&id_of(l), &id_of(r)),
        };
        match order {
            Ordering::Less => {
                let id = next_left.as_ref().map(id_of);
                report.record(Difference {
                    ns: ns.clone(),
                    id,
                    kind: DifferenceKind::MissingOnDestination,
                });
                report.documents += 1;
                next_left = left.try_next().await.map_err(EngineError::source)?;
            }
            Ordering::Greater => {
                let id = next_right.as_ref().map(id_of);
                report.record(Difference {
                    ns: ns.clone(),
                    id,
                    kind: DifferenceKind::ExtraOnDestination,
                });
                next_right = right.try_next().await.map_err(EngineError::destination)?;
            }
            Ordering::Equal => {
                report.documents += 1;
                if let (Some(l), Some(r)) = (&next_left, &next_right) {
                    if l.as_bytes() != r.as_bytes() {
                        report.record(Difference {
                            ns: ns.clone(),
                            id: Some(id_of(l)),
                            kind: DifferenceKind::DocumentDiffers,
                        });
                    }
                }
                next_left = left.try_next().await.map_err(EngineError::source)?;
                next_right = right.try_next().await.map_err(EngineError::destination)?;
            }
        }
    }
}

fn id_of(document: &RawDocumentBuf) -> Bson {
    document
        .get("_id")
        .ok()
        .flatten()
        .and_then(|raw| raw.to_raw_bson().try_into().ok())
        .unwrap_or(Bson::Null)
}
