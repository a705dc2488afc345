//! The texts of docgate's mails: the link mail a visitor gets, and the notice the document's
//! owner gets when a download completes.
//!
//! A translation replaces the strings below (and [`MONTHS`], the unit words and
//! [`DECIMAL_SEPARATOR`]); nothing else in docgate holds mail wording. Placeholders in braces are
//! filled by `crate::mail` through [`super::fill`]; each text's comment names them. The HTML
//! part escapes a text *before* filling it, so texts hold no markup and need no escaping, and the
//! plain-text and HTML parts always say the same thing.

/// The language of the mails, for the HTML part's `lang` attribute.
pub const LANG: &str = "en";

// ---------------------------------------------------------------------------------------------
// The link mail.

/// The default subject (`DOCGATE_MAIL_SUBJECT` replaces it). `{title}`: the document's title.
pub const SUBJECT: &str = "Your download link for {title}";

/// The first line.
pub const GREETING: &str = "Hello,";

/// `{document}`: [`DOCUMENT_WITH_SIZE`], or the bare title when the size is unknown.
pub const INTRO: &str = "Here is your link to download {document}.";

/// `{title}`, and `{size}`: [`size`]'s "1.2 MB".
pub const DOCUMENT_WITH_SIZE: &str = "{title} ({size})";

/// The button's label.
pub const BUTTON: &str = "Download the document";

/// `{when}`: [`EXPIRES_SAME_DAY`] or [`EXPIRES_OTHER_DAY`].
pub const EXPIRY: &str = "The link works once and expires {when}.";

/// `{lifetime}`: [`duration`]'s "15 minutes"; `{time}`: [`TIME`].
pub const EXPIRES_SAME_DAY: &str = "in {lifetime}, at {time}";

/// As [`EXPIRES_SAME_DAY`], when the link expires on another (UTC) day than the mail is sent;
/// `{date}`: [`DATE`].
pub const EXPIRES_OTHER_DAY: &str = "in {lifetime}, at {time} on {date}";

/// Above the link written out, in the HTML part (the plain-text part shows only the link).
pub const FALLBACK: &str = "If the button does not work, copy this address into your browser:";

/// Why the recipient got the mail. `{title}`: the document's title; `{site}`: the public host
/// (`docs.example.com`).
pub const WHY: &str = "Someone \u{2014} hopefully you \u{2014} asked for {title} at {site} with \
this address. If it wasn't you, ignore this mail; no more mail will be sent.";

// ---------------------------------------------------------------------------------------------
// The owner's notice of a completed download.

/// `{title}`: the document's title.
pub const NOTICE_SUBJECT: &str = "{title} was downloaded";

/// The notice's body (plain text). `{title}`, `{document}` (the catalog id), `{when}`
/// ([`NOTICE_WHEN`]), `{email}` (the address the link was mailed to, or [`NOTICE_NO_EMAIL`]),
/// `{ip}` (the downloading client's address), `{jti}` (the link's id, as in the request log) and
/// `{site}` (the public host).
pub const NOTICE_BODY: &str = "\
Hello,

{title} was downloaded completely.

Document: {title} ({document})
When: {when}
Link requested by: {email}
Downloaded from: {ip}
Link id: {jti}

The link is now spent.

You get this notice because {site} is set up to tell this address of every completed download.
";

/// In place of the address when none was kept for the link (e.g. it was made before owner
/// notices were turned on).
pub const NOTICE_NO_EMAIL: &str = "unknown";

/// `{date}`: [`DATE`]; `{time}`: [`TIME`].
pub const NOTICE_WHEN: &str = "{date} at {time}";

// ---------------------------------------------------------------------------------------------
// Dates, durations and sizes.

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
}
