//! Durations and rates as operators write them (`30s`, `15m`, `2h`, `10/m`), and the clock. How a
//! person reads durations, times and sizes is in `texts::measures`.
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

/// `secs` since the Unix epoch as RFC 3339, UTC; `None` past what a date can hold.
pub fn rfc3339(secs: u64) -> Option<String> {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    at.format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_as_rfc3339_utc_or_none_past_any_date() {
        assert_eq!(rfc3339(0).as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            rfc3339(1_764_900_000).as_deref(),
            Some("2025-12-05T02:00:00Z")
        );
        assert_eq!(rfc3339(u64::MAX), None);
    }

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
}
