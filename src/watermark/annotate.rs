//! The stamp of a signed PDF, whose pages' content a signature validator does not let change
//! after signing: one new form field, read-only, of the one kind validators accept after an
//! approval signature (an unsigned signature field, as a signer adds for the next signature),
//! with a widget annotation on each page, in the margin strip, whose appearance is the line.
//! Each page is rewritten only to add its widget to `/Annots`, and the form to list the field.
//! A certified PDF allows no new field: [`certified`] tells the reader to refuse it.

use std::collections::{HashMap, HashSet};

use lopdf::{Document, Object, ObjectId};

use super::CannotStamp;
use super::stamp;
use super::structure::{FONT_NAME, Head, Page, StampStream, deref};

/// The name of the field a signed PDF's stamp is, with a number after it if the form has it.
const FIELD_NAME: &str = "DocgateWatermark";
/// A stamp widget's annotation flags: Print, ReadOnly, Locked, LockedContents.
const WIDGET_FLAGS: u32 = 4 | 64 | 128 | 512;

/// Writes the field, its widgets, the pages and the form into `head`; returns the appearance
/// streams (one per page geometry, written per recipient) and the next free object number.
pub(super) fn annotated(
    doc: &Document,
    page_ids: &[ObjectId],
    font_number: u32,
    head: &mut Head,
) -> Result<(Vec<StampStream>, u32), CannotStamp> {
    let field_number = font_number + 1;
    let mut next_number = font_number + 2;
    let mut stamps: Vec<StampStream> = Vec::new();
    let mut by_geometry = HashMap::new();
    let mut widgets = Vec::with_capacity(page_ids.len());
    for id in page_ids {
        let geometry = Page::read(doc, *id)?.geometry;
        let strip = stamp::margin(&geometry);
        let appearance = *by_geometry.entry(geometry.key()).or_insert_with(|| {
            let number = next_number;
            next_number += 1;
            stamps.push(StampStream {
                number,
                geometry,
                font_name: FONT_NAME.to_vec(),
                form: Some(format!(
                    " /Type /XObject /Subtype /Form /BBox {} /Resources << /Font << /{} {font_number} 0 R >> >>",
                    rect(strip),
                    String::from_utf8_lossy(FONT_NAME),
                )),
            });
            number
        });
        let widget = next_number;
        next_number += 1;
        widgets.push(widget);
        head.place(
            widget,
            0,
            format!(
                "<< /Type /Annot /Subtype /Widget /Parent {field_number} 0 R /P {} {} R /Rect {} \
                 /F {WIDGET_FLAGS} /AP << /N {appearance} 0 R >> >>",
                id.0,
                id.1,
                rect(strip)
            )
            .as_bytes(),
        );
        let mut page = doc
            .get_dictionary(*id)
            .map_err(CannotStamp::Unreadable)?
            .clone();
        let mut annots = match page.get(b"Annots") {
            Err(_) => Vec::new(),
            Ok(value) => match deref(doc, value)? {
                Object::Array(items) => items.clone(),
                Object::Null => Vec::new(),
                _ => return Err(CannotStamp::Broken("a page's /Annots is not an array")),
            },
        };
        annots.push(Object::Reference((widget, 0)));
        page.set("Annots", Object::Array(annots));
        head.place_object(*id, &Object::Dictionary(page))?;
    }

    // The form: its dictionary (or the catalog holding it) rewritten to list the new field.
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|_| CannotStamp::Broken("its trailer's /Root is not a reference"))?;
    let catalog = doc.get_dictionary(root).map_err(CannotStamp::Unreadable)?;
    let (form_id, mut form) = match catalog.get(b"AcroForm") {
        Ok(Object::Reference(id)) => (
            Some(*id),
            doc.get_dictionary(*id)
                .map_err(CannotStamp::Unreadable)?
                .clone(),
        ),
        Ok(Object::Dictionary(form)) => (None, form.clone()),
        _ => {
            return Err(CannotStamp::Broken(
                "its signatures' form is not a dictionary",
            ));
        }
    };
    let mut fields = match form.get(b"Fields") {
        Err(_) => Vec::new(),
        Ok(value) => match deref(doc, value)? {
            Object::Array(items) => items.clone(),
            _ => return Err(CannotStamp::Broken("its form's /Fields is not an array")),
        },
    };
    let name = free_field_name(doc, &fields);
    fields.push(Object::Reference((field_number, 0)));
    form.set("Fields", Object::Array(fields));
    match form_id {
        Some(id) => head.place_object(id, &Object::Dictionary(form))?,
        None => {
            let mut catalog = catalog.clone();
            catalog.set("AcroForm", Object::Dictionary(form));
            head.place_object(root, &Object::Dictionary(catalog))?;
        }
    }
    let kids: Vec<String> = widgets.iter().map(|n| format!("{n} 0 R")).collect();
    head.place(
        field_number,
        0,
        format!(
            "<< /FT /Sig /T ({name}) /Ff 1 /Kids [{}] >>",
            kids.join(" ")
        )
        .as_bytes(),
    );
    Ok((stamps, next_number))
}

/// A rectangle as a PDF array.
fn rect([a, b, c, d]: [f64; 4]) -> String {
    format!(
        "[{} {} {} {}]",
        stamp::number(a),
        stamp::number(b),
        stamp::number(c),
        stamp::number(d)
    )
}

/// A name for the stamp's field that no field at the top of the form has (a copy stamped
/// before has one).
fn free_field_name(doc: &Document, fields: &[Object]) -> String {
    let names: HashSet<Vec<u8>> = fields
        .iter()
        .filter_map(|field| deref(doc, field).ok())
        .filter_map(|field| field.as_dict().ok())
        .filter_map(|field| field.get(b"T").ok())
        .filter_map(|name| name.as_str().ok())
        .map(<[u8]>::to_vec)
        .collect();
    let mut name = FIELD_NAME.to_owned();
    let mut n = 0u32;
    while names.contains(name.as_bytes()) {
        n += 1;
        name = format!("{FIELD_NAME}{n}");
    }
    name
}

/// Whether the document is certified (`/Perms /DocMDP`): a certification allows no change
/// (`/P 1`), or only filling in and signing the fields it has (`/P 2`), or those and comments
/// (`/P 3`); none of them a new field, which is what the stamp of a signed PDF is.
pub(super) fn certified(doc: &Document) -> bool {
    doc.catalog()
        .ok()
        .and_then(|catalog| catalog.get(b"Perms").ok())
        .and_then(|perms| doc.dereference(perms).ok())
        .and_then(|(_, perms)| perms.as_dict().ok())
        .is_some_and(|perms| perms.has(b"DocMDP"))
}
