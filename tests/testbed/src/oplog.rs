//! The event log ("oplog"): every write and DDL with a strictly increasing cluster
//! time, bounded by `--oplog-retention`, and the resume tokens change streams derive
//! from it (reference §4.5).
//!
//! Token `_data` is fixed-width uppercase hex of
//! `(time, increment, tokenType, txnOpIndex, fromInvalidate, sequence)`, so string order
//! equals stream order and a high-water mark at T sorts after every event before T and
//! before every event at or after T.

use std::collections::VecDeque;
use std::sync::Arc;

use bson::{doc, Bson, Document, Timestamp};

use crate::error::{CmdResult, CommandError, ErrorCode};

#[derive(Debug, Clone)]
pub enum Op {
    Insert {
        document: Arc<Document>,
    },
    /// An update with its post-image and pre-image; `kind` is "update" or "replace".
    Update {
        id: Bson,
        kind: &'static str,
        description: Document,
        pre: Arc<Document>,
        post: Arc<Document>,
    },
    Delete {
        id: Bson,
        pre: Arc<Document>,
    },
    Create {
        description: Document,
        ns_type: &'static str,
    },
    Drop,
    Rename {
        to_db: String,
        to_coll: String,
        drop_target: Option<bson::Uuid>,
    },
    DropDatabase,
    CreateIndexes {
        indexes: Vec<Document>,
    },
    DropIndexes {
        indexes: Vec<Document>,
    },
    Modify {
        description: Document,
        state_before: Document,
    },
    /// A no-op (idle tick, appendOplogNote): advances time, never an event.
    Noop,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub ts: Timestamp,
    pub wall: bson::DateTime,
    pub db: String,
    /// None for database-level entries (dropDatabase, no-ops).
    pub coll: Option<String>,
    pub uuid: Option<bson::Uuid>,
    /// Pre- and post-images were enabled on the collection when this was written.
    pub images: bool,
    pub op: Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Token {
    pub time: u32,
    pub increment: u32,
    /// 0 = high-water mark, 128 = event (as in mongod's resume tokens).
    pub token_type: u8,
    pub txn_op_index: u64,
    pub from_invalidate: bool,
    pub seq: u64,
}

impl Token {
    pub fn event(entry: &Entry, from_invalidate: bool) -> Token {
        Token {
            time: entry.ts.time,
            increment: entry.ts.increment,
            token_type: 128,
            txn_op_index: 0,
            from_invalidate,
            seq: entry.seq,
        }
    }

    pub fn high_water_mark(ts: Timestamp) -> Token {
        Token {
            time: ts.time,
            increment: ts.increment,
            token_type: 0,
            txn_op_index: 0,
            from_invalidate: false,
            seq: 0,
        }
    }

    pub fn ts(&self) -> Timestamp {
        Timestamp {
            time: self.time,
            increment: self.increment,
        }
    }

    pub fn is_event(&self) -> bool {
        self.token_type == 128
    }

    pub fn encode(&self) -> Document {
        doc! {
            "_data": format!(
                "82{:08X}{:08X}{:02X}{:016X}{:02X}{:016X}",
                self.time,
                self.increment,
                self.token_type,
                self.txn_op_index,
                u8::from(self.from_invalidate),
                self.seq
            )
        }
    }

    /// Parses a resume token document, with mongod's errors for garbage.
    pub fn decode(value: &Bson) -> CmdResult<Token> {
        let document = match value {
            Bson::Document(document) => document,
            _ => {
                return Err(CommandError::new(
                    ErrorCode::BadResumeTokenData,
                    "Bad resume token: _data of missing or of wrong type",
                ))
            }
        };
        let data = match document.get("_data") {
            Some(Bson::String(data)) => data,
            _ => {
                return Err(CommandError::new(
                    ErrorCode::BadResumeTokenData,
                    "Bad resume token: _data of missing or of wrong type",
                ))
            }
        };
        let malformed =
            || CommandError::failed_to_parse(format!("Bad resume token: failed to parse {data:?}"));
        if data.len() != 2 + 8 + 8 + 2 + 16 + 2 + 16 || !data.starts_with("82") {
            return Err(malformed());
        }
        let field = |from: usize, len: usize| {
            u64::from_str_radix(&data[from..from + len], 16).map_err(|_| malformed())
        };
        Ok(Token {
            time: field(2, 8)? as u32,
            increment: field(10, 8)? as u32,
            token_type: field(18, 2)? as u8,
            txn_op_index: field(20, 16)?,
            from_invalidate: field(36, 2)? == 1,
            seq: field(38, 16)?,
        })
    }
}

/// The bounded log.
#[derive(Debug, Default)]
pub struct Oplog {
    entries: VecDeque<Arc<Entry>>,
    next_seq: u64,
    retention: Option<usize>,
    /// The newest time that was truncated away: starting at or before it loses history.
    truncated_through: Option<Timestamp>,
}

impl Oplog {
    pub fn new(retention: Option<usize>) -> Oplog {
        Oplog {
            entries: VecDeque::new(),
            next_seq: 1,
            retention,
            truncated_through: None,
        }
    }

    pub fn append(&mut self, mut entry: Entry) -> Arc<Entry> {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let entry = Arc::new(entry);
        self.entries.push_back(entry.clone());
        if let Some(limit) = self.retention {
            while self.entries.len() > limit.max(1) {
                self.drop_oldest();
            }
        }
        entry
    }

    fn drop_oldest(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            self.truncated_through = Some(old.ts);
        }
    }

    /// Drops all but the newest `keep` entries (`testbedTruncateOplog`).
    pub fn truncate_keep(&mut self, keep: usize) {
        while self.entries.len() > keep {
            self.drop_oldest();
        }
    }

    pub fn set_retention(&mut self, retention: Option<usize>) {
        self.retention = retention;
        if let Some(limit) = retention {
            self.truncate_keep(limit.max(1));
        }
    }

    pub fn last_ts(&self) -> Option<Timestamp> {
        self.entries.back().map(|entry| entry.ts)
    }

    pub fn first_ts(&self) -> Option<Timestamp> {
        self.entries.front().map(|entry| entry.ts)
    }

    pub fn truncated_through(&self) -> Option<Timestamp> {
        self.truncated_through
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True when events at `ts` or later may no longer all be in the log.
    pub fn history_lost_at(&self, ts: Timestamp) -> bool {
        match self.truncated_through {
            Some(truncated) => (ts.time, ts.increment) <= (truncated.time, truncated.increment),
            None => false,
        }
    }

    /// Index of the first retained entry with a sequence number ≥ `seq`.
    pub fn position_of_seq(&self, seq: u64) -> usize {
        self.entries.partition_point(|entry| entry.seq < seq)
    }

    /// Index of the first retained entry at or after `ts`.
    pub fn position_of_ts(&self, ts: Timestamp) -> usize {
        self.entries
            .partition_point(|entry| (entry.ts.time, entry.ts.increment) < (ts.time, ts.increment))
    }

    pub fn get(&self, position: usize) -> Option<&Arc<Entry>> {
        self.entries.get(position)
    }

    pub fn contains_seq(&self, seq: u64) -> bool {
        let position = self.position_of_seq(seq);
        self.entries
            .get(position)
            .is_some_and(|entry| entry.seq == seq)
    }

    /// The sequence number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Entries from position `from` on (for change-stream scans).
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = &Arc<Entry>> {
        self.entries.range(from.min(self.entries.len())..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ts: (u32, u32)) -> Entry {
        Entry {
            seq: 0,
            ts: Timestamp {
                time: ts.0,
                increment: ts.1,
            },
            wall: bson::DateTime::now(),
            db: "d".into(),
            coll: None,
            uuid: None,
            images: false,
            op: Op::Noop,
        }
    }

    #[test]
    fn tokens_sort_as_strings_in_stream_order() {
        let early = Token::event(
            &Entry {
                seq: 9,
                ..entry((5, 1))
            },
            false,
        );
        let hwm_same = Token::high_water_mark(Timestamp {
            time: 5,
            increment: 1,
        });
        let later = Token::event(
            &Entry {
                seq: 10,
                ..entry((5, 2))
            },
            false,
        );
        let invalidate = Token::event(
            &Entry {
                seq: 10,
                ..entry((5, 2))
            },
            true,
        );
        let data = |t: &Token| t.encode().get_str("_data").unwrap().to_string();
        assert!(data(&hwm_same) < data(&early));
        assert!(data(&early) < data(&later));
        assert!(data(&later) < data(&invalidate));
        assert!(hwm_same < early && early < later && later < invalidate);
        let decoded = Token::decode(&Bson::Document(later.encode())).unwrap();
        assert_eq!(decoded, later);
    }

    #[test]
    fn garbage_tokens_get_mongod_errors() {
        assert_eq!(
            Token::decode(&Bson::Document(doc! {"_data": 5}))
                .unwrap_err()
                .code,
            40647
        );
        assert_eq!(
            Token::decode(&Bson::Document(doc! {"_data": "zz"}))
                .unwrap_err()
                .code,
            9
        );
    }

    #[test]
    fn retention_truncates_and_reports_history_lost() {
        let mut log = Oplog::new(Some(2));
        for i in 1..=3 {
            log.append(entry((10, i)));
        }
        assert_eq!(log.len(), 2);
        assert!(log.history_lost_at(Timestamp {
            time: 10,
            increment: 1
        }));
        assert!(!log.history_lost_at(Timestamp {
            time: 10,
            increment: 2
        }));
    }
}
