//! Stamping a PDF with the name of its recipient by an incremental update: the original bytes are
//! never changed, and the stamp is appended after them (PDF 32000-1 §7.5.6). The original can
//! therefore stream unchanged and its signed byte ranges stay intact.
//!
//! A signed PDF ([`Structure::signed`]) is stamped without touching its pages' content, which a
//! validator comparing revisions (pyHanko, Acrobat) reports as a change no signature allows: the
//! line is the appearance of a widget annotation on each page, in the same place, of one new
//! read-only, unsigned signature field, the one kind of addition validators accept after an
//! approval signature (pyHanko's default policy does not accept other annotations yet). A
//! certified PDF (DocMDP) allows no new field at all and is refused ([`CannotStamp::Certified`]).
//!
//! Two steps, so a document is parsed once and not per download:
//! - [`read`] parses a whole document (at most [`MAX_DOCUMENT_BYTES`], or the caller's limit) and
//!   keeps only what updates need ([`Structure`]): the last `startxref`, the kind of the last
//!   cross-reference section, the trailer's `/Root`, `/Info` and `/ID`, and the part of the update
//!   that is the same for every recipient (each page's dictionary rewritten, the font, the `q`
//!   stream; for a signed PDF the field, its widgets and the form), about 150 to 400 bytes per
//!   page plus whatever resources the page inherits.
//! - [`Structure::stamp`] computes one recipient's [`Update`] from the final line of text: one
//!   small content stream (or appearance stream) per page size and rotation, and a new
//!   cross-reference section (about 20 bytes per page for a table, 7 for a stream). Its length is
//!   known before the first byte is sent.
//!
//! On any other PDF, each page's `/Contents` becomes `[q, original contents…, Q+stamp]`, so
//! nothing the original leaves in the graphics state moves or hides the stamp; its resources
//! (inherited ones copied to the page) gain the standard Helvetica font under a name the page does
//! not use. Either way the stamp is about 7 pt, centred in the bottom margin of the visible box
//! (CropBox within MediaBox), upright as the page is shown after `/Rotate`.
//!
//! What it cannot stamp safely it refuses with [`CannotStamp`]; the caller chooses between serving
//! the document unstamped and refusing it.

mod annotate;
mod font;
mod stamp;
mod structure;
mod update;

pub use structure::{MAX_DOCUMENT_BYTES, Structure, XrefKind};
pub use update::Update;

/// Why a document cannot be stamped.
#[derive(Debug, thiserror::Error)]
pub enum CannotStamp {
    /// Encrypted (even with an empty user password): an update would have to be encrypted too.
    #[error("the PDF is encrypted")]
    Encrypted,
    /// Larger than the limit a document is read up to.
    #[error("the PDF is {size} bytes, over the {limit} bytes a stamp reads")]
    TooLarge { size: u64, limit: u64 },
    /// Not a PDF lopdf can read.
    #[error("the PDF cannot be read")]
    Unreadable(#[source] lopdf::Error),
    /// Read, but its structure is not one an update can safely extend.
    #[error("the PDF cannot be stamped safely: {0}")]
    Broken(&'static str),
    /// Certified (DocMDP): the certification allows no new field, so any stamp would break it.
    #[error("the PDF is certified, and its certification allows no stamp")]
    Certified,
    /// A page tree without a page.
    #[error("the PDF has no pages")]
    NoPages,
}

/// Reads a whole document, `bytes`, for stamping; larger than `limit` bytes is
/// [`CannotStamp::TooLarge`] (pass [`MAX_DOCUMENT_BYTES`] for the default).
pub fn read(bytes: &[u8], limit: u64) -> Result<Structure, CannotStamp> {
    structure::read(bytes, limit)
}
