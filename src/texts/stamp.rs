//! The line stamped on every page of a watermarked PDF (`DOCGATE_WATERMARK_TEXT`): a template
//! checked once at startup by `config` and filled for each download by `http::stamp`.

use super::{check_template, fill};

/// The stamped line unless the operator sets another.
pub const DEFAULT_STAMP: &str = "Downloaded by {email} on {date}";

/// The longest stamp template accepted, in characters: one line in a page's margin.
pub const MAX_STAMP_LEN: usize = 200;

/// The stamped line, with `{email}` for the recipient's address and `{date}` for the download's
/// UTC date (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StampTemplate(String);

impl Default for StampTemplate {
    fn default() -> Self {
        Self(DEFAULT_STAMP.to_owned())
    }
}

impl StampTemplate {
    /// The placeholders a stamp may use.
    pub const PLACEHOLDERS: [&'static str; 2] = ["email", "date"];

    /// Checks a template: one line, at most [`MAX_STAMP_LEN`] characters, and every `{...}` a
    /// known placeholder.
    pub fn parse(template: &str) -> Result<Self, String> {
        check_template(template, &Self::PLACEHOLDERS, MAX_STAMP_LEN)?;
        Ok(Self(template.to_owned()))
    }

    /// The line for `email`, downloaded on `date` (`YYYY-MM-DD`).
    pub fn render(&self, email: &str, date: &str) -> String {
        fill(&self.0, &[("email", email), ("date", date)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_names_the_recipient_and_the_date() {
        let line = StampTemplate::default().render("ann@example.com", "2026-12-05");
        assert_eq!(line, "Downloaded by ann@example.com on 2026-12-05");
        assert_eq!(
            StampTemplate::parse(DEFAULT_STAMP),
            Ok(StampTemplate::default())
        );
    }

    #[test]
    fn bad_stamp_templates_are_refused_with_the_reason() {
        for (template, reason) in [
            ("For {email}\non {date}", "one line"),
            ("For {name}", "unknown placeholder {name}"),
            ("For {email", "'{' without its '}'"),
            ("For} {email}", "'}' without its '{'"),
        ] {
            let err = StampTemplate::parse(template).unwrap_err();
            assert!(err.contains(reason), "{template:?}: {err}");
        }
        assert!(
            StampTemplate::parse(&"x".repeat(201))
                .unwrap_err()
                .contains("at most 200 characters")
        );
        assert!(StampTemplate::parse("Confidential").is_ok());
    }
}
