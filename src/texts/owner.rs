//! The words of the owner's page on the admin listener (`http::owner`, `pages::owner`).

pub const LOGIN_TITLE: &str = "docgate: sign in";
pub const LOGIN_INTRO: &str =
    "Enter the admin token (DOCGATE_ADMIN_TOKEN) to see who asked for your documents.";
pub const LOGIN_TOKEN: &str = "Admin token";
pub const LOGIN_BUTTON: &str = "Sign in";
pub const LOGIN_WRONG: &str = "That is not the admin token.";
pub const LOGIN_HINT: &str =
    "The session lasts 12 hours on this browser. Changing the admin token signs everyone out.";

pub const TITLE: &str = "Your documents";
pub const LOGOUT: &str = "Sign out";

pub const FUNNEL_HEADING: &str = "Requests per document";
pub const FUNNEL_INTRO: &str = "Each request is counted on the day it was made, at every stage its link reached: asked, mailed, opened, downloaded.";
pub const FUNNEL_PARTIAL: &str =
    "The log holds more than the chart reads: the oldest days are undercounted.";
pub const STAGE_ASKED: &str = "Asked";
pub const STAGE_MAILED: &str = "Mailed";
pub const STAGE_OPENED: &str = "Opened";
pub const STAGE_DOWNLOADED: &str = "Downloaded";
pub const FUNNEL_PERIOD: &str = "{first} to {last}";
/// The chart's accessible name: `{document}`, `{asked}`, `{mailed}`, `{opened}`, `{downloaded}`.
pub const CHART_LABEL: &str = "{document}, per day: {asked} asked, {mailed} mailed, {opened} opened, {downloaded} downloaded in all";

pub const LOG_HEADING: &str = "Request log";
pub const SEARCH_EMAIL: &str = "Address";
pub const SEARCH_DOCUMENT: &str = "Document";
pub const SEARCH_ANY: &str = "Every document";
pub const SEARCH_BUTTON: &str = "Search";
pub const SEARCH_CLEAR: &str = "Show everything";
pub const LOG_EMPTY: &str = "No request matches.";
pub const NEWER: &str = "Newer";
pub const OLDER: &str = "Older";
pub const NO_ADDRESS: &str = "(no address)";

pub const OUTCOME_SENT: &str = "Link mailed";
pub const OUTCOME_ADMIN_SENT: &str = "Link mailed by an operator";
pub const OUTCOME_ADMIN_MINTED: &str = "Link made by an operator";
pub const OUTCOME_ADDRESS_LIMIT: &str = "Not mailed: the address asked too often";
pub const OUTCOME_DOMAIN_LIMIT: &str = "Not mailed: the domain asked too often";
pub const OUTCOME_DOMAIN_REFUSED: &str = "Not mailed: the document refuses this domain";
pub const OUTCOME_DOMAIN_NOT_ALLOWED: &str =
    "Not mailed: the domain is not one the document allows";

pub const LINK_LIVE: &str = "Link usable";
pub const LINK_DOWNLOADED: &str = "Downloaded {at}";
pub const LINK_GONE: &str = "Link no longer usable (expired, used up or revoked)";
pub const LINK_UNKNOWN: &str = "Link state unknown (the store did not answer)";
/// A watermarked document's latest download of the link.
pub const STAMP_STAMPED: &str = "copy stamped with their address";
pub const STAMP_UNSTAMPED: &str = "served unstamped: the PDF could not be stamped";
pub const STAMP_REFUSED: &str = "download refused: the PDF could not be stamped";
/// `{n}`: how many times the link was opened without a download.
pub const LINK_OPENED: &str = "opened {n}×";
pub const REVOKE: &str = "Revoke link";

pub const PERSON_HEADING: &str = "This person";
pub const REVOKE_ALL: &str = "Revoke all their links";
pub const EXPORT: &str = "Export their data (JSON)";
pub const ERASE: &str = "Erase their data…";
pub const ERASE_TITLE: &str = "Erase this person's data?";
pub const ERASE_CONFIRM_TEXT: &str = "Every request log entry of {email} is deleted: their requests, and the opens and downloads of their links. This cannot be undone. Their links stay usable: revoke them first if they should not.";
pub const ERASE_CONFIRM: &str = "Erase for good";
pub const CANCEL: &str = "Cancel";

pub const DONE_REVOKED: &str = "The link is revoked: it no longer downloads.";
pub const DONE_NOT_REVOKED: &str = "That link was already unusable: nothing changed.";
pub const DONE_REVOKED_ALL: &str = "{n} usable links revoked.";
pub const DONE_ERASED: &str = "{n} entries erased.";
pub const DONE_APPROVED: &str = "Approved: the link is on its way.";
pub const DONE_DECLINED: &str = "Declined.";
pub const DONE_NOT_DECIDED: &str =
    "That request was already decided, or it expired: nothing changed.";
pub const PENDING_HEADING: &str = "Waiting for your approval";
/// A pending request. `{email}`, `{document}` (its title).
pub const PENDING_ASKS: &str = "{email} asks for {document}";
pub const APPROVE: &str = "Approve";
pub const DECLINE: &str = "Decline";
pub const OUTCOME_PENDING: &str = "Waiting for your approval";
pub const OUTCOME_APPROVED: &str = "Approved: link mailed";
pub const OUTCOME_DECLINED: &str = "Declined";
pub const DONE_SIGNED_OUT: &str = "Signed out.";

pub const STALE_FORM: &str =
    "This form has expired or came from another page. Reload the owner's page and try again.";
