//! Giving freed memory back to the system. The binary's allocator is
//! mimalloc (docs/decisions.md); these are its knobs, used by the binary at
//! start and by every async runtime it builds.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// `mi_option_purge_delay` in mimalloc.h (version 3, the one the `mimalloc`
/// crate builds; `libmimalloc-sys` names only version 2's options): how long
/// freed pages wait before they go back to the system (10 ms by default).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How often a worker thread that goes idle collects its heap.
const COLLECT_EVERY: Duration = Duration::from_millis(250);

/// Freed pages go back at once, unless `MIMALLOC_PURGE_DELAY` in the
/// environment says otherwise. Called by `main` before anything else.
pub fn purge_at_once() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option before other threads exist.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
}

thread_local! {
    static COLLECTED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// For tokio's `on_thread_park`: a worker going idle collects its heap (at
/// most every [`COLLECT_EVERY`]). A session's memory is often freed by
/// another thread than the one that allocated it (a task moves between
/// workers, an evicted session is dropped where its task last ran); such
/// pages wait in the owner's heap until it allocates there again, which an
/// idle server never does. Collecting frees them and, with the purge delay
/// at 0, gives them back to the system.
pub fn collect_when_idle() {
    COLLECTED.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_some_and(|t| now.duration_since(t) < COLLECT_EVERY)
        {
            return;
        }
        last.set(Some(now));
        // SAFETY: collects the calling thread's own heap.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

/// A multi-threaded tokio runtime builder whose idle workers collect
/// ([`collect_when_idle`]).
pub fn runtime_builder() -> tokio::runtime::Builder {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.enable_all().on_thread_park(collect_when_idle);
    b
}
