//! Durations and rates as operators write them (`30s`, `15m`, `2h`, `10/m`), and durations, times
//! and sizes as a person reads them ("15 minutes", "14:32 UTC", "1.2 MB").
//!
//! Parsing is strict: a unit is always required, and zero is refused where it would disable a
//! safety mechanism. The callers in `config` attach the variable name to any error.

use std::fmt;
use std::time::Duration;

/// Why a duration or rate could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnitError {
    #[error("expected a number followed by a unit (s, m, h or d), e.g. 15m")]
    Duration,
    #[error("expected N/s, N/m or N/h with N at least 1, e.g. 10/m")]
    Rate,
    #[error("must be greater than zero")]
    Zero,
}

/// Parses `30s`, `15m`, `2h` or `7d` into a [`Duration`]. Zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or(UnitError::Duration)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| UnitError::Duration)?;
    let seconds = match unit {
        "s" => Some(number),
        "m" => number.checked_mul(60),
        "h" => number.checked_mul(3600),
        "d" => number.checked_mul(86_400),
        _ => None,
    }
    .ok_or(UnitError::Duration)?;
    if seconds == 0 {
        return Err(UnitError::Zero);
    }
    Ok(Duration::from_secs(seconds))
}

/// A rate limit: at most `count` events per `period`, with bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many events the period allows.
    pub count: u32,
    /// The window the count applies to.
    pub period: Duration,
}

impl Rate {
    /// The steady-state spacing between two events (the GCRA emission interval).
    pub fn interval(&self) -> Duration {
        self.period / self.count
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.period.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Parses `N/s`, `N/m` or `N/h`.
pub fn parse_rate(text: &str) -> Result<Rate, UnitError> {
    let (count, unit) = text.trim().split_once('/').ok_or(UnitError::Rate)?;
    let count: u32 = count.trim().parse().map_err(|_| UnitError::Rate)?;
    if count == 0 {
        return Err(UnitError::Rate);
    }
    let period = match unit.trim() {
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(UnitError::Rate),
    };
    Ok(Rate { count, period })
}

/// "15 minutes", "1 hour", "2 hours 30 minutes", "45 seconds": how the lifetime of a link is
/// told to a person. Seconds are shown only when the duration is under a minute.
pub fn humanize(duration: Duration) -> String {
    fn unit(n: u64, one: &str, many: &str) -> String {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {many}")
        }
    }
    let secs = duration.as_secs();
    if secs < 60 {
        return unit(secs, "second", "seconds");
    }
    let days = secs / 86_400;
    let hours = secs % 86_400 / 3600;
    let minutes = secs % 3600 / 60;
    let parts: Vec<String> = [
        (days, "day", "days"),
        (hours, "hour", "hours"),
        (minutes, "minute", "minutes"),
    ]
    .into_iter()
    .filter(|(n, _, _)| *n > 0)
    .map(|(n, one, many)| unit(n, one, many))
    .collect();
    parts.join(" ")
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A moment as a person reads it: "14:32 UTC", with the date ("14:32 UTC on 25 November 2026")
/// when it is not the same UTC day as `now`. Both in seconds since the Unix epoch.
pub fn clock(at: u64, now: u64) -> String {
    use time::macros::format_description;
    let moment = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
    };
    let Some(when) = moment(at) else {
        return "an unknown time".to_owned();
    };
    let same_day = moment(now).is_some_and(|n| n.date() == when.date());
    let format = if same_day {
        format_description!("[hour]:[minute] UTC").to_vec()
    } else {
        format_description!("[hour]:[minute] UTC on [day padding:none] [month repr:long] [year]")
            .to_vec()
    };
    when.format(&format)
        .unwrap_or_else(|_| "an unknown time".to_owned())
}

/// A size as a person reads it, in decimal units as file managers show them: "840 bytes",
/// "312 KB", "1.2 MB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return if bytes == 1 {
            "1 byte".to_owned()
        } else {
            format!("{bytes} bytes")
        };
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration(" 5m "), Ok(Duration::from_secs(300)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in [
            "",
            "15",
            "m",
            "15x",
            "-5m",
            "1.5h",
            "15 m",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), Err(UnitError::Duration), "{bad:?}");
        }
        assert_eq!(parse_duration("0s"), Err(UnitError::Zero));
    }

    #[test]
    fn rates_parse() {
        let rate = parse_rate("10/m").unwrap();
        assert_eq!(rate.count, 10);
        assert_eq!(rate.period, Duration::from_secs(60));
        assert_eq!(rate.interval(), Duration::from_secs(6));
        assert_eq!(rate.to_string(), "10/m");
        assert_eq!(parse_rate("3/h").unwrap().to_string(), "3/h");
        for bad in ["10", "0/m", "10/d", "x/m", "10/", "/m", "-1/s"] {
            assert_eq!(parse_rate(bad), Err(UnitError::Rate), "{bad:?}");
        }
    }

    #[test]
    fn humanized_durations_read_naturally() {
        assert_eq!(humanize(Duration::from_secs(900)), "15 minutes");
        assert_eq!(humanize(Duration::from_secs(60)), "1 minute");
        assert_eq!(humanize(Duration::from_secs(3600)), "1 hour");
        assert_eq!(humanize(Duration::from_secs(9000)), "2 hours 30 minutes");
        assert_eq!(humanize(Duration::from_secs(45)), "45 seconds");
        assert_eq!(humanize(Duration::from_secs(1)), "1 second");
        assert_eq!(humanize(Duration::from_secs(86_400 + 60)), "1 day 1 minute");
    }

    #[test]
    fn times_read_as_a_clock_with_the_date_when_not_today() {
        // 2026-11-24 14:32:00 UTC
        let at = 1_795_530_720;
        assert_eq!(clock(at, at - 900), "14:32 UTC");
        assert_eq!(clock(at + 86_400, at), "14:32 UTC on 25 November 2026");
    }

    #[test]
    fn sizes_read_in_decimal_units() {
        assert_eq!(size(0), "0 bytes");
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(999), "999 bytes");
        assert_eq!(size(1000), "1.0 KB");
        assert_eq!(size(307_200), "307 KB");
        assert_eq!(size(1_234_567), "1.2 MB");
        assert_eq!(size(999_999), "1.0 MB");
        assert_eq!(size(25_165_824), "25 MB");
        assert_eq!(size(3_000_000_000), "3.0 GB");
    }
}
