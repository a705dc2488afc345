//! A document's policy: every field of a catalog entry beyond where its bytes are and what they
//! are called, each optional. Which address domains may ask for it ([`Document::refusal`]), how long
//! its links live and how many downloads they may start, and whether requests wait for the owner's
//! approval and copies carry a watermark. Read here from the entry, once, at load; a mistake is
//! one line naming the document and field.

use std::ops::RangeInclusive;
use std::time::Duration;

use super::{CatalogError, Document, Entry};
use crate::address;
use crate::units::parse_duration;

/// The most domains in one of a document's domain lists.
const MAX_DOMAINS: usize = 1000;

/// The longest a link may live, whoever sets it: a document's `link_ttl`, or an operator minting
/// one.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many downloads a link may start, whoever sets it: `DOCGATE_DOWNLOAD_ATTEMPTS`, or a
/// document's `download_attempts`.
pub const DOWNLOAD_ATTEMPTS: RangeInclusive<u32> = 1..=100;

/// Why a document's policy gives an address no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address's domain is in `refused_domains` (or is a subdomain of one).
    RefusedDomain,
    /// The document has `allowed_domains` and the address's domain is in none of them.
    DomainNotAllowed,
}

/// Reads and checks the policy of `document` from its entry, into its policy fields (the rest of
/// `document`, its content type included, is read already: a watermark needs a PDF).
pub(super) fn read(document: &mut Document, entry: &Entry) -> Result<(), CatalogError> {
    let id = document.id.as_str();
    let field = |field, reason| CatalogError::Field {
        id: id.to_owned(),
        field,
        reason,
    };
    let allowed_domains = match &entry.allowed_domains {
        Some(list) if list.is_empty() => {
            return Err(field(
                "allowed_domains",
                "is empty: no address could get a link (leave it out to allow every domain)",
            ));
        }
        Some(list) => Some(domains(id, "allowed_domains", list)?),
        None => None,
    };
    let refused_domains = match &entry.refused_domains {
        Some(list) => domains(id, "refused_domains", list)?,
        None => Vec::new(),
    };
    if let Some(both) = refused_domains
        .iter()
        .find(|d| allowed_domains.as_ref().is_some_and(|a| a.contains(d)))
    {
        return Err(CatalogError::Domain {
            id: id.to_owned(),
            field: "refused_domains",
            domain: both.clone(),
            reason: "is in allowed_domains too",
        });
    }
    let link_ttl = match &entry.link_ttl {
        Some(text) => Some(
            parse_duration(text)
                .ok()
                .filter(|ttl| *ttl <= MAX_LINK_TTL)
                .ok_or_else(|| {
                    field(
                        "link_ttl",
                        "must be a duration from 1s to 30d with its unit, e.g. 1h",
                    )
                })?,
        ),
        None => None,
    };
    let download_attempts = match entry.download_attempts {
        Some(n) => Some(
            u32::try_from(n)
                .ok()
                .filter(|n| DOWNLOAD_ATTEMPTS.contains(n))
                .ok_or_else(|| {
                    field("download_attempts", "must be a whole number from 1 to 100")
                })?,
        ),
        None => None,
    };
    let watermark = entry.watermark.unwrap_or(false);
    if watermark && !is_pdf(&document.content_type) {
        return Err(field(
            "watermark",
            "is only for PDF documents: content_type (as set, or guessed from the filename) must be application/pdf",
        ));
    }
    document.allowed_domains = allowed_domains;
    document.refused_domains = refused_domains;
    document.link_ttl = link_ttl;
    document.download_attempts = download_attempts;
    document.approval = entry.approval.unwrap_or(false);
    document.watermark = watermark;
    Ok(())
}

impl Document {
    /// Why this document's policy gives `address` no link on request, or `None` when it may
    /// have one. A domain matches itself and every subdomain; refused domains are checked first.
    pub fn refusal(&self, address: &lettre::Address) -> Option<Refusal> {
        let domain = address::domain_of(address);
        let within = |listed: &String| {
            domain == *listed
                || domain
                    .strip_suffix(listed.as_str())
                    .is_some_and(|rest| rest.ends_with('.'))
        };
        if self.refused_domains.iter().any(within) {
            return Some(Refusal::RefusedDomain);
        }
        match &self.allowed_domains {
            Some(allowed) if !allowed.iter().any(within) => Some(Refusal::DomainNotAllowed),
            _ => None,
        }
    }

    /// The lifetime of this document's links, `default` (`DOCGATE_TOKEN_TTL`) unless it sets one.
    pub fn link_ttl_or(&self, default: Duration) -> Duration {
        self.link_ttl.unwrap_or(default)
    }

    /// The downloads this document's links may start, `default` (`DOCGATE_DOWNLOAD_ATTEMPTS`)
    /// unless it sets a number.
    pub fn download_attempts_or(&self, default: u32) -> u32 {
        self.download_attempts.unwrap_or(default)
    }
}

/// A document's domain list, each domain as [`address::domain_name`] writes it, duplicates
/// dropped.
fn domains(id: &str, field: &'static str, list: &[String]) -> Result<Vec<String>, CatalogError> {
    if list.len() > MAX_DOMAINS {
        return Err(CatalogError::Field {
            id: id.to_owned(),
            field,
            reason: "has more than 1000 domains",
        });
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for text in list {
        let domain = address::domain_name(text).ok_or_else(|| CatalogError::Domain {
            id: id.to_owned(),
            field,
            domain: text.clone(),
            reason: "is not a domain name (e.g. example.com)",
        })?;
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    Ok(out)
}

/// True when a document is served as a PDF.
fn is_pdf(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/pdf")
}

#[cfg(test)]
mod tests {
    use super::super::Catalog;
    use super::*;

    /// A `doc` entry (a PDF) with these lines.
    fn entry(key: &str, filename: &str) -> String {
        format!("[documents.doc]\nkey = {key:?}\nfilename = {filename:?}\ntitle = \"A doc\"\n")
    }

    /// A `doc` entry (a PDF) with these policy lines.
    fn with_policy(lines: &str) -> Result<Catalog, CatalogError> {
        Catalog::parse(&format!("{}{lines}\n", entry("k.pdf", "k.pdf")))
    }

    fn address(text: &str) -> lettre::Address {
        crate::address::validate(text).unwrap()
    }

    #[test]
    fn without_a_policy_a_document_restricts_nothing() {
        let catalog = with_policy("").unwrap();
        let doc = catalog.get("doc").unwrap();
        assert_eq!(doc.allowed_domains, None);
        assert!(doc.refused_domains.is_empty());
        assert_eq!(doc.link_ttl, None);
        assert_eq!(doc.download_attempts, None);
        assert!(!doc.approval && !doc.watermark);
        assert_eq!(doc.refusal(&address("jane@anywhere.example")), None);
        assert_eq!(
            doc.link_ttl_or(Duration::from_secs(900)),
            Duration::from_secs(900)
        );
        assert_eq!(doc.download_attempts_or(3), 3);
    }

    #[test]
    fn a_policy_is_read_in_full() {
        let catalog = with_policy(
            r#"allowed_domains = ["Example.COM", "bücher.example", "example.com"]
refused_domains = ["hr.example.com"]
link_ttl = "1h"
download_attempts = 2
approval = true
watermark = true"#,
        )
        .unwrap();
        let doc = catalog.get("doc").unwrap();
        assert_eq!(
            doc.allowed_domains.as_deref(),
            Some(["example.com".to_owned(), "xn--bcher-kva.example".to_owned()].as_slice()),
            "lowercase, ASCII, each once"
        );
        assert_eq!(doc.refused_domains, ["hr.example.com"]);
        assert_eq!(
            doc.link_ttl_or(Duration::from_secs(900)),
            Duration::from_secs(3600)
        );
        assert_eq!(doc.download_attempts_or(3), 2);
        assert!(doc.approval && doc.watermark);
    }

    #[test]
    fn domains_match_themselves_and_their_subdomains_in_any_spelling() {
        let catalog = with_policy(
            r#"allowed_domains = ["example.com", "Bücher.Example"]
refused_domains = ["hr.example.com"]"#,
        )
        .unwrap();
        let doc = catalog.get("doc").unwrap();
        for admitted in [
            "jane@example.com",
            "jane@EXAMPLE.com",
            "jane@mail.example.com",
            "jane@a.b.example.com",
            "jürgen@bücher.example",
            "jürgen@xn--bcher-kva.example",
            "jane@sales.Bücher.Example",
        ] {
            assert_eq!(doc.refusal(&address(admitted)), None, "{admitted}");
        }
        for refused in [
            "x@hr.example.com",
            "x@HR.Example.com",
            "x@eu.hr.example.com",
        ] {
            assert_eq!(
                doc.refusal(&address(refused)),
                Some(Refusal::RefusedDomain),
                "{refused}"
            );
        }
        for outside in [
            "x@notexample.com",
            "x@example.com.evil.example",
            "x@example.org",
            "x@xample.com",
        ] {
            assert_eq!(
                doc.refusal(&address(outside)),
                Some(Refusal::DomainNotAllowed),
                "{outside}"
            );
        }
        let refused_only = with_policy(r#"refused_domains = ["rival.example"]"#).unwrap();
        let doc = refused_only.get("doc").unwrap();
        assert_eq!(doc.refusal(&address("x@example.org")), None);
        assert_eq!(
            doc.refusal(&address("x@team.Rival.example")),
            Some(Refusal::RefusedDomain)
        );
        assert_eq!(doc.refusal(&address("x@arival.example")), None);
    }

    /// Each mistake stops the catalog with one line naming the document and the field.
    #[test]
    fn each_policy_mistake_is_one_line_naming_document_and_field() {
        for (lines, expected) in [
            (
                r#"allowed_domains = ["exa mple.com"]"#,
                r#"documents.doc.allowed_domains "exa mple.com" is not a domain name"#,
            ),
            (
                r#"refused_domains = ["localhost"]"#,
                r#"documents.doc.refused_domains "localhost" is not a domain name"#,
            ),
            (
                r#"allowed_domains = ["*.example.com"]"#,
                r#"documents.doc.allowed_domains "*.example.com""#,
            ),
            (
                r#"allowed_domains = ["jane@example.com"]"#,
                r#"documents.doc.allowed_domains "jane@example.com""#,
            ),
            (
                r#"allowed_domains = ["127.0.0.1"]"#,
                r#"documents.doc.allowed_domains "127.0.0.1""#,
            ),
            (
                "allowed_domains = []",
                "documents.doc.allowed_domains is empty",
            ),
            (
                "allowed_domains = [\"example.com\"]\nrefused_domains = [\"Example.com\"]",
                r#"documents.doc.refused_domains "example.com" is in allowed_domains too"#,
            ),
            (
                "link_ttl = \"0s\"",
                "documents.doc.link_ttl must be a duration",
            ),
            (
                "link_ttl = \"15\"",
                "documents.doc.link_ttl must be a duration",
            ),
            (
                "link_ttl = \"31d\"",
                "documents.doc.link_ttl must be a duration from 1s to 30d",
            ),
            (
                "download_attempts = 0",
                "documents.doc.download_attempts must be a whole number from 1 to 100",
            ),
            (
                "download_attempts = 101",
                "documents.doc.download_attempts must be",
            ),
            (
                "download_attempts = -1",
                "documents.doc.download_attempts must be",
            ),
        ] {
            let err = with_policy(lines).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{lines}: {err}");
            assert_eq!(err.lines().count(), 1, "{lines}: {err}");
        }
        // Within the bounds.
        for lines in [
            "link_ttl = \"30d\"",
            "link_ttl = \"1s\"",
            "download_attempts = 1",
            "download_attempts = 100",
        ] {
            assert!(with_policy(lines).is_ok(), "{lines}");
        }
        // A list too long to be a policy.
        let many: Vec<String> = (0..1001).map(|i| format!("\"d{i}.example\"")).collect();
        let err = with_policy(&format!("refused_domains = [{}]", many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("documents.doc.refused_domains has more than"),
            "{err}"
        );
    }

    #[test]
    fn a_watermark_is_only_for_pdf_documents() {
        let text = |key: &str, filename: &str, extra: &str| {
            format!("{}{extra}watermark = true\n", entry(key, filename))
        };
        assert!(Catalog::parse(&text("k.pdf", "Resume.PDF", "")).is_ok());
        for (filename, extra) in [
            ("notes.txt", ""),
            ("deck.pptx", ""),
            ("resume.pdf", "content_type = \"text/plain\"\n"),
            ("resume", ""),
        ] {
            let err = Catalog::parse(&text("k.pdf", filename, extra))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("documents.doc.watermark is only for PDF documents"),
                "{filename}: {err}"
            );
        }
        let typed = format!(
            "{}content_type = \"application/pdf\"\nwatermark = true\n",
            entry("k", "resume")
        );
        assert!(Catalog::parse(&typed).is_ok(), "a PDF by its content type");
        let off = format!("{}watermark = false\n", entry("k.txt", "notes.txt"));
        assert!(Catalog::parse(&off).is_ok());
    }
}
