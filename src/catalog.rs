//! The documents on offer, read from `catalog.toml` at startup.
//!
//! The catalog owns the mapping from a public document id (`resume`) to the object key in the store,
//! the filename the browser saves and the title used in mails. Every id, key and filename is
//! checked here, once, so no later layer has to worry about a key that climbs out of its
//! directory or a filename that breaks a header.
//!
//! It owns each document's policy too, every field optional: which address domains may ask for
//! it ([`Document::refusal`]), how long its links live and how many downloads they may start, and
//! whether requests wait for the owner's approval and copies carry a watermark. A mistake in a
//! policy stops startup like a mistake in a key, with one line naming the document and field.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::address;
use crate::units::parse_duration;

/// The longest document id accepted.
const MAX_ID_LEN: usize = 64;
/// The longest object key accepted (S3's limit).
const MAX_KEY_LEN: usize = 1024;
/// The longest filename accepted (most filesystems' limit).
const MAX_FILENAME_LEN: usize = 255;
/// The most domains in one of a document's domain lists.
const MAX_DOMAINS: usize = 1000;

/// The longest a link may live, whoever sets it: a document's `link_ttl`, or an operator minting
/// one.
pub const MAX_LINK_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// How many downloads a link may start, whoever sets it: `DOCGATE_DOWNLOAD_ATTEMPTS`, or a
/// document's `download_attempts`.
pub const DOWNLOAD_ATTEMPTS: RangeInclusive<u32> = 1..=100;

/// Why a catalog could not be loaded. The message names the entry and field at fault.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot be read: {0}")]
    Read(#[from] std::io::Error),
    #[error("is not a valid catalog: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("has no [documents.<id>] entries")]
    Empty,
    #[error("document id {id:?} {reason}")]
    Id { id: String, reason: &'static str },
    #[error("documents.{id}.{field} {reason}")]
    Field {
        id: String,
        field: &'static str,
        reason: &'static str,
    },
    /// A domain in a document's domain lists that is not one, or is in both.
    #[error("documents.{id}.{field} {domain:?} {reason}")]
    Domain {
        id: String,
        field: &'static str,
        domain: String,
        reason: &'static str,
    },
}

/// Why a document's policy gives an address no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The address's domain is in `refused_domains` (or is a subdomain of one).
    RefusedDomain,
    /// The document has `allowed_domains` and the address's domain is in none of them.
    DomainNotAllowed,
}

/// One document on offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The public id, as it appears in link requests and in tokens.
    pub id: String,
    /// The object key in the bucket, or the path under the documents directory.
    pub key: String,
    /// What the browser saves the file as.
    pub filename: String,
    /// How the document is named in mails.
    pub title: String,
    /// The `Content-Type` from the catalog, or else guessed from the filename.
    pub content_type: String,
    /// Whether the catalog set `content_type`: then it wins over the type the store keeps.
    pub content_type_set: bool,
    /// Only addresses at these domains or their subdomains get a link from a request (lowercase
    /// ASCII, as [`address::domain_name`] writes them); `None`: any domain.
    pub allowed_domains: Option<Vec<String>>,
    /// Addresses at these domains or their subdomains never get a link from a request.
    pub refused_domains: Vec<String>,
    /// How long this document's links live; `None`: `DOCGATE_TOKEN_TTL`.
    pub link_ttl: Option<Duration>,
    /// How many downloads this document's links may start; `None`: `DOCGATE_DOWNLOAD_ATTEMPTS`.
    pub download_attempts: Option<u32>,
    /// Whether each request waits for the owner's decision.
    pub approval: bool,
    /// Whether every copy is stamped with its recipient (PDF documents only).
    pub watermark: bool,
}

impl Document {
    /// The `Content-Type` to serve: the catalog's when set, else the store's when it names a
    /// specific, well-formed type, else the one guessed from the filename.
    pub fn content_type_for<'a>(&'a self, stored: Option<&'a str>) -> &'a str {
        if self.content_type_set {
            return &self.content_type;
        }
        match stored.map(str::trim) {
            Some(t)
                if !t.is_empty()
                    && t.parse::<mime_guess::mime::Mime>().is_ok()
                    && !t.starts_with("application/octet-stream")
                    && !t.starts_with("binary/octet-stream")
                    && t.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
            {
                t
            }
            _ => &self.content_type,
        }
    }

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

/// The validated catalog.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    documents: BTreeMap<String, Document>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    documents: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    key: String,
    filename: String,
    title: String,
    content_type: Option<String>,
    allowed_domains: Option<Vec<String>>,
    refused_domains: Option<Vec<String>>,
    link_ttl: Option<String>,
    download_attempts: Option<i64>,
    approval: Option<bool>,
    watermark: Option<bool>,
}

impl Catalog {
    /// Reads and validates the catalog file.
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text)
    }

    /// Parses and validates catalog text.
    pub fn parse(text: &str) -> Result<Self, CatalogError> {
        let file: File = toml::from_str(text)?;
        if file.documents.is_empty() {
            return Err(CatalogError::Empty);
        }
        let mut documents = BTreeMap::new();
        for (id, entry) in file.documents {
            check_id(&id)?;
            let field = |field, reason| CatalogError::Field {
                id: id.clone(),
                field,
                reason,
            };
            check_key(&entry.key).map_err(|reason| field("key", reason))?;
            check_filename(&entry.filename).map_err(|reason| field("filename", reason))?;
            check_text(&entry.title, 200).map_err(|reason| field("title", reason))?;
            let content_type_set = entry.content_type.is_some();
            let content_type = match entry.content_type {
                Some(ct) => {
                    ct.parse::<mime_guess::mime::Mime>()
                        .map_err(|_| field("content_type", "is not a media type"))?;
                    ct
                }
                None => mime_guess::from_path(&entry.filename)
                    .first_or_octet_stream()
                    .to_string(),
            };
            let allowed_domains = match &entry.allowed_domains {
                Some(list) if list.is_empty() => {
                    return Err(field(
                        "allowed_domains",
                        "is empty: no address could get a link (leave it out to allow every domain)",
                    ));
                }
                Some(list) => Some(domains(&id, "allowed_domains", list)?),
                None => None,
            };
            let refused_domains = match &entry.refused_domains {
                Some(list) => domains(&id, "refused_domains", list)?,
                None => Vec::new(),
            };
            if let Some(both) = refused_domains
                .iter()
                .find(|d| allowed_domains.as_ref().is_some_and(|a| a.contains(d)))
            {
                return Err(CatalogError::Domain {
                    id: id.clone(),
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
            if watermark && !is_pdf(&content_type) {
                return Err(field(
                    "watermark",
                    "is only for PDF documents: content_type (as set, or guessed from the filename) must be application/pdf",
                ));
            }
            documents.insert(
                id.clone(),
                Document {
                    id,
                    key: entry.key,
                    filename: entry.filename,
                    title: entry.title,
                    content_type,
                    content_type_set,
                    allowed_domains,
                    refused_domains,
                    link_ttl,
                    download_attempts,
                    approval: entry.approval.unwrap_or(false),
                    watermark,
                },
            );
        }
        Ok(Self { documents })
    }

    /// The document with this id, if it is on offer.
    pub fn get(&self, id: &str) -> Option<&Document> {
        self.documents.get(id)
    }

    /// Every document, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Document> {
        self.documents.values()
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

/// Ids are short, lowercase-friendly and URL-safe: `[A-Za-z0-9_-]`, starting with a letter or
/// digit.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn check_id(id: &str) -> Result<(), CatalogError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(CatalogError::Id {
            id: id.to_owned(),
            reason: "must be 1 to 64 of A-Z, a-z, 0-9, '-' and '_', starting with a letter or digit",
        })
    }
}

/// A key is a relative path of plain segments: no `..`, no absolute path, no backslash, no
/// percent-encoding, no control characters.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err("must be 1 to 1024 bytes long");
    }
    if key.starts_with('/') {
        return Err("must be relative, not start with '/'");
    }
    if key.contains(['\\', '%']) || key.chars().any(char::is_control) {
        return Err("must not contain '\\', '%' or control characters");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err("must not contain empty, '.' or '..' segments");
    }
    Ok(())
}

fn check_filename(name: &str) -> Result<(), &'static str> {
    if name.len() > MAX_FILENAME_LEN {
        return Err("must be at most 255 bytes long");
    }
    if name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err("must be a plain file name, without '/' or '\\'");
    }
    check_text(name, MAX_FILENAME_LEN)
}

fn check_text(text: &str, max: usize) -> Result<(), &'static str> {
    if text.trim().is_empty() {
        return Err("must not be empty");
    }
    if text.chars().count() > max {
        return Err("is too long");
    }
    if text.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, filename: &str) -> String {
        format!("[documents.doc]\nkey = {key:?}\nfilename = {filename:?}\ntitle = \"A doc\"\n")
    }

    #[test]
    fn sample_catalog_loads() {
        let catalog = Catalog::parse(
            r#"
            [documents.resume]
            key = "resume/Jane_Doe_Resume.pdf"
            filename = "Jane_Doe_Resume.pdf"
            title = "Jane Doe's resume"

            [documents.notes]
            key = "notes.bin"
            filename = "Überblick 2026.txt"
            title = "Notes"
            content_type = "text/plain; charset=utf-8"
            "#,
        )
        .unwrap();
        let resume = catalog.get("resume").unwrap();
        assert_eq!(resume.key, "resume/Jane_Doe_Resume.pdf");
        assert_eq!(resume.content_type, "application/pdf");
        assert_eq!(resume.content_type_for(None), "application/pdf");
        assert_eq!(
            resume.content_type_for(Some("application/x-pdf")),
            "application/x-pdf"
        );
        assert_eq!(
            resume.content_type_for(Some("binary/octet-stream")),
            "application/pdf"
        );
        assert_eq!(
            resume.content_type_for(Some("not a type")),
            "application/pdf"
        );
        assert_eq!(
            catalog.get("notes").unwrap().content_type,
            "text/plain; charset=utf-8"
        );
        // Set in the catalog: it wins over the store's.
        assert_eq!(
            catalog
                .get("notes")
                .unwrap()
                .content_type_for(Some("application/pdf")),
            "text/plain; charset=utf-8"
        );
        assert_eq!(catalog.iter().count(), 2);
        assert!(catalog.get("missing").is_none());
    }

    #[test]
    fn keys_that_escape_are_refused() {
        for key in [
            "../etc/passwd",
            "/etc/passwd",
            "a/../../b",
            "a//b",
            "./a",
            "a\\b",
            "a%2f..%2fb",
            "a\nb",
            "",
        ] {
            let err = Catalog::parse(&entry(key, "x.pdf")).unwrap_err();
            assert!(
                err.to_string().starts_with("documents.doc.key"),
                "{key:?}: {err}"
            );
        }
    }

    #[test]
    fn bad_filenames_and_ids_are_refused() {
        for name in ["a/b.pdf", "..", "a\r\nb.pdf", " "] {
            let err = Catalog::parse(&entry("k.pdf", name)).unwrap_err();
            assert!(
                err.to_string().contains("documents.doc.filename"),
                "{name:?}"
            );
        }
        for id in ["-x", "a.b", "a b", "ünï"] {
            let text =
                format!("[documents.{id:?}]\nkey = \"k\"\nfilename = \"f\"\ntitle = \"t\"\n");
            let err = Catalog::parse(&text).unwrap_err();
            assert!(err.to_string().starts_with("document id"), "{id:?}: {err}");
        }
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

    #[test]
    fn empty_and_unknown_fields_are_refused() {
        assert!(matches!(Catalog::parse(""), Err(CatalogError::Empty)));
        let text = "[documents.a]\nkey = \"k\"\nfilename = \"f\"\ntitle = \"t\"\nurl = \"x\"\n";
        assert!(matches!(Catalog::parse(text), Err(CatalogError::Parse(_))));
    }
}
