//! The owner's page on the admin listener: the sign-in form, the page itself (each document's
//! funnel as an SVG chart drawn here, with its totals as text; the request log with its search,
//! and a form per action) and the erasure's confirmation step.
//!
//! Like every page, one self-contained response: its own style sheet (`owner.css`) inline and
//! allowed by hash, no script, nothing loaded from elsewhere, never framed ([`policy`]). Every
//! action is a `POST` form carrying the session's CSRF token, which the caller passes in; the
//! chart is plain SVG markup in the page. Words from [`crate::texts::owner`].

use std::sync::LazyLock;

use crate::html::escape;
use crate::texts::owner as t;
use crate::texts::{fill, pages as pt};

const STYLE: &str = include_str!("owner.css");

/// The owner's pages' `Content-Security-Policy`: their own style by hash, images from this
/// origin or inline, forms posting here only, never framed.
pub static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; img-src 'self' data:; form-action 'self'; \
         frame-ancestors 'none'; base-uri 'none'",
        super::sha256_source(STYLE)
    )
});

/// The whole document of an owner's page named `name`, titled `title`, with `body` (trusted
/// markup, every variable part escaped) under the heading.
fn document(name: &str, title: &str, header_extra: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex, nofollow\">\
         <title>{title}</title><style>{STYLE}</style></head>\n\
         <body data-page=\"{name}\"><main>\n<header><h1>{title}</h1>{header_extra}</header>\n{body}\n\
         </main></body></html>\n",
        lang = pt::LANG,
        title = escape(title),
    )
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        escape(value)
    )
}

/// A one-button `POST` form to `action` with the CSRF token and `fields` (name, value).
fn action_form(
    action: &str,
    csrf: &str,
    fields: &[(&str, &str)],
    label: &str,
    class: &str,
) -> String {
    let fields: String = fields.iter().map(|(n, v)| hidden(n, v)).collect();
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{action}\">{csrf}{fields}\
         <button type=\"submit\" class=\"{class}\">{label}</button></form>",
        csrf = hidden("csrf", csrf),
        label = escape(label),
    )
}

/// The sign-in page: the admin token, once. `csrf` is the login form's token; `wrong` shows
/// that the last token given was not the admin token.
pub fn login(csrf: &str, wrong: bool) -> String {
    let error = if wrong {
        format!(
            "<p id=\"login-error\" class=\"error\" role=\"alert\">{}</p>",
            t::LOGIN_WRONG
        )
    } else {
        String::new()
    };
    let body = format!(
        "<div class=\"card login\"><p>{intro}</p>{error}\
         <form id=\"login-form\" method=\"post\" action=\"/login\">{csrf}\
         <label for=\"token\">{label}</label>\
         <input id=\"token\" name=\"token\" type=\"password\" required autocomplete=\"current-password\" \
         autocapitalize=\"off\" spellcheck=\"false\"{invalid}>\
         <p><button id=\"sign-in\" type=\"submit\">{button}</button></p></form>\
         <p class=\"hint\">{hint}</p></div>",
        intro = escape(t::LOGIN_INTRO),
        csrf = hidden("csrf", csrf),
        label = t::LOGIN_TOKEN,
        invalid = if wrong { " aria-invalid=\"true\"" } else { "" },
        button = t::LOGIN_BUTTON,
        hint = escape(t::LOGIN_HINT),
    );
    document("owner-login", t::LOGIN_TITLE, "", &body)
}

/// One document's funnel as the page draws it.
#[derive(Debug, Clone)]
pub struct FunnelView {
    pub title: String,
    /// Per day, oldest first: asked, mailed, opened, downloaded.
    pub days: Vec<[u32; 4]>,
    pub total: [u32; 4],
}

/// What became of a request's link, as the log shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkView {
    /// No link was made.
    None,
    /// Usable now: it gets a Revoke button.
    Live { jti: String },
    /// Downloaded completely at (RFC 3339).
    Downloaded { at: String },
    /// Expired, used up or revoked.
    Gone,
    /// The store did not say.
    Unknown,
}

/// What the watermark did to a link's latest download (documents with `watermark = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampView {
    /// Not a watermarked document, or no download yet.
    None,
    /// The copy named its recipient.
    Stamped,
    /// The PDF could not be stamped and was served as it is.
    Unstamped,
    /// The PDF could not be stamped and the download was refused.
    Refused,
}

/// One row of the request log.
#[derive(Debug, Clone)]
pub struct RowView {
    /// RFC 3339, UTC.
    pub at: String,
    pub email: Option<String>,
    /// Name and company, as given.
    pub who: Vec<String>,
    pub document: String,
    /// The request's outcome, in words.
    pub outcome: String,
    pub link: LinkView,
    pub stamp: StampView,
    /// How often the link was opened without a download.
    pub opens: usize,
}

/// Everything the owner's page shows.
#[derive(Debug, Clone)]
pub struct View {
    /// The session's CSRF token, in every form.
    pub csrf: String,
    /// What the last action did.
    pub flash: Option<String>,
    /// The chart's period, as dates (`2026-11-06`, `2026-12-05`).
    pub period: (String, String),
    pub funnels: Vec<FunnelView>,
    pub funnel_partial: bool,
    /// Every document: id and title, for the search.
    pub documents: Vec<(String, String)>,
    /// The search as typed.
    pub email: String,
    pub document: String,
    pub rows: Vec<RowView>,
    /// Where the current view is (path and query): actions come back here.
    pub here: String,
    /// Links to the newer and older pages of the log.
    pub newer: Option<String>,
    pub older: Option<String>,
    /// Requests waiting for the owner's decision, oldest first.
    pub pending: Vec<PendingView>,
}

/// A request waiting for the owner's decision.
#[derive(Debug, Clone)]
pub struct PendingView {
    /// Its id, posted back to decide it.
    pub id: String,
    pub email: String,
    /// The document's title.
    pub document: String,
    /// RFC 3339, UTC.
    pub asked_at: String,
}

/// The pending approvals, each with Approve and Decline; nothing when none waits.
fn pending(view: &View) -> String {
    if view.pending.is_empty() {
        return String::new();
    }
    let items: String = view
        .pending
        .iter()
        .map(|p| {
            let fields = [("id", p.id.as_str()), ("back", view.here.as_str())];
            format!(
                "<li><p>{asks}</p><p class=\"hint\">{at}</p><div class=\"actions\">{approve}{decline}</div></li>",
                asks = escape(&fill(
                    t::PENDING_ASKS,
                    &[("email", &p.email), ("document", &p.document)]
                )),
                at = escape(&short_time(&p.asked_at)),
                approve = action_form("/approve", &view.csrf, &fields, t::APPROVE, "primary"),
                decline = action_form("/decline", &view.csrf, &fields, t::DECLINE, "quiet"),
            )
        })
        .collect();
    format!(
        "<section id=\"pending\"><h2>{}</h2><ol class=\"log\">{items}</ol></section>\n",
        t::PENDING_HEADING
    )
}

/// `n` as text.
fn num(n: u32) -> String {
    n.to_string()
}

/// The funnel chart: per day, four nested bars (asked, then mailed, opened and downloaded, each
/// narrower and darker), scaled to the busiest day; named for screen readers by its totals.
fn chart(index: usize, f: &FunnelView, period: &(String, String)) -> String {
    const SLOT: usize = 10;
    const HEIGHT: usize = 90;
    const TOP: usize = 14;
    let width = SLOT * f.days.len().max(1);
    let most = f.days.iter().map(|d| d[0]).max().unwrap_or(0).max(1);
    let label = fill(
        t::CHART_LABEL,
        &[
            ("document", &f.title),
            ("asked", &num(f.total[0])),
            ("mailed", &num(f.total[1])),
            ("opened", &num(f.total[2])),
            ("downloaded", &num(f.total[3])),
        ],
    );
    let mut bars = String::new();
    for (day, counts) in f.days.iter().enumerate() {
        for (stage, count) in counts.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let bar_width = 8 - 2 * stage;
            let x = day * SLOT + 1 + stage;
            let h = (*count as usize * HEIGHT).div_ceil(most as usize).max(1);
            let y = TOP + HEIGHT - h;
            bars.push_str(&format!(
                "<rect class=\"s{stage}\" x=\"{x}\" y=\"{y}\" width=\"{bar_width}\" height=\"{h}\"/>"
            ));
        }
    }
    let base = TOP + HEIGHT;
    format!(
        "<svg class=\"chart\" id=\"chart-{index}\" role=\"img\" aria-labelledby=\"chart-{index}-title\" \
         viewBox=\"0 0 {width} {view_height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"chart-{index}-title\">{label}</title>\
         <text x=\"0\" y=\"10\">{most}</text>\
         <line class=\"axis\" x1=\"0\" y1=\"{base}\" x2=\"{width}\" y2=\"{base}\"/>{bars}\
         <text x=\"0\" y=\"{date_y}\">{first}</text>\
         <text x=\"{width}\" y=\"{date_y}\" text-anchor=\"end\">{last}</text></svg>",
        view_height = base + 18,
        date_y = base + 14,
        label = escape(&label),
        first = escape(&period.0),
        last = escape(&period.1),
    )
}

fn funnels(view: &View) -> String {
    let stages = [
        t::STAGE_ASKED,
        t::STAGE_MAILED,
        t::STAGE_OPENED,
        t::STAGE_DOWNLOADED,
    ];
    let mut out = format!(
        "<section id=\"funnel\"><h2>{heading}</h2><p class=\"hint\">{intro} {period}</p>",
        heading = t::FUNNEL_HEADING,
        intro = escape(t::FUNNEL_INTRO),
        period = escape(&fill(
            t::FUNNEL_PERIOD,
            &[("first", &view.period.0), ("last", &view.period.1)]
        )),
    );
    if view.funnel_partial {
        out.push_str(&format!("<p class=\"hint\">{}</p>", t::FUNNEL_PARTIAL));
    }
    out.push_str("<div class=\"funnels\">");
    for (i, f) in view.funnels.iter().enumerate() {
        let totals: String = stages
            .iter()
            .zip(f.total)
            .enumerate()
            .map(|(s, (name, n))| {
                format!("<li><span class=\"key s{s}\"></span>{name}: <strong>{n}</strong></li>")
            })
            .collect();
        out.push_str(&format!(
            "<div class=\"funnel\" data-document=\"{title}\"><h3>{title}</h3>\
             <ul class=\"totals\">{totals}</ul>{chart}</div>",
            title = escape(&f.title),
            chart = chart(i, f, &view.period),
        ));
    }
    out.push_str("</div></section>");
    out
}

fn search(view: &View) -> String {
    let options: String = std::iter::once(("".to_owned(), t::SEARCH_ANY.to_owned()))
        .chain(view.documents.iter().cloned())
        .map(|(id, title)| {
            let selected = if id == view.document { " selected" } else { "" };
            format!(
                "<option value=\"{}\"{selected}>{}</option>",
                escape(&id),
                escape(&title)
            )
        })
        .collect();
    format!(
        "<form id=\"search\" class=\"search\" method=\"get\" action=\"/\">\
         <div><label for=\"email\">{email_label}</label>\
         <input id=\"email\" name=\"email\" type=\"email\" value=\"{email}\" autocapitalize=\"off\" \
         spellcheck=\"false\"></div>\
         <div><label for=\"document\">{document_label}</label>\
         <select id=\"document\" name=\"document\">{options}</select></div>\
         <div><button type=\"submit\">{button}</button></div></form>",
        email_label = t::SEARCH_EMAIL,
        email = escape(&view.email),
        document_label = t::SEARCH_DOCUMENT,
        button = t::SEARCH_BUTTON,
    )
}

fn person(view: &View) -> String {
    if view.email.is_empty() {
        return String::new();
    }
    let email = view.email.as_str();
    let export = format!(
        "<a class=\"button quiet\" id=\"export\" href=\"/export?{}\" download>{}</a>",
        escape(&serde_urlencoded::to_string([("email", email)]).unwrap_or_default()),
        t::EXPORT
    );
    format!(
        "<div class=\"card\" id=\"person\"><h3>{heading}: {shown}</h3>{revoke_all} {export} {erase}</div>",
        heading = t::PERSON_HEADING,
        shown = escape(email),
        revoke_all = action_form(
            "/revoke-all",
            &view.csrf,
            &[("email", email), ("back", &view.here)],
            t::REVOKE_ALL,
            "quiet"
        ),
        erase = action_form(
            "/erase",
            &view.csrf,
            &[("email", email)],
            t::ERASE,
            "danger"
        ),
    )
}

/// An RFC 3339 UTC time as the page shows it: `2026-12-05 14:32:07 UTC`.
fn short_time(at: &str) -> String {
    match at.get(..19) {
        Some(seconds) if at.ends_with('Z') => format!("{} UTC", seconds.replace('T', " ")),
        _ => at.to_owned(),
    }
}

fn row(view: &View, r: &RowView) -> String {
    let at = short_time(&r.at);
    let who = match &r.email {
        Some(email) => format!(
            "<a href=\"/?{}\">{}</a>",
            escape(&serde_urlencoded::to_string([("email", email.as_str())]).unwrap_or_default()),
            escape(email)
        ),
        None => t::NO_ADDRESS.to_owned(),
    };
    let extra: String = r.who.iter().map(|w| format!(" · {}", escape(w))).collect();
    let opens = if r.opens > 0 {
        format!(
            " · {}",
            fill(t::LINK_OPENED, &[("n", &r.opens.to_string())])
        )
    } else {
        String::new()
    };
    let (state, action) = match &r.link {
        LinkView::None => (String::new(), String::new()),
        LinkView::Live { jti } => (
            format!(" · <strong>{}</strong>", t::LINK_LIVE),
            action_form(
                "/revoke",
                &view.csrf,
                &[("jti", jti), ("back", &view.here)],
                t::REVOKE,
                "quiet",
            ),
        ),
        LinkView::Downloaded { at } => (
            format!(
                " · {}",
                escape(&fill(t::LINK_DOWNLOADED, &[("at", &short_time(at))]))
            ),
            String::new(),
        ),
        LinkView::Gone => (format!(" · {}", t::LINK_GONE), String::new()),
        LinkView::Unknown => (format!(" · {}", t::LINK_UNKNOWN), String::new()),
    };
    let stamp = match r.stamp {
        StampView::None => "",
        StampView::Stamped => t::STAMP_STAMPED,
        StampView::Unstamped => t::STAMP_UNSTAMPED,
        StampView::Refused => t::STAMP_REFUSED,
    };
    let stamp = if stamp.is_empty() {
        String::new()
    } else {
        format!(" · <span class=\"stamp\">{stamp}</span>")
    };
    format!(
        "<li><div class=\"muted\"><time datetime=\"{at_raw}\">{at}</time></div>\
         <div class=\"who\">{who}{extra}</div>\
         <div class=\"what\">{document} · {outcome}{state}{stamp}{opens}</div>{action}</li>",
        at_raw = escape(&r.at),
        at = escape(&at),
        document = escape(&r.document),
        outcome = escape(&r.outcome),
    )
}

/// The owner's page.
pub fn dashboard(view: &View) -> String {
    let logout = action_form("/logout", &view.csrf, &[], t::LOGOUT, "quiet");
    let flash = view
        .flash
        .as_deref()
        .map(|f| {
            format!(
                "<p class=\"flash\" role=\"status\" id=\"flash\">{}</p>",
                escape(f)
            )
        })
        .unwrap_or_default();
    let rows: String = if view.rows.is_empty() {
        format!("<p id=\"log-empty\">{}</p>", t::LOG_EMPTY)
    } else {
        format!(
            "<ol class=\"log\" id=\"log\">{}</ol>",
            view.rows.iter().map(|r| row(view, r)).collect::<String>()
        )
    };
    let link = |href: &Option<String>, id: &str, text: &str| {
        href.as_deref()
            .map(|h| format!("<a id=\"{id}\" href=\"{}\">{text}</a>", escape(h)))
            .unwrap_or_else(|| "<span></span>".to_owned())
    };
    let clear = if view.email.is_empty() && view.document.is_empty() {
        String::new()
    } else {
        format!("<p><a href=\"/\">{}</a></p>", t::SEARCH_CLEAR)
    };
    let log = format!(
        "<section id=\"requests\"><h2>{log_heading}</h2>{search}{clear}{person}\
         {rows}<nav class=\"pager\">{newer}{older}</nav></section>",
        log_heading = t::LOG_HEADING,
        search = search(view),
        person = person(view),
        newer = link(&view.newer, "newer", t::NEWER),
        older = link(&view.older, "older", t::OLDER),
    );
    // Pending approvals (requests waiting for the owner's decision) go between the flash and the
    // rest. A search puts what was searched for first; the overview starts with the funnel.
    let pending = pending(view);
    let body = if clear.is_empty() {
        format!("{flash}{pending}{}\n{log}", funnels(view))
    } else {
        format!("{flash}{pending}{log}\n{}", funnels(view))
    };
    document("owner", t::TITLE, &logout, &body)
}

/// The erasure's confirmation step: what goes, and the button that erases.
pub fn confirm_erase(csrf: &str, email: &str) -> String {
    let back = format!(
        "/?{}",
        serde_urlencoded::to_string([("email", email)]).unwrap_or_default()
    );
    let body = format!(
        "<div class=\"card\"><p>{text}</p>{form}\
         <a class=\"button quiet\" href=\"{back}\">{cancel}</a></div>",
        text = escape(&fill(t::ERASE_CONFIRM_TEXT, &[("email", email)])),
        form = action_form(
            "/erase",
            csrf,
            &[("email", email), ("confirm", "yes")],
            t::ERASE_CONFIRM,
            "danger"
        ),
        back = escape(&back),
        cancel = t::CANCEL,
    );
    document("owner-erase", t::ERASE_TITLE, "", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_scales_to_the_busiest_day_and_names_its_totals() {
        let f = FunnelView {
            title: "<Deck>".into(),
            days: vec![[0, 0, 0, 0], [4, 3, 2, 1], [2, 2, 0, 0]],
            total: [6, 5, 2, 1],
        };
        let svg = chart(0, &f, &("2026-12-03".into(), "2026-12-05".into()));
        assert!(svg.contains("&lt;Deck&gt;, per day: 6 asked, 5 mailed, 2 opened, 1 downloaded"));
        // The busiest day's asked bar is the full height; empty stages draw nothing.
        assert!(svg.contains("class=\"s0\" x=\"11\" y=\"14\" width=\"8\" height=\"90\""));
        assert_eq!(svg.matches("<rect").count(), 6);
        assert!(!svg.contains("style="));
    }

    #[test]
    fn the_policy_allows_the_style_by_hash_and_nothing_else() {
        assert!(POLICY.contains(&super::super::sha256_source(STYLE)));
        assert!(POLICY.contains("frame-ancestors 'none'"));
        assert!(!POLICY.contains("script-src"));
        assert!(!POLICY.contains("unsafe"));
        let html = login("tok", true);
        assert!(html.contains("name=\"csrf\" value=\"tok\""));
        assert!(!html.contains("<script"));
    }
}
