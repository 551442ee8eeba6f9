//! The verifier's map of every namespace's ranges, ordered by `_id` bound, and where a
//! change event's `_id` falls in it. Memory: one small entry per range (≤ 2000
//! documents each), so a billion documents take about half a million entries.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};

use bson::oid::ObjectId;
use bson::Bson;

use super::scan::{Bounds, RangeHash};
use super::store::{RangeRecord, RangeState, SegmentRecord};
use crate::bson_order;
use crate::namespace::Namespace;

/// A range's lower bound in the `_id` index's order; `None` is below everything.
#[derive(Debug, Clone)]
pub struct LowerBound(pub Option<Bson>);

impl PartialEq for LowerBound {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for LowerBound {}
impl PartialOrd for LowerBound {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for LowerBound {
    fn cmp(&self, other: &Self) -> Ordering {
        match (&self.0, &other.0) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => bson_order::compare(a, b),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Range {
    pub id: ObjectId,
    pub bounds: Bounds,
    pub state: RangeState,
    pub source: RangeHash,
    pub destination: Option<RangeHash>,
    /// Bumped by every mark: a check that started before a mark leaves the range dirty.
    pub generation: u64,
    pub in_flight: bool,
    /// Cluster seconds of the first unverified change on each side (for the lag).
    pub source_dirty_at: Option<u32>,
    pub destination_dirty_at: Option<u32>,
}

impl Range {
    pub fn from_record(record: RangeRecord) -> Range {
        Range {
            id: record.id,
            bounds: record.bounds,
            state: record.state,
            source: record.source,
            destination: record.destination,
            generation: 0,
            in_flight: false,
            source_dirty_at: None,
            destination_dirty_at: None,
        }
    }

    pub fn record(&self, ns: &Namespace) -> RangeRecord {
        RangeRecord {
            id: self.id,
            ns: ns.clone(),
            bounds: self.bounds.clone(),
            state: self.state,
            source: self.source,
            destination: self.destination,
        }
    }

    pub fn needs_check(&self) -> bool {
        !self.in_flight && self.state != RangeState::Clean
    }
}

#[derive(Debug, Clone)]
pub struct Segment {
    pub record: SegmentRecord,
    pub scanning: bool,
    /// `_id`s changed while the segment was being scanned, marked once its ranges exist.
    pub pending: Vec<Bson>,
    /// Too many pending marks to keep: every range of the segment is checked again.
    pub overflowed: bool,
}

/// Pending marks kept per scanning segment before it is simply checked again whole.
const MAX_PENDING: usize = 10_000;

#[derive(Debug, Default)]
pub struct NamespaceRanges {
    pub ranges: BTreeMap<LowerBound, Range>,
    pub segments: Vec<Segment>,
}

impl NamespaceRanges {
    pub fn scanned(&self) -> bool {
        self.segments.iter().all(|segment| segment.record.done)
    }

    pub fn locate(&mut self, id: &Bson) -> Option<&mut Range> {
        let key = LowerBound(Some(id.clone()));
        let (_, range) = self.ranges.range_mut(..=key).next_back()?;
        range.bounds.contains(id).then_some(range)
    }
}

/// Where a mark landed.
#[derive(Debug, PartialEq)]
pub enum Marked {
    /// A range that was clean or unchecked is now dirty: persist it.
    NewlyDirty(ObjectId),
    AlreadyDirty,
    /// Held for a segment being scanned, or not scanned yet (the scan will read it).
    NotYetScanned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side2 {
    Source,
    Destination,
}

#[derive(Debug, Default)]
pub struct RangeMap {
    pub namespaces: HashMap<Namespace, NamespaceRanges>,
}

impl RangeMap {
    /// A change to `id` in `ns` seen at `secs` on `side`.
    pub fn mark(&mut self, ns: &Namespace, id: &Bson, side: Side2, secs: u32) -> Option<Marked> {
        let entry = self.namespaces.get_mut(ns)?;
        if let Some(range) = entry.locate(id) {
            range.generation += 1;
            let since = match side {
                Side2::Source => &mut range.source_dirty_at,
                Side2::Destination => &mut range.destination_dirty_at,
            };
            since.get_or_insert(secs);
            return Some(match range.state {
                RangeState::Dirty => Marked::AlreadyDirty,
                RangeState::Clean | RangeState::Unchecked => {
                    range.state = RangeState::Dirty;
                    Marked::NewlyDirty(range.id)
                }
            });
        }
        if let Some(segment) = entry
            .segments
            .iter_mut()
            .find(|segment| segment.scanning && segment.record.bounds.contains(id))
        {
            if segment.pending.len() < MAX_PENDING {
                segment.pending.push(id.clone());
            } else {
                segment.overflowed = true;
            }
        }
        Some(Marked::NotYetScanned)
    }

    /// Oldest unverified change on each side (cluster seconds), if any.
    pub fn oldest_dirty(&self) -> (Option<u32>, Option<u32>) {
        let mut oldest = (None, None);
        for entry in self.namespaces.values() {
            for range in entry.ranges.values() {
                if range.state == RangeState::Clean {
                    continue;
                }
                if let Some(at) = range.source_dirty_at {
                    oldest.0 = Some(oldest.0.map_or(at, |o: u32| o.min(at)));
                }
                if let Some(at) = range.destination_dirty_at {
                    oldest.1 = Some(oldest.1.map_or(at, |o: u32| o.min(at)));
                }
            }
        }
        oldest
    }

    /// True when every segment is scanned and every range is clean, nothing in flight.
    pub fn settled(&self) -> bool {
        self.namespaces.values().all(|entry| {
            entry.scanned()
                && entry
                    .ranges
                    .values()
                    .all(|range| range.state == RangeState::Clean && !range.in_flight)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(min: Option<Bson>, max: Option<Bson>) -> Range {
        Range {
            id: ObjectId::new(),
            bounds: Bounds { min, max },
            state: RangeState::Clean,
            source: RangeHash::default(),
            destination: None,
            generation: 0,
            in_flight: false,
            source_dirty_at: None,
            destination_dirty_at: None,
        }
    }

    #[test]
    fn marks_land_in_the_range_holding_the_id_across_types() {
        let ns = Namespace::new("db", "c");
        let mut map = RangeMap::default();
        let mut entry = NamespaceRanges::default();
        for r in [
            range(None, Some(Bson::Int32(10))),
            range(Some(Bson::Int32(10)), Some(Bson::String("m".into()))),
            range(Some(Bson::String("m".into())), None),
        ] {
            entry.ranges.insert(LowerBound(r.bounds.min.clone()), r);
        }
        map.namespaces.insert(ns.clone(), entry);
        let first = map.mark(&ns, &Bson::Double(3.5), Side2::Source, 7);
        assert!(matches!(first, Some(Marked::NewlyDirty(_))));
        assert_eq!(
            map.mark(&ns, &Bson::Int64(3), Side2::Destination, 9),
            Some(Marked::AlreadyDirty)
        );
        // Numbers sort before strings, strings before ObjectIds.
        assert!(matches!(
            map.mark(&ns, &Bson::String("a".into()), Side2::Source, 8),
            Some(Marked::NewlyDirty(_))
        ));
        assert!(matches!(
            map.mark(&ns, &Bson::ObjectId(ObjectId::new()), Side2::Source, 8),
            Some(Marked::NewlyDirty(_))
        ));
        assert_eq!(map.oldest_dirty(), (Some(7), Some(9)));
        assert!(!map.settled());
        assert_eq!(
            map.mark(
                &Namespace::new("db", "other"),
                &Bson::Int32(1),
                Side2::Source,
                1
            ),
            None
        );
    }
}
