//! The in-memory store: keeps nothing. For tests and the demo; `serve`
//! says at start that nothing survives a restart with it.

use chrono::{DateTime, Utc};

use super::{Done, Page, Recovered, SessionRecord, Store, StoreError, Write};

/// A store that forgets everything (every write succeeds at once).
#[derive(Debug, Default)]
pub struct MemoryStore;

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
}
