//! Reading a PDF once: from its bytes, with `lopdf`, what an incremental update of it needs (the
//! last `startxref` offset, the kind of its last cross-reference section, the trailer's `/Root`,
//! `/Info` and `/ID`, the next free object number, and every leaf page with its inherited
//! attributes), turned at once into the update's part that is the same for every recipient: the
//! font, the `q` stream and each page's dictionary rewritten under its own object number (for a
//! signed PDF, the field, its widgets and the form instead: see `annotate.rs`). The
//! parsed document is dropped before `read` returns; only those bytes and a few numbers per page
//! stay.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use lopdf::xref::XrefType;
use lopdf::{Dictionary, Document, LoadOptions, Object, ObjectId, Writer};

use super::stamp::Geometry;
use super::{CannotStamp, annotate, font};

/// The largest document read by default; a larger one cannot be stamped (`CannotStamp::TooLarge`).
/// Reading holds the parsed document in memory for a moment, a few times its size.
pub const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The most one object or cross-reference stream may inflate to while the document is read.
const MAX_DECOMPRESSED: usize = 64 * 1024 * 1024;
/// How many `/Parent` links an inherited attribute is looked up through.
const MAX_DEPTH: usize = 64;
/// The resource name the stamp's font is given, with a number after it if the page has it.
pub(super) const FONT_NAME: &[u8] = b"DocgateStamp";

/// The kind of cross-reference section the update ends with: the same as the document's last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XrefKind {
    /// A classic `xref` table and `trailer` dictionary.
    Table,
    /// A cross-reference stream (PDF 1.5).
    Stream,
}

/// One object the update writes, where the cross-reference section will point to it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placed {
    pub number: u32,
    pub generation: u16,
    /// Its offset from the start of the update.
    pub offset: u64,
}

/// One stamp stream: its object number, where it draws, and the font's resource name it uses.
#[derive(Debug)]
pub(super) struct StampStream {
    pub number: u32,
    pub geometry: Geometry,
    pub font_name: Vec<u8>,
    /// For an annotation's appearance, a form XObject: the dictionary's entries before
    /// `/Length`; for page content, `None`.
    pub form: Option<String>,
}

/// What stamping a document needs, read once; see [`read`].
#[derive(Debug)]
pub struct Structure {
    /// The original's length: the update's offsets start there.
    pub(super) original_len: u64,
    /// Where the original's last cross-reference section starts: the update's `/Prev`.
    pub(super) startxref: u64,
    pub(super) kind: XrefKind,
    /// `/Root`, `/Info` and `/ID` as the update's trailer carries them over, serialized.
    pub(super) trailer: Vec<u8>,
    /// The update's part shared by every recipient: a line break if the original does not end
    /// with one, the font, the `q` stream and every rewritten page dictionary.
    pub(super) head: Bytes,
    /// The objects in `head`.
    pub(super) head_objects: Vec<Placed>,
    /// The stamp streams, one per distinct page geometry and font name (nearly always one or
    /// two), written per recipient after `head`.
    pub(super) stamps: Vec<StampStream>,
    /// The first object number after the update's own objects (the xref stream's, for that kind).
    pub(super) next_number: u32,
    pages: usize,
    signed: bool,
}

impl Structure {
    /// How many pages get the stamp.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Whether the document says it holds signatures (`/AcroForm /SigFlags`). Its stamp is then
    /// not page content, which a validator comparing revisions reports as a change no signature
    /// allows, but a widget annotation per page of one new, read-only, unsigned signature field:
    /// the one addition validators accept after an approval signature (pyHanko's default
    /// policy judges it form filling). Its signatures stay valid, for the copy as a whole.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// The kind of the document's last cross-reference section, which the update repeats.
    pub fn xref_kind(&self) -> XrefKind {
        self.kind
    }

    /// The offset of the document's last cross-reference section (its last `startxref`).
    pub fn startxref(&self) -> u64 {
        self.startxref
    }

    /// The length of the document this structure was read from.
    pub fn original_len(&self) -> u64 {
        self.original_len
    }

    /// Roughly how many bytes this structure keeps in memory: the shared part of the update and
    /// a few numbers per page and per stamp geometry.
    pub fn kept_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.head.len()
            + self.trailer.len()
            + self.head_objects.len() * std::mem::size_of::<Placed>()
            + self
                .stamps
                .iter()
                .map(|s| {
                    std::mem::size_of::<StampStream>()
                        + s.font_name.len()
                        + s.form.as_ref().map_or(0, String::len)
                })
                .sum::<usize>()
    }
}

/// Reads `bytes`, a whole PDF of at most `limit` bytes, for stamping.
pub fn read(bytes: &[u8], limit: u64) -> Result<Structure, CannotStamp> {
    let size = bytes.len() as u64;
    if size > limit {
        return Err(CannotStamp::TooLarge { size, limit });
    }
    let options = LoadOptions {
        max_decompressed_size: Some(MAX_DECOMPRESSED),
        ..LoadOptions::default()
    };
    // The parser meets documents docgate did not make: should it panic on one, that document
    // cannot be stamped, and the process goes on (the panic hook logs where).
    let loaded = std::panic::catch_unwind(|| Document::load_mem_with_options(bytes, options))
        .map_err(|_| CannotStamp::Broken("the PDF parser failed on it"))?;
    let doc = match loaded {
        Ok(doc) => doc,
        Err(
            lopdf::Error::Decryption(_)
            | lopdf::Error::InvalidPassword
            | lopdf::Error::AlreadyEncrypted,
        ) => return Err(CannotStamp::Encrypted),
        Err(e) => return Err(CannotStamp::Unreadable(e)),
    };
    // lopdf opens a document encrypted for an empty user password and drops `/Encrypt` from the
    // trailer; an update must then be encrypted too, which this engine does not do.
    if doc.was_encrypted() || doc.trailer.has(b"Encrypt") {
        return Err(CannotStamp::Encrypted);
    }
    // An update chains to the original's cross-reference data with `/Prev`: if that data had to
    // be repaired to read the document, readers of the stamped copy would not see what we saw.
    if doc.xref_recovery.is_some() {
        return Err(CannotStamp::Broken(
            "its cross-reference data is damaged (it had to be repaired to be read)",
        ));
    }
    let startxref = doc.xref_start as u64;
    if startxref == 0 || startxref >= size {
        return Err(CannotStamp::Broken(
            "its startxref offset is out of the file",
        ));
    }
    let kind = match doc.reference_table.cross_reference_type {
        XrefType::CrossReferenceStream => XrefKind::Stream,
        XrefType::CrossReferenceTable => XrefKind::Table,
    };
    let trailer = trailer(&doc.trailer)?;

    let page_ids = pages(&doc);
    if page_ids.is_empty() {
        return Err(CannotStamp::NoPages);
    }
    // New objects are numbered after every number the document uses or declares.
    let declared = doc
        .trailer
        .get(b"Size")
        .and_then(Object::as_i64)
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let first = declared
        .max(doc.reference_table.size)
        .max(doc.max_id.saturating_add(1))
        .max(1);
    let signed = signed(&doc);
    if annotate::certified(&doc) {
        return Err(CannotStamp::Certified);
    }

    let mut head = Head::default();
    if !bytes.ends_with(b"\n") && !bytes.ends_with(b"\r") {
        head.bytes.push(b'\n');
    }
    let font_number = first;
    head.place(font_number, 0, font::FONT_DICTIONARY.as_bytes());
    let (stamps, next_number) = if signed {
        annotate::annotated(&doc, &page_ids, font_number, &mut head)?
    } else {
        drawn(&doc, &page_ids, font_number, &mut head)?
    };
    Ok(Structure {
        original_len: size,
        startxref,
        kind,
        trailer,
        head: Bytes::from(head.bytes),
        head_objects: head.objects,
        stamps,
        next_number,
        pages: page_ids.len(),
        signed,
    })
}

/// The update's shared part as it is written: its bytes and the objects in them.
#[derive(Default)]
pub(super) struct Head {
    bytes: Vec<u8>,
    objects: Vec<Placed>,
}

impl Head {
    /// Writes the object `number` `generation` with `body`.
    pub(super) fn place(&mut self, number: u32, generation: u16, body: &[u8]) {
        self.objects.push(Placed {
            number,
            generation,
            offset: self.bytes.len() as u64,
        });
        self.bytes
            .extend_from_slice(format!("{number} {generation} obj\n").as_bytes());
        self.bytes.extend_from_slice(body);
        self.bytes.extend_from_slice(b"\nendobj\n");
    }

    /// Writes `object` back as the object `id`.
    pub(super) fn place_object(
        &mut self,
        id: ObjectId,
        object: &Object,
    ) -> Result<(), CannotStamp> {
        let mut body = Vec::new();
        Writer::write_object(&mut body, object).map_err(|_| written_back())?;
        self.place(id.0, id.1, &body);
        Ok(())
    }
}

fn written_back() -> CannotStamp {
    CannotStamp::Broken("an object of it cannot be written back")
}

/// The stamp as page content: the `q` stream, and each page rewritten with its contents as
/// `[q, original…, Q+stamp]` and the font among its resources. Returns the stamp streams and the
/// next free object number.
fn drawn(
    doc: &Document,
    page_ids: &[ObjectId],
    font_number: u32,
    head: &mut Head,
) -> Result<(Vec<StampStream>, u32), CannotStamp> {
    let open_number = font_number + 1;
    let mut next_number = font_number + 2;
    head.place(open_number, 0, b"<< /Length 2 >>\nstream\nq\n\nendstream");

    let mut stamps: Vec<StampStream> = Vec::new();
    let mut by_geometry = HashMap::new();
    for id in page_ids {
        let page = Page::read(doc, *id)?;
        let mut dict = page.dict;
        let mut resources = page.resources;
        let mut fonts = page.fonts;
        let name = free_name(&fonts);
        let stamp_number = *by_geometry
            .entry((page.geometry.key(), name.clone()))
            .or_insert_with(|| {
                let number = next_number;
                next_number += 1;
                stamps.push(StampStream {
                    number,
                    geometry: page.geometry,
                    font_name: name.clone(),
                    form: None,
                });
                number
            });
        fonts.set(name.clone(), Object::Reference((font_number, 0)));
        resources.set("Font", Object::Dictionary(fonts));
        dict.set("Resources", Object::Dictionary(resources));
        let mut contents = Vec::with_capacity(page.contents.len() + 2);
        contents.push(Object::Reference((open_number, 0)));
        contents.extend(page.contents);
        contents.push(Object::Reference((stamp_number, 0)));
        dict.set("Contents", Object::Array(contents));
        head.place_object(*id, &Object::Dictionary(dict))?;
    }
    Ok((stamps, next_number))
}

/// Whether the catalog declares signatures: `/SigFlags` with SignaturesExist in `/AcroForm`. (A
/// certification, `/Perms /DocMDP`, is refused before: see [`certified`].)
fn signed(doc: &Document) -> bool {
    let Ok(catalog) = doc.catalog() else {
        return false;
    };
    let flags = catalog
        .get(b"AcroForm")
        .ok()
        .and_then(|form| doc.dereference(form).ok())
        .and_then(|(_, form)| form.as_dict().ok())
        .and_then(|form| form.get(b"SigFlags").ok())
        .and_then(|flags| doc.dereference(flags).ok())
        .and_then(|(_, flags)| flags.as_i64().ok())
        .unwrap_or(0);
    flags & 1 != 0
}

/// The trailer entries an update carries over: `/Root` (required), `/Info` and `/ID`.
fn trailer(trailer: &Dictionary) -> Result<Vec<u8>, CannotStamp> {
    let mut out = Vec::new();
    for key in [&b"Root"[..], b"Info", b"ID"] {
        match trailer.get(key) {
            Ok(value) => {
                out.extend_from_slice(b" /");
                out.extend_from_slice(key);
                out.push(b' ');
                Writer::write_object(&mut out, value)
                    .map_err(|_| CannotStamp::Broken("an object of it cannot be written back"))?;
            }
            Err(_) if key == b"Root" => {
                return Err(CannotStamp::Broken("its trailer has no /Root"));
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The leaf pages in order, each object once.
fn pages(doc: &Document) -> Vec<ObjectId> {
    let mut seen = HashSet::new();
    doc.page_iter().filter(|id| seen.insert(*id)).collect()
}

/// A name for the stamp's font that `fonts` does not use yet.
fn free_name(fonts: &Dictionary) -> Vec<u8> {
    let mut name = FONT_NAME.to_vec();
    let mut n = 0u32;
    while fonts.has(&name) {
        n += 1;
        name = [FONT_NAME, n.to_string().as_bytes()].concat();
    }
    name
}

/// One leaf page as the update rewrites it.
pub(super) struct Page {
    /// The page's own dictionary, with its inherited `/MediaBox`, `/CropBox` and `/Rotate` made
    /// its own.
    dict: Dictionary,
    /// Its (inherited) resources, copied, without `/Font`.
    resources: Dictionary,
    /// Its (inherited) font resources, copied.
    fonts: Dictionary,
    /// References to its content streams, in order.
    contents: Vec<Object>,
    pub(super) geometry: Geometry,
}

impl Page {
    pub(super) fn read(doc: &Document, id: ObjectId) -> Result<Page, CannotStamp> {
        let own = doc.get_dictionary(id).map_err(CannotStamp::Unreadable)?;
        let mut dict = own.clone();
        // Inherited attributes become the page's own, resolved, so the rewritten page does not
        // depend on what the tree above it holds.
        for key in [&b"MediaBox"[..], b"CropBox", b"Rotate"] {
            if !own.has(key)
                && let Some(value) = inherited(doc, own, key)?
            {
                dict.set(key, deref(doc, value)?.clone());
            }
        }
        let media = match dict.get(b"MediaBox") {
            Ok(value) => rectangle(doc, value)?,
            Err(_) => return Err(CannotStamp::Broken("a page has no /MediaBox")),
        };
        let visible = match dict.get(b"CropBox") {
            Ok(value) => intersect(rectangle(doc, value)?, media).unwrap_or(media),
            Err(_) => media,
        };
        let rotate = match dict.get(b"Rotate") {
            Ok(value) => deref(doc, value)?
                .as_i64()
                .map_err(|_| CannotStamp::Broken("a page's /Rotate is not a number"))?,
            Err(_) => 0,
        };
        let rotate = match rotate.rem_euclid(360) {
            r @ (0 | 90 | 180 | 270) => r as u16,
            _ => {
                return Err(CannotStamp::Broken(
                    "a page's /Rotate is not a multiple of 90",
                ));
            }
        };
        let mut resources = match inherited(doc, own, b"Resources")? {
            Some(value) => dictionary(doc, value, "a page's /Resources is not a dictionary")?,
            None => Dictionary::new(),
        };
        let fonts = match resources.remove(b"Font") {
            Some(value) => {
                dictionary(doc, &value, "a page's /Font resources are not a dictionary")?
            }
            None => Dictionary::new(),
        };
        let contents = match own.get(b"Contents") {
            Err(_) => Vec::new(),
            Ok(value) => contents(doc, value)?,
        };
        Ok(Page {
            dict,
            resources,
            fonts,
            contents,
            geometry: Geometry { visible, rotate },
        })
    }
}

/// `key` from `page` or the nearest ancestor that has it.
fn inherited<'a>(
    doc: &'a Document,
    page: &'a Dictionary,
    key: &[u8],
) -> Result<Option<&'a Object>, CannotStamp> {
    let mut node = page;
    for _ in 0..MAX_DEPTH {
        if let Ok(value) = node.get(key) {
            return Ok(Some(value));
        }
        match node.get(b"Parent").and_then(Object::as_reference) {
            Ok(parent) => {
                node = doc
                    .get_dictionary(parent)
                    .map_err(CannotStamp::Unreadable)?
            }
            Err(_) => return Ok(None),
        }
    }
    Err(CannotStamp::Broken("its page tree is too deep or loops"))
}

pub(super) fn deref<'a>(doc: &'a Document, value: &'a Object) -> Result<&'a Object, CannotStamp> {
    doc.dereference(value)
        .map(|(_, object)| object)
        .map_err(CannotStamp::Unreadable)
}

/// A copy of the dictionary `value` is or refers to.
fn dictionary(
    doc: &Document,
    value: &Object,
    otherwise: &'static str,
) -> Result<Dictionary, CannotStamp> {
    match deref(doc, value)? {
        Object::Dictionary(dict) => Ok(dict.clone()),
        Object::Null => Ok(Dictionary::new()),
        _ => Err(CannotStamp::Broken(otherwise)),
    }
}

/// The page's `/Contents` as a list of references to streams, in order.
fn contents(doc: &Document, value: &Object) -> Result<Vec<Object>, CannotStamp> {
    let not_streams = CannotStamp::Broken("a page's /Contents is not a stream or an array of them");
    let items = match value {
        Object::Reference(id) => match doc.get_object(*id) {
            Ok(Object::Array(items)) => items,
            // A stream, or an object missing from the file (which readers take as empty).
            Ok(Object::Stream(_) | Object::Null) | Err(_) => return Ok(vec![value.clone()]),
            Ok(_) => return Err(not_streams),
        },
        Object::Array(items) => items,
        Object::Null => return Ok(Vec::new()),
        _ => return Err(not_streams),
    };
    items
        .iter()
        .map(|item| match item {
            Object::Reference(_) => Ok(item.clone()),
            _ => Err(CannotStamp::Broken(
                "a page's /Contents is not a stream or an array of them",
            )),
        })
        .collect()
}

/// A rectangle `[llx lly urx ury]`, corners put in order.
fn rectangle(doc: &Document, value: &Object) -> Result<[f64; 4], CannotStamp> {
    let bad = || CannotStamp::Broken("a page's box is not a rectangle");
    let Object::Array(items) = deref(doc, value)? else {
        return Err(bad());
    };
    let numbers = items
        .iter()
        .map(|item| match deref(doc, item)? {
            Object::Integer(n) => Ok(*n as f64),
            Object::Real(r) => Ok(f64::from(*r)),
            _ => Err(bad()),
        })
        .collect::<Result<Vec<f64>, _>>()?;
    let [a, b, c, d] = numbers[..] else {
        return Err(bad());
    };
    if !(a.is_finite() && b.is_finite() && c.is_finite() && d.is_finite()) {
        return Err(bad());
    }
    Ok([a.min(c), b.min(d), a.max(c), b.max(d)])
}

/// The part of `a` within `b`, if it has an area.
fn intersect(a: [f64; 4], b: [f64; 4]) -> Option<[f64; 4]> {
    let r = [
        a[0].max(b[0]),
        a[1].max(b[1]),
        a[2].min(b[2]),
        a[3].min(b[3]),
    ];
    (r[0] < r[2] && r[1] < r[3]).then_some(r)
}
