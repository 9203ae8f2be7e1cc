//! The runtime's time: the system clock, or a [`ManualClock`] that moves
//! only when told.
//!
//! Sessions read "now" and sleep until their next deadline (a menu timeout,
//! a `wait`, a `keepAlive`, the answer rule, the idle reaper) through
//! [`Time`], never through the system clock directly. In production that is
//! the system clock, read through tokio's (so that a test's paused tokio
//! time drives it too). With a [`ManualClock`] a test moves time itself:
//! tests over real HTTP (the end-to-end tests against `sim-graph`) advance
//! the runtime's clock and sim-graph's together, from one deadline to the
//! next, once nothing is in flight, so that a two-hour meeting runs in
//! milliseconds and a flow's timeout never races a network round trip.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

/// Which clock a [`Runtime`](super::Runtime) runs on.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock (production).
    #[default]
    System,
    /// A clock that moves only when told (tests, simulations).
    Manual(ManualClock),
}

/// A clock that moves only when told, shared by its clones.
///
/// Besides "now", it knows every sleeper: when the earliest one is due
/// ([`ManualClock::next_deadline`]) and how many have been woken and are
/// still busy with what woke them ([`ManualClock::woken`]). A driver that
/// advances it only when the runtime is idle
/// ([`Runtime::is_idle`](super::Runtime::is_idle)) sees every deadline in
/// order.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

struct ManualInner {
    now: watch::Sender<DateTime<Utc>>,
    /// Registered sleepers: (deadline, serial). A sleeper stays registered
    /// until the task it woke has finished with it (its [`Wake`] dropped).
    sleepers: Mutex<BTreeSet<(DateTime<Utc>, u64)>>,
    serial: AtomicU64,
}

impl ManualInner {
    fn sleepers(&self) -> MutexGuard<'_, BTreeSet<(DateTime<Utc>, u64)>> {
        self.sleepers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .field("sleepers", &self.inner.sleepers().len())
            .finish()
    }
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                now: watch::Sender::new(start),
                sleepers: Mutex::new(BTreeSet::new()),
                serial: AtomicU64::new(0),
            }),
        }
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        *self.inner.now.borrow()
    }

    /// Moves the clock to `at` (never backwards) and wakes every sleeper due by then.
    pub fn advance_to(&self, at: DateTime<Utc>) {
        self.inner.now.send_if_modified(|now| {
            if at > *now {
                *now = at;
                true
            } else {
                false
            }
        });
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        self.advance_to(self.now().checked_add_signed(by).unwrap_or(self.now()));
    }

    /// The earliest deadline anyone sleeps until (due or not).
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        self.inner.sleepers().first().map(|(at, _)| *at)
    }

    /// How many sleepers are due and still busy with what woke them.
    pub fn woken(&self) -> usize {
        let now = self.now();
        self.inner
            .sleepers()
            .iter()
            .take_while(|(at, _)| *at <= now)
            .count()
    }

    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        let serial = self.inner.serial.fetch_add(1, Ordering::Relaxed);
        self.inner.sleepers().insert((at, serial));
        let registration = Registration {
            clock: Arc::clone(&self.inner),
            key: (at, serial),
        };
        let mut now = self.inner.now.subscribe();
        Box::pin(async move {
            if now.wait_for(|now| *now >= at).await.is_err() {
                // The clock is gone: nothing will ever be due.
                std::future::pending::<()>().await;
            }
            Wake(Some(registration))
        })
    }
}

/// A sleeper's place in a [`ManualClock`], removed when dropped.
struct Registration {
    clock: Arc<ManualInner>,
    key: (DateTime<Utc>, u64),
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.clock.sleepers().remove(&self.key);
    }
}

/// What a [`Sleep`] gives when it is due: keep it while handling the
/// deadline, so that a manual clock counts the task as busy until then.
pub(super) struct Wake(#[allow(dead_code)] Option<Registration>);

/// Sleeping until a deadline.
pub(super) type Sleep = Pin<Box<dyn Future<Output = Wake> + Send>>;

/// The runtime's time source.
pub(super) enum Time {
    System {
        base_utc: DateTime<Utc>,
        base: Instant,
    },
    Manual(ManualClock),
}

impl Time {
    pub(super) fn new(clock: &Clock) -> Self {
        match clock {
            Clock::System => Time::System {
                base_utc: Utc::now(),
                base: Instant::now(),
            },
            Clock::Manual(m) => Time::Manual(m.clone()),
        }
    }

    /// Now, as the engine sees it.
    pub(super) fn now(&self) -> DateTime<Utc> {
        match self {
            Time::System { base_utc, base } => {
                let elapsed = Instant::now().saturating_duration_since(*base);
                *base_utc + chrono::Duration::from_std(elapsed).unwrap_or_default()
            }
            Time::Manual(m) => m.now(),
        }
    }

    /// Sleeps until `at`. With a manual clock the sleeper is registered
    /// now, before the future is first polled.
    pub(super) fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        match self {
            Time::System { base_utc, base } => {
                let since = (at - *base_utc).to_std().unwrap_or_default();
                let instant = base.checked_add(since).unwrap_or_else(far_future);
                Box::pin(async move {
                    tokio::time::sleep_until(instant).await;
                    Wake(None)
                })
            }
            Time::Manual(m) => m.sleep_until(at),
        }
    }

    /// Sleepers woken and still busy (always 0 on the system clock).
    pub(super) fn woken(&self) -> usize {
        match self {
            Time::System { .. } => 0,
            Time::Manual(m) => m.woken(),
        }
    }
}

/// About thirty years from now: "never", as a tokio instant.
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("a date")
            .with_timezone(&Utc)
    }

    #[tokio::test]
    async fn a_manual_sleeper_wakes_when_advanced_and_counts_until_done() {
        let clock = ManualClock::new(at("2026-11-20T09:00:00Z"));
        let time = Time::new(&Clock::Manual(clock.clone()));
        let sleep = time.sleep_until(at("2026-11-20T09:00:10Z"));
        assert_eq!(clock.next_deadline(), Some(at("2026-11-20T09:00:10Z")));
        assert_eq!(clock.woken(), 0);
        let task = tokio::spawn(sleep);
        clock.advance(std::time::Duration::from_secs(5));
        assert_eq!(clock.woken(), 0);
        clock.advance(std::time::Duration::from_secs(5));
        let wake = task.await.expect("woken");
        assert_eq!(clock.woken(), 1, "busy until the wake is dropped");
        drop(wake);
        assert_eq!(clock.woken(), 0);
        assert_eq!(clock.next_deadline(), None);
    }

    #[test]
    fn a_dropped_sleeper_is_forgotten_and_time_never_goes_back() {
        let clock = ManualClock::new(at("2026-11-20T09:00:00Z"));
        let time = Time::new(&Clock::Manual(clock.clone()));
        drop(time.sleep_until(at("2026-11-20T10:00:00Z")));
        assert_eq!(clock.next_deadline(), None);
        clock.advance_to(at("2026-11-20T08:00:00Z"));
        assert_eq!(clock.now(), at("2026-11-20T09:00:00Z"));
        assert_eq!(time.now(), at("2026-11-20T09:00:00Z"));
    }
}
