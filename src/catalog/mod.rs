//! The documents on offer, read from `catalog.toml` at startup.
//!
//! The catalog owns the mapping from a public document id (`resume`) to the object key in the store,
//! the filename the browser saves and the title used in mails. Every id, key and filename is
//! checked here, once, so no later layer has to worry about a key that climbs out of its
//! directory or a filename that breaks a header.
//!
//! Each document's policy (who may ask, how long links live, approval, watermark) is read and
//! applied in [`policy`]. A mistake in an entry or its policy stops startup with one line naming
//! the document and field.

mod policy;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use policy::{DOWNLOAD_ATTEMPTS, MAX_LINK_TTL, Refusal};

/// The longest document id accepted.
const MAX_ID_LEN: usize = 64;
/// The longest object key accepted (S3's limit).
const MAX_KEY_LEN: usize = 1024;
/// The longest filename accepted (most filesystems' limit).
const MAX_FILENAME_LEN: usize = 255;

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
    /// ASCII, as [`crate::address::domain_name`] writes them); `None`: any domain.
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
            let content_type = match &entry.content_type {
                Some(ct) => {
                    ct.parse::<mime_guess::mime::Mime>()
                        .map_err(|_| field("content_type", "is not a media type"))?;
                    ct.clone()
                }
                None => mime_guess::from_path(&entry.filename)
                    .first_or_octet_stream()
                    .to_string(),
            };
            let mut document = Document {
                id: id.clone(),
                key: entry.key.clone(),
                filename: entry.filename.clone(),
                title: entry.title.clone(),
                content_type,
                content_type_set,
                allowed_domains: None,
                refused_domains: Vec::new(),
                link_ttl: None,
                download_attempts: None,
                approval: false,
                watermark: false,
            };
            policy::read(&mut document, &entry)?;
            documents.insert(id, document);
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

    #[test]
    fn empty_and_unknown_fields_are_refused() {
        assert!(matches!(Catalog::parse(""), Err(CatalogError::Empty)));
        let text = "[documents.a]\nkey = \"k\"\nfilename = \"f\"\ntitle = \"t\"\nurl = \"x\"\n";
        assert!(matches!(Catalog::parse(text), Err(CatalogError::Parse(_))));
    }
}
