//! The in-memory store: keeps nothing but the ring groups' turn counters,
//! for as long as the process lives. For tests and the demo; `serve` says
//! at start that nothing survives a restart with it.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{Done, Page, Recovered, SessionRecord, Store, StoreError, Taken, Write};

/// A store that forgets everything (every write succeeds at once) but the
/// turn counters, which live in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    turns: Mutex<HashMap<String, u64>>,
}

impl Store for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn durable(&self) -> bool {
        false
    }

    fn write(&self, _writes: Vec<Write>) -> Done {
        Box::pin(std::future::ready(Ok(())))
    }

    fn recover(&self) -> Result<Recovered, StoreError> {
        Ok(Recovered::default())
    }

    fn flow_source(&self, _hash: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(None)
    }

    fn session(&self, _id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(None)
    }

    fn recording(&self, _id: &str) -> Result<Vec<(DateTime<Utc>, String)>, StoreError> {
        Ok(Vec::new())
    }

    fn ended(&self, _offset: usize, _limit: usize) -> Result<Page, StoreError> {
        Ok(Page::default())
    }

    fn take_turn(&self, group: &str) -> Taken {
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = turns.entry(group.to_owned()).or_insert(0);
        let turn = *count;
        *count += 1;
        Box::pin(std::future::ready(Ok(turn)))
    }
}
