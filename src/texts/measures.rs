//! Times, durations and sizes as a person reads them ("in 15 minutes, at 14:32 UTC", "1.2 MB"),
//! for the mails and the pages alike.

use time::OffsetDateTime;

use super::fill;

/// When a link expires, counted from now: `{lifetime}` ("15 minutes") and `{time}` ("14:32
/// UTC"), with `{date}` when it is another UTC day.
pub const EXPIRES_SAME_DAY: &str = "in {lifetime}, at {time}";
pub const EXPIRES_OTHER_DAY: &str = "in {lifetime}, at {time} on {date}";

/// `{hour}` and `{minute}`, two digits each, in UTC.
pub const TIME: &str = "{hour}:{minute} UTC";

/// `{day}` (no leading zero), `{month}` (from [`MONTHS`]), `{year}`.
pub const DATE: &str = "{day} {month} {year}";

pub const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Singular and plural of each unit of [`duration`].
const DAYS: (&str, &str) = ("day", "days");
const HOURS: (&str, &str) = ("hour", "hours");
const MINUTES: (&str, &str) = ("minute", "minutes");
const SECONDS: (&str, &str) = ("second", "seconds");
/// Between the parts of a duration: "2 hours 30 minutes".
const DURATION_JOIN: &str = " ";

/// "15 minutes", "1 hour", "2 hours 30 minutes", "45 seconds": a lifetime as a person reads it.
/// Seconds are shown only under a minute; otherwise the duration is rounded to the nearest
/// minute.
pub fn duration(secs: u64) -> String {
    let unit = |n: u64, (one, many): (&str, &str)| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    };
    if secs < 60 {
        return unit(secs, SECONDS);
    }
    let minutes_total = secs.saturating_add(30) / 60;
    let parts: Vec<String> = [
        (minutes_total / 1440, DAYS),
        (minutes_total % 1440 / 60, HOURS),
        (minutes_total % 60, MINUTES),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, words)| unit(n, words))
    .collect();
    parts.join(DURATION_JOIN)
}

/// Units of [`size`], in steps of 1000 (SI, as mail clients and file managers show sizes).
const BYTE: (&str, &str) = ("byte", "bytes");
const SIZE_UNITS: [&str; 4] = ["kB", "MB", "GB", "TB"];
/// The decimal separator of "1.2 MB".
pub const DECIMAL_SEPARATOR: &str = ".";

/// "1.2 MB", "307 kB", "512 bytes": a document's size as a person reads it. One decimal below
/// 100 of a unit, none from 100.
pub fn size(bytes: u64) -> String {
    if bytes < 1000 {
        let (one, many) = BYTE;
        return if bytes == 1 {
            format!("1 {one}")
        } else {
            format!("{bytes} {many}")
        };
    }
    // Tenths of the unit, in integers: exact, and no float formatting to localise.
    let mut unit = 0usize;
    let mut divisor: u64 = 1000;
    while unit + 1 < SIZE_UNITS.len() && bytes.saturating_add(divisor / 2) / divisor >= 1000 {
        unit += 1;
        divisor = divisor.saturating_mul(1000);
    }
    let tenths = bytes.saturating_add(divisor / 20) / (divisor / 10);
    if tenths < 1000 {
        format!(
            "{}{DECIMAL_SEPARATOR}{} {}",
            tenths / 10,
            tenths % 10,
            SIZE_UNITS[unit]
        )
    } else {
        format!(
            "{} {}",
            bytes.saturating_add(divisor / 2) / divisor,
            SIZE_UNITS[unit]
        )
    }
}

/// "in 15 minutes, at 14:32 UTC", with "on 25 November 2026" when the link expires on another
/// UTC day than `now`.
pub fn expires(exp: u64, now: u64) -> String {
    let lifetime = duration(exp.saturating_sub(now));
    let (time, date) = clock(exp);
    let (_, today) = clock(now);
    if date == today {
        fill(
            EXPIRES_SAME_DAY,
            &[("lifetime", &lifetime), ("time", &time)],
        )
    } else {
        fill(
            EXPIRES_OTHER_DAY,
            &[("lifetime", &lifetime), ("time", &time), ("date", &date)],
        )
    }
}

/// The time ("14:32 UTC") and date ("24 November 2026") of `secs` since the epoch, in UTC.
pub fn clock(secs: u64) -> (String, String) {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let time = fill(
        TIME,
        &[
            ("hour", &format!("{:02}", at.hour())),
            ("minute", &format!("{:02}", at.minute())),
        ],
    );
    let month = MONTHS
        .get(usize::from(u8::from(at.month())).saturating_sub(1))
        .copied()
        .unwrap_or_default();
    let date = fill(
        DATE,
        &[
            ("day", &at.day().to_string()),
            ("month", month),
            ("year", &at.year().to_string()),
        ],
    );
    (time, date)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(900), "15 minutes");
        assert_eq!(duration(899), "15 minutes");
        assert_eq!(duration(60), "1 minute");
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(9000), "2 hours 30 minutes");
        assert_eq!(duration(45), "45 seconds");
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(2 * 86_400), "2 days");
        assert_eq!(duration(86_400 + 60), "1 day 1 minute");
    }

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(999), "999 bytes");
        assert_eq!(size(1000), "1.0 kB");
        assert_eq!(size(1_234_567), "1.2 MB");
        assert_eq!(size(300 * 1024), "307 kB");
        assert_eq!(size(99_940), "99.9 kB");
        assert_eq!(size(99_960), "100 kB");
        assert_eq!(size(999_600), "1.0 MB");
        assert_eq!(size(24 * 1024 * 1024), "25.2 MB");
        assert_eq!(size(5_000_000_000), "5.0 GB");
        assert_eq!(size(u64::MAX), "18446744 TB");
    }

    #[test]
    fn times_read_as_a_clock_and_expiries_with_the_date_when_not_today() {
        // 2026-11-24 14:32:00 UTC
        const EXP: u64 = 1_795_530_720;
        assert_eq!(
            clock(EXP),
            ("14:32 UTC".to_owned(), "24 November 2026".to_owned())
        );
        assert_eq!(expires(EXP, EXP - 900), "in 15 minutes, at 14:32 UTC");
        assert_eq!(
            expires(EXP, EXP - 15 * 3600),
            "in 15 hours, at 14:32 UTC on 24 November 2026"
        );
    }
}
