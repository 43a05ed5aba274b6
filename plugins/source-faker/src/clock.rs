//! `clock`: the wall clock as the connector sees it: `emitted_at`
//! milliseconds, float milliseconds for stream-status traces, and the
//! `updated_at` text of the current second (formatted once per second, not
//! once per record). A fixed clock makes whole outputs reproducible in tests.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::calendar;

/// Where "now" comes from.
#[derive(Debug, Clone)]
pub struct Clock {
    /// `Some(ms)`: always this instant (tests); `None`: the system clock.
    fixed_ms: Option<i64>,
    /// The second `text` was formatted for.
    cached_sec: i64,
    /// `format_airbyte_time` of `cached_sec`.
    text: Vec<u8>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self::with(None)
    }

    /// A clock stopped at `ms` milliseconds since the epoch.
    pub fn fixed(ms: i64) -> Self {
        Self::with(Some(ms))
    }

    fn with(fixed_ms: Option<i64>) -> Self {
        let mut clock = Self {
            fixed_ms,
            cached_sec: i64::MIN,
            text: Vec::with_capacity(25),
        };
        clock.tick();
        clock
    }

    /// Now, in microseconds since the epoch.
    fn now_micros(&self) -> i64 {
        match self.fixed_ms {
            Some(ms) => ms.saturating_mul(1000),
            None => match SystemTime::now().duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
            },
        }
    }

    /// Now, in whole milliseconds since the epoch (a RECORD's `emitted_at`).
    pub fn now_ms(&self) -> i64 {
        self.now_micros().div_euclid(1000)
    }

    /// Now, in fractional milliseconds (a STREAM_STATUS trace's
    /// `emitted_at`, a float in the Python CDK).
    pub fn now_ms_f64(&self) -> f64 {
        self.now_micros() as f64 / 1000.0
    }

    /// Reads the clock, refreshes [`Clock::airbyte_time`] if the second
    /// changed, and returns now in milliseconds.
    #[inline]
    pub fn tick(&mut self) -> i64 {
        let ms = self.now_ms();
        let sec = ms.div_euclid(1000);
        if sec != self.cached_sec {
            self.cached_sec = sec;
            self.text.clear();
            calendar::write_airbyte_time(&mut self.text, sec);
        }
        ms
    }

    /// `format_airbyte_time(now)` as of the last [`Clock::tick`], e.g.
    /// `2026-11-25T09:57:48+00:00`.
    #[inline]
    pub fn airbyte_time(&self) -> &[u8] {
        &self.text
    }
}
