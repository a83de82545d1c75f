//! The time the domain reads: the system clock, which a test can move
//! forward instead of editing rows to make something expire.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Unix seconds, shared by every copy: moving one moves all of them.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// Seconds added to the system time; zero unless a test moved the clock.
    moved_by: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.now_utc().timestamp()
    }

    /// The time as a date, to the sub-second.
    pub fn now_utc(&self) -> DateTime<Utc> {
        let moved_by = TimeDelta::seconds(self.moved_by.load(Ordering::Relaxed));
        Utc::now().checked_add_signed(moved_by).unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Moves this clock, and every copy of it, forward by `by`.
    pub fn advance(&self, by: Duration) {
        let seconds = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.moved_by.fetch_add(seconds, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Clock;

    #[test]
    fn advancing_moves_every_copy() {
        let clock = Clock::system();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(Duration::from_secs(3_600));
        assert!(copy.now() >= before + 3_600);
        assert!(copy.now() < before + 3_700);
    }
}
