//! `calendar`: proleptic-Gregorian date arithmetic on naive UTC timestamps,
//! and the two text forms the faker writes, done by hand (no date crate).
//!
//! - [`write_airbyte_time`]: `2024-04-08T18:07:20+00:00`, the Python
//!   connector's `format_airbyte_time` (microseconds dropped, `+00:00`
//!   appended).
//! - [`write_iso_micros`]: `2001-01-05T21:37:30.796635`, Python's
//!   `datetime.isoformat()` of a naive datetime (the fraction is left out
//!   when it is zero), which the real connector writes for
//!   `purchases.created_at`.

/// Seconds in a day.
pub const SECS_PER_DAY: i64 = 86_400;

/// A naive (zone-less, read as UTC) instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00.
    pub secs: i64,
    /// Microseconds within the second, `0..1_000_000`.
    pub micros: u32,
}

impl Timestamp {
    /// The instant at `y-m-d h:mi:s.micros`.
    pub fn from_parts(y: i64, m: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> Self {
        Self {
            secs: days_from_civil(y, m, d) * SECS_PER_DAY
                + i64::from(h) * 3600
                + i64::from(mi) * 60
                + i64::from(s),
            micros,
        }
    }

    /// The same instant `days` days later.
    pub fn plus_days(self, days: i64) -> Self {
        Self {
            secs: self.secs + days * SECS_PER_DAY,
            micros: self.micros,
        }
    }

    /// Whole days from `self` to the later `end`, rounded down like Python's
    /// `timedelta.days` (negative when `end` is earlier).
    pub fn days_until(self, end: Timestamp) -> i64 {
        let micros =
            (end.secs - self.secs) * 1_000_000 + i64::from(end.micros) - i64::from(self.micros);
        micros.div_euclid(SECS_PER_DAY * 1_000_000)
    }
}

/// Whether `y` is a Gregorian leap year.
pub fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The number of days of month `m` (1..=12) of year `y`.
pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the date `y-m-d` (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(y, m, d)` of `days` days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends `v` as exactly `width` decimal digits (zero-padded, truncated on
/// the left if too long).
#[inline]
fn push_digits(buf: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut v = v;
    for slot in tmp[..width].iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&tmp[..width]);
}

/// Appends `YYYY-MM-DDTHH:MM:SS` for `secs` since the epoch.
fn push_date_time(buf: &mut Vec<u8>, secs: i64) {
    let days = secs.div_euclid(SECS_PER_DAY);
    let sod = secs.rem_euclid(SECS_PER_DAY) as u64;
    let (y, m, d) = civil_from_days(days);
    push_digits(buf, y.max(0) as u64, 4);
    buf.push(b'-');
    push_digits(buf, u64::from(m), 2);
    buf.push(b'-');
    push_digits(buf, u64::from(d), 2);
    buf.push(b'T');
    push_digits(buf, sod / 3600, 2);
    buf.push(b':');
    push_digits(buf, sod / 60 % 60, 2);
    buf.push(b':');
    push_digits(buf, sod % 60, 2);
}

/// Appends the connector's `format_airbyte_time` form:
/// `YYYY-MM-DDTHH:MM:SS+00:00`.
pub fn write_airbyte_time(buf: &mut Vec<u8>, secs: i64) {
    push_date_time(buf, secs);
    buf.extend_from_slice(b"+00:00");
}

/// Appends Python's naive `isoformat()`: `YYYY-MM-DDTHH:MM:SS.ffffff`, or
/// without the fraction when the microseconds are zero.
pub fn write_iso_micros(buf: &mut Vec<u8>, ts: Timestamp) {
    push_date_time(buf, ts.secs);
    if ts.micros != 0 {
        buf.push(b'.');
        push_digits(buf, u64::from(ts.micros), 6);
    }
}

/// [`write_airbyte_time`] into a new `String`.
pub fn airbyte_time(secs: i64) -> String {
    let mut buf = Vec::with_capacity(25);
    write_airbyte_time(&mut buf, secs);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn formats_like_python() {
        let ts = Timestamp::from_parts(2001, 1, 5, 21, 37, 30, 796_635);
        let mut buf = Vec::new();
        write_iso_micros(&mut buf, ts);
        assert_eq!(buf, b"2001-01-05T21:37:30.796635");
        buf.clear();
        write_iso_micros(&mut buf, Timestamp { micros: 0, ..ts });
        assert_eq!(buf, b"2001-01-05T21:37:30");
        assert_eq!(airbyte_time(ts.secs), "2001-01-05T21:37:30+00:00");
        assert_eq!(airbyte_time(1_795_600_668), "2026-11-25T09:57:48+00:00");
    }

    #[test]
    fn days_until_floors() {
        let a = Timestamp::from_parts(2020, 1, 1, 12, 0, 0, 0);
        assert_eq!(
            a.days_until(Timestamp::from_parts(2020, 1, 3, 11, 59, 59, 0)),
            1
        );
        assert_eq!(
            a.days_until(Timestamp::from_parts(2020, 1, 3, 12, 0, 0, 0)),
            2
        );
        assert_eq!(
            a.days_until(Timestamp::from_parts(2020, 1, 1, 11, 0, 0, 0)),
            -1
        );
        assert_eq!(a.plus_days(2).secs - a.secs, 2 * SECS_PER_DAY);
    }
}
