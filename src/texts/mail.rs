//! The texts of docgate's mails: the link mail a visitor gets, and the notice the document's
//! owner gets when a download completes.
//!
//! A translation replaces the strings below (and [`MONTHS`], the unit words and
//! [`DECIMAL_SEPARATOR`]); nothing else in docgate holds mail wording. Placeholders in braces are
//! filled by the `mail` module through [`super::fill`]; each text's comment names them. The HTML
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

/// `{when}`: [`super::measures::EXPIRES_SAME_DAY`] or [`super::measures::EXPIRES_OTHER_DAY`].
pub const EXPIRY: &str = "The link works once and expires {when}.";

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

pub use super::measures::size;

/// The subject of the owner's mail asking for a decision. Placeholder: `{title}`.
pub const APPROVAL_SUBJECT: &str = "Approve a request for {title}?";

/// The owner's mail asking for a decision. Placeholders: `{email}` (who asks), `{title}`,
/// `{document}` (its catalog id), `{approve}` and `{decline}` (the one-click links), `{expires}`
/// (when the request stops waiting), `{site}`.
pub const APPROVAL_BODY: &str = "\
{email} asks for {title} ({document}).

Approve (the link is mailed to them):
{approve}

Decline:
{decline}

Each link opens a page where you confirm. The request waits until {expires}; after that it is
dropped and nothing is sent. You can also decide on the owner's page, with the admin API or with
`docgate approvals`.

{site}
";

/// The subject of the note to a person whose request was declined. Placeholder: `{title}`.
pub const DECLINE_SUBJECT: &str = "Your request for {title}";

/// The default note to a person whose request was declined (`DOCGATE_APPROVAL_DECLINE_TEXT`
/// replaces it; empty: no note). Placeholder: `{title}`.
pub const DECLINE_BODY: &str = "Thank you for your interest in {title}. The owner has decided not to share it with you at this time.";
