//! `primitives`: the mimesis-like random values shared by the record
//! generators: random historical datetimes (mimesis `Datetime.datetime()`),
//! the purchase window walk (`random_date_in_range`), `#` masks and
//! two-decimal heights.
//!
//! Historical dates are anchored to a fixed instant, [`HISTORY_END`], rather
//! than to "now" like the Python connector: that keeps every generated value
//! (all but `updated_at` and `emitted_at`) a pure function of the seed, the
//! same on every day it runs.

use crate::calendar::{self, Timestamp, days_in_month};
use crate::rng::Rng;

/// First year of generated `created_at` dates (mimesis' default start).
pub const HISTORY_FIRST_YEAR: i64 = 2000;
/// Last year of generated `created_at` dates (the Python connector uses the
/// current year).
pub const HISTORY_LAST_YEAR: i64 = 2025;
/// The end of the purchase window: purchase dates walk from `created_at`
/// towards this instant (the Python connector walks towards "now"),
/// 2026-01-01T00:00:00.
pub const HISTORY_END: Timestamp = Timestamp {
    secs: 1_767_225_600,
    micros: 0,
};

/// A random datetime like mimesis `Datetime.datetime()`: year in
/// [`HISTORY_FIRST_YEAR`]`..=`[`HISTORY_LAST_YEAR`], then month, day,
/// hour, minute, second and microsecond, each uniform.
#[inline]
pub fn random_datetime(rng: &mut Rng) -> Timestamp {
    let y = rng.int_in(HISTORY_FIRST_YEAR, HISTORY_LAST_YEAR);
    let m = rng.int_in(1, 12) as u32;
    let d = rng.int_in(1, i64::from(days_in_month(y, m))) as u32;
    let h = rng.below(24) as u32;
    let mi = rng.below(60) as u32;
    let s = rng.below(60) as u32;
    let micros = rng.below(1_000_000) as u32;
    Timestamp::from_parts(y, m, d, h, mi, s, micros)
}

/// The Python `random_date_in_range(start)`: `start` plus a uniform number
/// of whole days between 0 and the days left until [`HISTORY_END`] (at
/// least 2), keeping the time of day.
#[inline]
pub fn random_date_in_range(rng: &mut Rng, start: Timestamp) -> Timestamp {
    let days = start.days_until(HISTORY_END).max(2);
    start.plus_days(rng.int_in(0, days))
}

/// Appends `mask` with every `#` replaced by a random digit (mimesis
/// `custom_code` / `telephone`).
#[inline]
pub fn push_mask(buf: &mut Vec<u8>, rng: &mut Rng, mask: &str) {
    for &b in mask.as_bytes() {
        if b == b'#' {
            buf.push(b'0' + rng.below(10) as u8);
        } else {
            buf.push(b);
        }
    }
}

/// Appends a uniform value in `[lo, hi)` with two decimals, like Python's
/// `f"{uniform(lo, hi):0.2f}"` (mimesis `Person.height()`).
#[inline]
pub fn push_two_decimals(buf: &mut Vec<u8>, rng: &mut Rng, lo: f64, hi: f64) {
    let v = lo + (hi - lo) * rng.unit();
    let hundredths = (v * 100.0).round().max(0.0) as u64;
    crate::messages::push_uint(buf, hundredths / 100);
    buf.push(b'.');
    let frac = hundredths % 100;
    buf.push(b'0' + (frac / 10) as u8);
    buf.push(b'0' + (frac % 10) as u8);
}

/// Appends a random historical datetime as `format_airbyte_time` text.
#[inline]
pub fn push_random_airbyte_time(buf: &mut Vec<u8>, rng: &mut Rng) {
    calendar::write_airbyte_time(buf, random_datetime(rng).secs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::days_from_civil;

    #[test]
    fn history_end_is_2026() {
        assert_eq!(
            HISTORY_END.secs,
            days_from_civil(2026, 1, 1) * calendar::SECS_PER_DAY
        );
    }

    #[test]
    fn datetimes_stay_in_range() {
        let mut rng = Rng::new(3);
        let lo = Timestamp::from_parts(2000, 1, 1, 0, 0, 0, 0);
        for _ in 0..10_000 {
            let t = random_datetime(&mut rng);
            assert!(t >= lo && t < HISTORY_END);
            let later = random_date_in_range(&mut rng, t);
            assert!(later >= t);
            assert!(later.secs <= HISTORY_END.secs + 2 * calendar::SECS_PER_DAY);
        }
    }

    #[test]
    fn masks_and_decimals() {
        let mut rng = Rng::new(9);
        let mut b = Vec::new();
        push_mask(&mut b, &mut rng, "(###) ###-####");
        assert_eq!(b.len(), 14);
        assert!(b.iter().enumerate().all(|(i, c)| match i {
            0 => *c == b'(',
            4 => *c == b')',
            5 => *c == b' ',
            9 => *c == b'-',
            _ => c.is_ascii_digit(),
        }));
        for _ in 0..1000 {
            b.clear();
            push_two_decimals(&mut b, &mut rng, 1.5, 2.0);
            let v: f64 = std::str::from_utf8(&b)
                .expect("utf8")
                .parse()
                .expect("number");
            assert!((1.5..=2.0).contains(&v) && b.len() == 4);
        }
    }
}
