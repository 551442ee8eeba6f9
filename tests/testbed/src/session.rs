//! Retryable writes: the reply of each `(lsid, txnNumber)` is remembered, so a retry
//! after a lost reply returns the original outcome instead of applying twice.

use std::collections::HashMap;

use bson::{Bson, Document};

/// Sessions remembered at most; the oldest are forgotten first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Default)]
pub struct RetryCache {
    by_session: HashMap<Vec<u8>, (i64, Document)>,
    order: std::collections::VecDeque<Vec<u8>>,
}

pub fn session_key(lsid: &Bson) -> Option<Vec<u8>> {
    match lsid {
        Bson::Document(document) => match document.get("id") {
            Some(Bson::Binary(binary)) => Some(binary.bytes.clone()),
            _ => None,
        },
        _ => None,
    }
}

pub enum Lookup {
    Fresh,
    Replay(Document),
    TooOld(i64),
}

impl RetryCache {
    pub fn lookup(&self, session: &[u8], txn_number: i64) -> Lookup {
        match self.by_session.get(session) {
            Some((latest, reply)) if *latest == txn_number => Lookup::Replay(reply.clone()),
            Some((latest, _)) if *latest > txn_number => Lookup::TooOld(*latest),
            _ => Lookup::Fresh,
        }
    }

    pub fn remember(&mut self, session: Vec<u8>, txn_number: i64, reply: Document) {
        if !self.by_session.contains_key(&session) {
            self.order.push_back(session.clone());
            if self.order.len() > MAX_SESSIONS {
                if let Some(oldest) = self.order.pop_front() {
                    self.by_session.remove(&oldest);
                }
            }
        }
        self.by_session.insert(session, (txn_number, reply));
    }

    pub fn forget(&mut self, session: &[u8]) {
        self.by_session.remove(session);
    }
}
