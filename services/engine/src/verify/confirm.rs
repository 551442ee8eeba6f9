//! Confirming a difference before calling it a mismatch.
//!
//! A range read on the source and then on the destination can differ only because a
//! write was between the two reads. So each candidate `_id` is re-fetched in rounds:
//! read the source document, note the source's latest write time `s`, wait until change
//! event application has applied everything up to `s`, read the destination, read the
//! source again. If the source did not change in between, the destination must equal
//! it; a difference seen [`STRIKES`] times that way is a real mismatch. A document that
//! keeps changing is left unsettled and its range is checked again later (at commit the
//! source is frozen, so everything settles).

use std::time::Duration;

use bson::{doc, Bson, RawDocumentBuf};
use futures::TryStreamExt;
use mongodb::Client;
use tokio_util::sync::CancellationToken;

use super::clock::{source_time, AppliedClock};
use super::scan::{same_document, DocumentDifference};
use crate::bson_order;
use crate::error::{EngineError, Result, Side};
use crate::namespace::Namespace;

/// Consistent differences needed before a mismatch is reported.
const STRIKES: u32 = 3;
/// Rounds tried before a candidate is left unsettled.
const ROUNDS: u32 = 8;

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Equal,
    Mismatch(DocumentDifference),
    /// Kept changing: check again later.
    Unsettled,
}

struct Candidate {
    id: Bson,
    strikes: u32,
    verdict: Option<Verdict>,
}

/// Settles each candidate `_id`; returns the verdicts in the candidates' order.
pub async fn confirm(
    source: &Client,
    destination: &Client,
    ns: &Namespace,
    ids: Vec<Bson>,
    applied: &AppliedClock,
    cancel: &CancellationToken,
) -> Result<Vec<(Bson, Verdict)>> {
    let mut candidates: Vec<Candidate> = ids
        .into_iter()
        .map(|id| Candidate {
            id,
            strikes: 0,
            verdict: None,
        })
        .collect();
    for round in 0..ROUNDS {
        let open: Vec<usize> = (0..candidates.len())
            .filter(|&i| candidates[i].verdict.is_none())
            .collect();
        if open.is_empty() {
            break;
        }
        if round > 0 {
            let pause = Duration::from_millis(100 * u64::from(round.min(5)));
            tokio::select! {
                _ = cancel.cancelled() => return Err(EngineError::Cancelled),
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let ids: Vec<Bson> = open.iter().map(|&i| candidates[i].id.clone()).collect();
        let before = fetch_many(source, ns, &ids, Side::Source).await?;
        let time = source_time(source).await?;
        applied.wait_for(time, cancel).await?;
        let on_destination = fetch_many(destination, ns, &ids, Side::Destination).await?;
        let after = fetch_many(source, ns, &ids, Side::Source).await?;
        for (k, &i) in open.iter().enumerate() {
            if !same_document(before[k].as_ref(), after[k].as_ref()) {
                continue;
            }
            let candidate = &mut candidates[i];
            if same_document(after[k].as_ref(), on_destination[k].as_ref()) {
                candidate.verdict = Some(Verdict::Equal);
                continue;
            }
            candidate.strikes += 1;
            if candidate.strikes >= STRIKES {
                let kind = match (&after[k], &on_destination[k]) {
                    (Some(_), None) => DocumentDifference::MissingOnDestination,
                    (None, Some(_)) => DocumentDifference::ExtraOnDestination,
                    _ => DocumentDifference::Differs,
                };
                candidate.verdict = Some(Verdict::Mismatch(kind));
            }
        }
    }
    Ok(candidates
        .into_iter()
        .map(|candidate| {
            (
                candidate.id,
                candidate.verdict.unwrap_or(Verdict::Unsettled),
            )
        })
        .collect())
}

/// The documents with these `_id`s, in the same order (`None` where absent).
async fn fetch_many(
    client: &Client,
    ns: &Namespace,
    ids: &[Bson],
    side: Side,
) -> Result<Vec<Option<RawDocumentBuf>>> {
    let error = match side {
        Side::Source => EngineError::source,
        Side::Destination => EngineError::destination,
    };
    let collection = client
        .database(&ns.db)
        .collection::<RawDocumentBuf>(&ns.coll);
    let mut found: Vec<(Bson, RawDocumentBuf)> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let mut cursor = collection
            .find(doc! {"_id": {"$in": chunk.to_vec()}})
            .await
            .map_err(error)?;
        while let Some(document) = cursor.try_next().await.map_err(error)? {
            let id = document
                .get("_id")
                .ok()
                .flatten()
                .and_then(|raw| Bson::try_from(raw.to_raw_bson()).ok())
                .unwrap_or(Bson::Null);
            found.push((id, document));
        }
    }
    Ok(ids
        .iter()
        .map(|id| {
            found
                .iter()
                .find(|(found_id, _)| bson_order::equal(found_id, id))
                .map(|(_, document)| document.clone())
        })
        .collect())
}
