//! The link mail's subject as an operator configures it (`DOCGATE_MAIL_SUBJECT`): a template
//! checked once at startup by `config` and rendered by `mail` for each mail. It lives here, with
//! the words, so that reading the configuration does not depend on composing mail.

use super::{check_template, fill, mail::SUBJECT};

/// The longest subject template accepted, in characters.
pub const MAX_SUBJECT_LEN: usize = 200;

/// The link mail's subject: `DOCGATE_MAIL_SUBJECT`, with `{title}` for the document's title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTemplate(String);

impl Default for SubjectTemplate {
    fn default() -> Self {
        Self(SUBJECT.to_owned())
    }
}

impl SubjectTemplate {
    /// The placeholders a subject may use.
    pub const PLACEHOLDERS: [&'static str; 1] = ["title"];

    /// Checks a template: one line, at most [`MAX_SUBJECT_LEN`] characters, and every `{...}`
    /// a known placeholder.
    pub fn parse(template: &str) -> Result<Self, String> {
        check_template(template, &Self::PLACEHOLDERS, MAX_SUBJECT_LEN)?;
        Ok(Self(template.to_owned()))
    }

    /// The subject for a document titled `title`.
    pub fn render(&self, title: &str) -> String {
        fill(&self.0, &[("title", title)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_subject_templates_are_refused_with_the_reason() {
        for (template, reason) in [
            ("Your link\r\nBcc: x@example.org", "one line"),
            ("Your link\nfor {title}", "one line"),
            ("Your link\tfor {title}", "control characters"),
            ("Your link for {document}", "unknown placeholder {document}"),
            ("Your link for {title", "'{' without its '}'"),
            ("Your link} for {title}", "'}' without its '{'"),
        ] {
            let err = SubjectTemplate::parse(template).unwrap_err();
            assert!(err.contains(reason), "{template:?}: {err}");
        }
        let long = "x".repeat(201);
        assert!(
            SubjectTemplate::parse(&long)
                .unwrap_err()
                .contains("at most 200 characters, got 201")
        );
        assert!(SubjectTemplate::parse(&"é".repeat(200)).is_ok());
        assert!(SubjectTemplate::parse("A fixed subject").is_ok());
    }
}
