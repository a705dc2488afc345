//! The HTML a person sees: the request form, the "check your inbox" page, the confirm page in
//! front of a download, and one page per outcome a link can meet.
//!
//! Every page is one self-contained response: its style sheet (and, on the form, its script) is
//! inline and allowed by hash in a strict `Content-Security-Policy`, so there are no external
//! assets, nothing for a mail scanner to follow and nothing a page can load from elsewhere. Pages
//! follow the reader's light or dark preference, fit a phone's width, set `lang`, and name
//! themselves in `<body data-page>` for tests and for styling. Their words come from
//! [`crate::texts::pages`]; markup here, wording there.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::html::escape;
use crate::texts::pages as t;

pub mod owner;

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("form.js");

fn sha256_source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// The policy of every page: nothing but its own inline style (by hash), forms posting to this
/// origin only. `frame-ancestors` is added per response.
static POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; img-src data:; form-action 'self'; base-uri 'none'",
        sha256_source(STYLE)
    )
});

/// The policy of the request form: as [`POLICY`], plus its script (by hash) and requests to this
/// origin.
static FORM_POLICY: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; img-src data:; \
         form-action 'self'; base-uri 'none'",
        sha256_source(STYLE),
        sha256_source(SCRIPT)
    )
});

/// One page, before rendering.
#[derive(Debug)]
pub struct Page {
    /// Names the page in `<body data-page>`: `confirm`, `request-form`, or an error code.
    pub name: &'static str,
    /// The `<title>` and `<h1>`, as plain text.
    pub title: String,
    /// The card's content below the heading: trusted markup, every variable part escaped.
    pub content: String,
    /// Whether the form's script is included.
    pub script: bool,
}

impl Page {
    /// The whole document.
    pub fn render(&self) -> String {
        let script = if self.script {
            format!("<script>{SCRIPT}</script>")
        } else {
            String::new()
        };
        format!(
            "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta name=\"robots\" content=\"noindex, nofollow\">\
             <meta name=\"referrer\" content=\"same-origin\">\
             <title>{title}</title><style>{STYLE}</style></head>\n\
             <body data-page=\"{name}\"><main><div class=\"card\">\n<h1>{title}</h1>\n{content}\n\
             </div></main>{script}</body></html>\n",
            lang = t::LANG,
            title = escape(&self.title),
            name = self.name,
            content = self.content,
        )
    }

    /// The page's `Content-Security-Policy`. `frame_ancestors` lists origins allowed to embed it
    /// (the request form and the answers to it, for the sites that embed it); with none, it
    /// refuses to be framed. `http` turns a page into a response with it.
    pub fn policy(&self, frame_ancestors: &[String]) -> String {
        let ancestors = if frame_ancestors.is_empty() {
            "'none'".to_owned()
        } else {
            frame_ancestors.join(" ")
        };
        let base = if self.script { &*FORM_POLICY } else { &*POLICY };
        format!("{base}; frame-ancestors {ancestors}")
    }
}

/// A paragraph of text.
pub fn para(text: &str) -> String {
    format!("<p>{}</p>", escape(text))
}

/// A paragraph of secondary text.
pub fn hint(text: &str) -> String {
    format!("<p class=\"hint\">{}</p>", escape(text))
}

/// A link styled as a button.
pub fn button_link(href: &str, text: &str) -> String {
    format!(
        "<p><a class=\"button\" href=\"{}\">{}</a></p>",
        escape(href),
        escape(text)
    )
}

/// A page for an outcome: a title, what happened, and what to do next.
pub fn outcome(name: &'static str, title: &str, message: &str, extra: String) -> Page {
    Page {
        name,
        title: title.to_owned(),
        content: format!("{}{extra}", para(message)),
        script: false,
    }
}

/// What the confirm page shows about the download behind a link.
#[derive(Debug)]
pub struct Confirm<'a> {
    pub title: &'a str,
    pub filename: &'a str,
    /// "1.2 MB".
    pub size: String,
    /// "in 12 minutes, at 14:32 UTC".
    pub expires: String,
}

/// The page a browser gets for a link while the confirm page is on: the document, its size and
/// the link's expiry, and a button that posts back to the same address to download.
pub fn confirm(c: &Confirm<'_>) -> Page {
    let content = format!(
        "<dl><dt>{file}</dt><dd>{filename}</dd><dt>{size_label}</dt><dd>{size}</dd>\
         <dt>{expires_label}</dt><dd>{expires}</dd></dl>\n\
         <form id=\"download-form\" method=\"post\">\
         <button id=\"download\" class=\"wide\" type=\"submit\">{button}</button></form>\n{note}",
        file = t::CONFIRM_FILE,
        filename = escape(c.filename),
        size_label = t::CONFIRM_SIZE,
        size = escape(&c.size),
        expires_label = t::CONFIRM_EXPIRES,
        expires = escape(&c.expires),
        button = t::CONFIRM_BUTTON,
        note = hint(t::CONFIRM_NOTE),
    );
    Page {
        name: "confirm",
        title: t::confirm_heading(c.title),
        content,
        script: false,
    }
}

/// The expired page's one-click renewal: posts back to the link's own address.
pub fn renew_button() -> String {
    format!(
        "<form id=\"renew-form\" method=\"post\"><input type=\"hidden\" name=\"renew\" value=\"1\">\
         <button id=\"renew\" type=\"submit\">{}</button></form>{}",
        t::RENEW_BUTTON,
        hint(t::RENEW_HINT)
    )
}

/// One document to choose in the form: id and title.
#[derive(Debug, Clone)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

/// The request form's state: what to offer, what was typed, and what was wrong with it.
#[derive(Debug, Default)]
pub struct Form {
    /// The documents to choose from; with one, it is fixed (a hidden field).
    pub documents: Vec<Choice>,
    /// The document chosen (or fixed).
    pub document: Option<String>,
    pub email: String,
    pub name: String,
    pub company: String,
    pub consent: bool,
    /// When set, a consent checkbox links to it and is required.
    pub privacy_url: Option<String>,
    /// Per-field errors, shown next to their fields.
    pub errors: BTreeMap<String, Vec<String>>,
    /// A heading naming the one document, for `/request/{document}`.
    pub heading: Option<String>,
    /// An introduction replacing the default one.
    pub intro: Option<String>,
    /// The path docgate is served under (`/docs`), or empty: prefixes the form's action.
    pub base: String,
}

impl Form {
    fn error(&self, field: &str) -> String {
        self.errors
            .get(field)
            .map(|messages| escape(&messages.join(" ")))
            .unwrap_or_default()
    }

    fn invalid(&self, field: &str) -> &'static str {
        if self.errors.contains_key(field) {
            " aria-invalid=\"true\""
        } else {
            ""
        }
    }

    fn text_field(&self, id: &str, kind: &str, label: &str, value: &str, extra: &str) -> String {
        let error = self.error(id);
        format!(
            "<label for=\"{id}\">{label}</label>\
             <input id=\"{id}\" name=\"{id}\" type=\"{kind}\" value=\"{value}\"{extra}{invalid} \
             aria-describedby=\"{id}-error\">\
             <p id=\"{id}-error\" class=\"error\" aria-live=\"polite\">{error}</p>\n",
            value = escape(value),
            invalid = self.invalid(id),
        )
    }

    /// The form page.
    pub fn page(&self) -> Page {
        let mut fields = String::new();
        match self.documents.as_slice() {
            [only] => fields.push_str(&format!(
                "<input type=\"hidden\" id=\"document\" name=\"document\" value=\"{}\">\n",
                escape(&only.id)
            )),
            many => {
                let options: String = many
                    .iter()
                    .map(|c| {
                        let selected = if self.document.as_deref() == Some(c.id.as_str()) {
                            " selected"
                        } else {
                            ""
                        };
                        format!(
                            "<option value=\"{}\"{selected}>{}</option>",
                            escape(&c.id),
                            escape(&c.title)
                        )
                    })
                    .collect();
                fields.push_str(&format!(
                    "<label for=\"document\">{label}</label>\
                     <select id=\"document\" name=\"document\" required{invalid} \
                     aria-describedby=\"document-error\">{options}</select>\
                     <p id=\"document-error\" class=\"error\" aria-live=\"polite\">{error}</p>\n",
                    label = t::FORM_DOCUMENT,
                    invalid = self.invalid("document"),
                    error = self.error("document"),
                ));
            }
        }
        fields.push_str(&self.text_field(
            "email",
            "email",
            t::FORM_EMAIL,
            &self.email,
            " required autocomplete=\"email\" inputmode=\"email\" autocapitalize=\"off\" \
             spellcheck=\"false\" maxlength=\"320\"",
        ));
        let optional = format!(" <span class=\"optional\">{}</span>", t::FORM_OPTIONAL);
        fields.push_str(&self.text_field(
            "name",
            "text",
            &format!("{}{optional}", t::FORM_NAME),
            &self.name,
            " autocomplete=\"name\" maxlength=\"100\"",
        ));
        fields.push_str(&self.text_field(
            "company",
            "text",
            &format!("{}{optional}", t::FORM_COMPANY),
            &self.company,
            " autocomplete=\"organization\" maxlength=\"100\"",
        ));
        if let Some(url) = &self.privacy_url {
            fields.push_str(&format!(
                "<label class=\"check\"><input id=\"consent\" name=\"consent\" type=\"checkbox\" \
                 value=\"yes\" required{checked}{invalid} aria-describedby=\"consent-error\">\
                 <span>{label} <a href=\"{url}\" target=\"_blank\" rel=\"noopener\">{link}</a></span>\
                 </label><p id=\"consent-error\" class=\"error\" aria-live=\"polite\">{error}</p>\n",
                checked = if self.consent { " checked" } else { "" },
                invalid = self.invalid("consent"),
                label = t::FORM_CONSENT,
                url = escape(url),
                link = t::FORM_PRIVACY_LINK,
                error = self.error("consent"),
            ));
        }
        let general = self
            .errors
            .iter()
            .filter(|(field, _)| {
                !matches!(
                    field.as_str(),
                    "document" | "email" | "name" | "company" | "consent"
                )
            })
            .flat_map(|(_, messages)| messages)
            .map(|m| escape(m))
            .collect::<Vec<_>>()
            .join(" ");
        let (status_class, status) = if general.is_empty() {
            ("", String::new())
        } else {
            (" class=\"bad\"", general)
        };
        let content = format!(
            "{intro}\n<form id=\"request-form\" method=\"post\" action=\"{base}/api/download-requests\" \
             data-sending=\"{sending}\" data-network-error=\"{network}\" novalidate>\n{fields}\
             <button id=\"submit\" class=\"wide\" type=\"submit\">{submit}</button>\n\
             <p id=\"status\" role=\"status\"{status_class}>{status}</p></form>\n{hint}",
            intro = para(self.intro.as_deref().unwrap_or(t::FORM_INTRO)),
            base = escape(&self.base),
            sending = escape(t::FORM_SENDING),
            network = escape(t::FORM_NETWORK_ERROR),
            submit = t::FORM_SUBMIT,
            hint = hint(t::FORM_EMAIL_HINT),
        );
        Page {
            name: "request-form",
            title: self
                .heading
                .clone()
                .unwrap_or_else(|| t::FORM_TITLE.to_owned()),
            content,
            script: true,
        }
    }
}

/// The page after a link request from a form without script: the link is on its way.
pub fn request_sent(message: &str, back: &str) -> Page {
    Page {
        name: "request-sent",
        title: t::SENT_TITLE.to_owned(),
        content: format!(
            "{}{}<p><a href=\"{}\">{}</a></p>",
            para(message),
            hint(t::SENT_HINT),
            escape(back),
            t::SENT_AGAIN
        ),
        script: false,
    }
}

/// The page after a request for a document that needs the owner's approval.
pub fn review(back: &str) -> Page {
    Page {
        name: "request-review",
        title: t::REVIEW_TITLE.to_owned(),
        content: format!(
            "{}<p><a href=\"{}\">{}</a></p>",
            para(t::REVIEW),
            escape(back),
            t::SENT_AGAIN
        ),
        script: false,
    }
}

/// The owner's one-click page for a pending request: who asks for what, and a button that posts
/// back to the same address to decide. A mail scanner's GET decides nothing.
pub fn decide(approve: bool, email: &str, title: &str) -> Page {
    let (page_title, button) = if approve {
        (t::DECIDE_APPROVE_TITLE, t::DECIDE_APPROVE_BUTTON)
    } else {
        (t::DECIDE_DECLINE_TITLE, t::DECIDE_DECLINE_BUTTON)
    };
    let asks = crate::texts::fill(t::DECIDE_ASKS, &[("email", email), ("title", title)]);
    Page {
        name: "decide",
        title: page_title.to_owned(),
        content: format!(
            "{}<form id=\"decide-form\" method=\"post\">\
             <button id=\"decide\" class=\"wide\" type=\"submit\">{}</button></form>\n{}",
            para(&asks),
            escape(button),
            hint(t::DECIDE_NOTE)
        ),
        script: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show_and_allow_their_style_by_hash() {
        let page = confirm(&Confirm {
            title: "<b>Jane</b>",
            filename: "a\"b.pdf",
            size: "1 KB".to_owned(),
            expires: "in 1 minute, at 10:00 UTC".to_owned(),
        });
        let html = page.render();
        assert!(html.contains("Download “&lt;b&gt;Jane&lt;/b&gt;”"));
        assert!(html.contains("a&quot;b.pdf"));
        assert!(html.contains("<html lang=\"en\">"));
        assert!(html.contains("data-page=\"confirm\""));
        assert!(!html.contains("<script"));

        let policy = page.policy(&[]);
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(policy.contains(&format!("style-src 'sha256-{hash}'")));
        assert!(!policy.contains("unsafe"));
        assert!(policy.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_form_keeps_what_was_typed_and_marks_the_fields_at_fault() {
        let form = Form {
            documents: vec![
                Choice {
                    id: "a".into(),
                    title: "A".into(),
                },
                Choice {
                    id: "b".into(),
                    title: "B".into(),
                },
            ],
            document: Some("b".into()),
            email: "x\"@y".into(),
            privacy_url: Some("https://example.com/privacy".into()),
            errors: BTreeMap::from([("email".to_owned(), vec!["Not an address.".to_owned()])]),
            ..Form::default()
        };
        let page = form.page();
        let html = page.render();
        assert!(html.contains("<option value=\"b\" selected>B</option>"));
        assert!(html.contains("value=\"x&quot;@y\" required"));
        assert!(html.contains("aria-invalid=\"true\""));
        assert!(html.contains("Not an address."));
        assert!(html.contains("href=\"https://example.com/privacy\""));
        assert!(html.contains("<script>"));

        let policy = page.policy(&["https://www.example.com".to_owned()]);
        assert!(policy.contains("frame-ancestors https://www.example.com"));
        assert!(policy.contains(&sha256_source(SCRIPT)));
    }
}
