//! What the pages and the API's messages say. Placeholders are filled by small functions, so a
//! translation changes words, not code.

/// The `lang` of every page.
pub const LANG: &str = "en";

// --- The request form ---------------------------------------------------------------------

pub const FORM_TITLE: &str = "Request a document";
/// Names the one document a `/request/{document}` form is for.
pub fn form_heading(title: &str) -> String {
    format!("Get “{title}”")
}
pub const FORM_INTRO: &str =
    "Enter your email address and we'll send you a download link. The link works once.";
pub const FORM_DOCUMENT: &str = "Document";
pub const FORM_EMAIL: &str = "Email address";
pub const FORM_EMAIL_HINT: &str = "The link goes to this address only.";
pub const FORM_NAME: &str = "Your name";
pub const FORM_COMPANY: &str = "Company";
pub const FORM_OPTIONAL: &str = "(optional)";
/// The consent checkbox's label; the privacy notice is linked after it.
pub const FORM_CONSENT: &str = "I agree that my address and the details above are stored to send me this link and to let the owner know who asked.";
pub const FORM_PRIVACY_LINK: &str = "Privacy notice";
pub const FORM_SUBMIT: &str = "Email me the link";
pub const FORM_SENDING: &str = "Sending…";
/// Shown by the form's script when the service cannot be reached.
pub const FORM_NETWORK_ERROR: &str =
    "The request could not be sent. Check your connection and try again.";
/// The `202` answer, naming the link's real lifetime.
pub fn request_sent(lifetime: &str) -> String {
    format!("Check your inbox: the link expires in {lifetime}.")
}
pub const SENT_TITLE: &str = "Check your inbox";
/// The "check your inbox" page's first sentence, naming the link's real lifetime.
pub fn sent_body(lifetime: &str) -> String {
    format!("We've emailed you a download link. It works once and expires in {lifetime}.")
}
pub const SENT_HINT: &str =
    "If nothing arrives within a few minutes, look in your spam folder, or ask again.";
pub const SENT_AGAIN: &str = "Ask for another document";
/// The `202` answer for a document that needs the owner's approval.
pub const REVIEW: &str =
    "Thank you: the owner will review your request. If they approve it, the link comes by email.";
pub const REVIEW_TITLE: &str = "Request received";

/// The owner's one-click Approve or Decline page, and its answers. `{email}`, `{title}`.
pub const DECIDE_APPROVE_TITLE: &str = "Approve this request?";
pub const DECIDE_DECLINE_TITLE: &str = "Decline this request?";
pub const DECIDE_ASKS: &str = "{email} asks for {title}.";
pub const DECIDE_APPROVE_BUTTON: &str = "Approve and mail the link";
pub const DECIDE_DECLINE_BUTTON: &str = "Decline";
pub const DECIDE_NOTE: &str = "Nothing happens until you press the button.";
pub const APPROVED_TITLE: &str = "Approved";
pub const APPROVED: &str = "The request is approved: the link is on its way to {email}.";
pub const DECLINED_TITLE: &str = "Declined";
pub const DECLINED: &str = "The request is declined.";
pub const DECIDED_TITLE: &str = "Already decided";
pub const DECIDED: &str = "This request has already been decided, or it expired.";
pub const ADMIN_DECISION: &str =
    "must be {\"decision\": \"approve\"} or {\"decision\": \"decline\"}";

// --- The confirm page ---------------------------------------------------------------------

/// The confirm page's heading.
pub fn confirm_heading(title: &str) -> String {
    format!("Download “{title}”")
}
pub const CONFIRM_FILE: &str = "File";
pub const CONFIRM_SIZE: &str = "Size";
pub const CONFIRM_EXPIRES: &str = "Link expires";
pub const CONFIRM_BUTTON: &str = "Download";
pub const CONFIRM_NOTE: &str = "This link works for one download. If the download is cut off, open the link again to resume it.";

// --- Outcome pages and API messages ---------------------------------------------------------

pub const EXPIRED_TITLE: &str = "This link has expired";
pub const EXPIRED: &str =
    "This download link has expired. Ask for the document again to get a new link.";
pub const RENEW_BUTTON: &str = "Email me a new link";
pub const RENEW_HINT: &str = "We'll send it to the address this link was sent to.";
pub const RENEW_ASK_ADDRESS: &str = "Enter your address to get a new link to the same document:";
/// After the expired page's button: where the new link went, and for how long it works.
pub fn renewed(masked_address: &str, lifetime: &str) -> String {
    format!("We sent a new link to {masked_address}. It expires in {lifetime}.")
}

pub const USED_TITLE: &str = "This link has already been used";
pub const USED: &str =
    "This download link has already been used. Ask for the document again to get a new link.";
pub const REVOKED_TITLE: &str = "This link has been withdrawn";
pub const REVOKED: &str =
    "This download link has been withdrawn. Ask for the document again if you still need it.";
pub const INVALID_TITLE: &str = "This link is not valid";
pub const INVALID: &str = "This download link is not valid. Open it again from the mail, or check that you copied the whole link: mail programs sometimes split long links.";
pub const IN_FLIGHT_TITLE: &str = "Download in progress";
pub const IN_FLIGHT: &str = "This link is being downloaded right now. Wait for that download to finish or fail, then try again.";
pub const RATE_LIMITED_TITLE: &str = "Too many requests";
/// When to come back: "in 2 minutes, at 14:35 UTC".
pub fn rate_limited(when: &str) -> String {
    format!("Too many requests came from your network. Try again {when}.")
}
pub const UNAVAILABLE_TITLE: &str = "Temporarily unavailable";
pub const UNAVAILABLE: &str = "The service is temporarily unavailable. Nothing was used up: a link you have still works. Try again in a minute.";
pub const UPSTREAM: &str =
    "The document could not be fetched. Your link has not been used; try again in a minute.";
pub const DOCUMENT_GONE_TITLE: &str = "Document unavailable";
pub const DOCUMENT_GONE: &str = "This document is no longer available.";
pub const NOT_STAMPABLE: &str = "This document cannot be prepared for download. Your link has not \
    been used; please tell the person who shared it with you.";
pub const UNKNOWN_DOCUMENT: &str = "There is no such document.";
pub const NOT_FOUND_TITLE: &str = "Page not found";
pub const NOT_FOUND: &str = "There is nothing at this address.";
pub const FORBIDDEN_TITLE: &str = "Request not accepted";
pub const CROSS_SITE: &str = "This download must be started from its own page. Open the link from the mail again and press Download.";
pub const CROSS_SITE_REQUEST: &str = "Links are sent only to requests made on this site's own page. Open the request form here and ask again.";
pub const NOT_ACCEPTED_TITLE: &str = "Request not accepted";
pub const INVALID_FIELDS: &str = "Some fields are missing or invalid.";
/// A link request naming one field twice (in JSON or a form).
pub const DUPLICATE_FIELD: &str = "A field appears more than once: send each field once.";
// --- A field's errors, in `{"errors": {"<field>": [...]}}` and beside the form's field ----------

/// `email` left empty.
pub const EMAIL_MISSING: &str = "Enter your email address.";
pub const EMAIL_TOO_LONG: &str = "This email address is too long.";
pub const EMAIL_INVALID: &str = "This is not a valid email address.";
/// An address at something that is not a domain name (`jane@localhost`, an IP literal).
pub const EMAIL_NOT_A_DOMAIN: &str = "Use an address at a domain name such as example.com.";
pub const EMAIL_DISPOSABLE: &str =
    "Disposable email addresses are not accepted; use a permanent address.";
/// `document` left empty.
pub const DOCUMENT_MISSING: &str = "Choose a document.";
/// `name` or `company` longer than the request form allows.
pub fn text_too_long(max: usize) -> String {
    format!("Use at most {max} characters.")
}
/// `name` or `company` with a line break, a control or a bidirectional-override character.
pub const TEXT_CONTROL: &str = "Remove line breaks and other control characters.";
/// `consent` not given while `DOCGATE_PRIVACY_URL` asks for it.
pub const CONSENT_REQUIRED: &str = "Agree to the privacy notice to get the link.";
/// A JSON link request that is not an object of strings.
pub const JSON_FIELDS: &str = "Send a JSON object with string fields \"email\" and \"document\".";
/// A form body (a link request, a link's `POST`) that is not `application/x-www-form-urlencoded`.
pub const FORM_UNDECODABLE: &str = "The form data could not be decoded.";
/// A request body that broke off or could not be read.
pub const BODY_UNREADABLE: &str = "The request body could not be read.";
/// An address the parser accepts but no mail could be addressed to (a quoted local part).
pub const ADDRESS_UNMAILABLE: &str =
    "This address cannot receive our mail; use an address without quotes or spaces.";
pub const INTERNAL_TITLE: &str = "Something went wrong";
/// A failure that retrying will not fix (a mail that cannot be composed).
pub const INTERNAL: &str = "Something went wrong on our side and was logged. Trying again will not help; please contact the site's owner.";
pub const TOO_LARGE: &str = "The request body is larger than 4 KiB.";
pub const BODY_NOT_ALLOWED: &str = "This request takes no body.";
pub const HEADERS_TOO_LARGE: &str = "The request headers are too large.";
pub const BODY_TIMEOUT: &str =
    "The request body took too long to arrive. Check your connection and send it again.";
pub const BUSY_TITLE: &str = "Busy right now";
pub const BUSY: &str = "Too many downloads are running right now. Nothing was used up: your link still works. Try again in a few seconds.";
pub const TOO_MANY_DOWNLOADS: &str = "Your network already has as many downloads running as it may. Nothing was used up: let one finish, then try again.";
pub const UNAUTHORIZED: &str =
    "Send Authorization: Bearer <DOCGATE_ADMIN_TOKEN>; the admin API is off while it is unset.";
pub const UNKNOWN_LINK: &str = "No usable link has this id.";

// --- The admin API's field errors (the owner's page and scripts read them) --------------------

/// A `jti` that is not the form of a link id.
pub const NOT_A_LINK_ID: &str = "Not a link id.";
/// An admin call's JSON body that does not decode; `why` is the parser's reason.
pub fn admin_json(why: &str) -> String {
    format!("Send a JSON object: {why}.")
}
/// `GET /admin/requests` with a `limit` or `offset` that is not a whole number.
pub const ADMIN_PAGING: &str = "Use ?limit=N&offset=M with whole numbers.";
/// A person's entries asked for with a query that is not one `email`.
pub const ADMIN_EMAIL_QUERY: &str = "Use ?email=<address>, once.";
/// A person's entries asked for without `email`.
pub const ADMIN_EMAIL_MISSING: &str = "Give the person's address: ?email=<address>.";
/// A minted link's `ttl` of zero or past the longest a link may live, `max_days`.
pub fn admin_ttl(max_days: u64) -> String {
    format!("must be more than 0 and at most {max_days} days")
}
pub const UNSUPPORTED_MEDIA_TYPE: &str =
    "Send application/json or application/x-www-form-urlencoded.";
pub const RANGE: &str = "The requested byte range is outside the document.";
/// "Use GET, HEAD here."
pub fn method_not_allowed(allow: &str) -> String {
    format!("Use {allow} here.")
}
pub const ASK_AGAIN: &str = "Ask for the document again";
pub const HOME: &str = "Request a document";
