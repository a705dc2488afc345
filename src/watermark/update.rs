//! One recipient's update: the shared part read once, then the stamp streams drawing this
//! recipient's line and a cross-reference section of the original's last kind (a classic table
//! or a stream) with `/Prev`, `/Size` and the carried-over trailer entries, and `startxref`.

use bytes::Bytes;

use super::font;
use super::stamp;
use super::structure::{Placed, Structure, XrefKind};

/// The bytes to append after the original document, whole before the first byte is sent: the
/// part every recipient shares (kept once per document) and this recipient's own.
#[derive(Debug, Clone)]
pub struct Update {
    shared: Bytes,
    own: Bytes,
}

impl Update {
    /// How many bytes the update adds to the original.
    pub fn len(&self) -> u64 {
        (self.shared.len() + self.own.len()) as u64
    }

    /// An update always holds at least a cross-reference section.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The update's bytes in order, as chunks for a response body (the first is shared with
    /// every other recipient's update of the document, not copied).
    pub fn chunks(&self) -> [Bytes; 2] {
        [self.shared.clone(), self.own.clone()]
    }

    /// The bytes this recipient's update holds beyond the shared part.
    pub fn own_len(&self) -> usize {
        self.own.len()
    }

    /// The update as one buffer (tests, small documents).
    pub fn to_vec(&self) -> Vec<u8> {
        [&self.shared[..], &self.own[..]].concat()
    }
}

impl Structure {
    /// The update stamping `text` (the final line: the caller fills in the address and date) on
    /// every page. Characters WinAnsiEncoding lacks become `?`.
    pub fn stamp(&self, text: &str) -> Update {
        let encoded = font::encode(text);
        let base = self.original_len + self.head.len() as u64;
        let mut own = Vec::with_capacity(
            self.stamps.len() * (200 + encoded.len() * 2) + self.head_objects.len() * 24 + 256,
        );
        let mut objects: Vec<Placed> = self
            .head_objects
            .iter()
            .map(|placed| Placed {
                offset: self.original_len + placed.offset,
                ..*placed
            })
            .collect();
        for stamp in &self.stamps {
            objects.push(Placed {
                number: stamp.number,
                generation: 0,
                offset: base + own.len() as u64,
            });
            let content = match &stamp.form {
                None => stamp::content(&stamp.geometry, &stamp.font_name, &encoded),
                Some(_) => stamp::appearance(&stamp.geometry, &stamp.font_name, &encoded),
            };
            own.extend_from_slice(
                format!(
                    "{} 0 obj\n<<{} /Length {} >>\nstream\n",
                    stamp.number,
                    stamp.form.as_deref().unwrap_or_default(),
                    content.len()
                )
                .as_bytes(),
            );
            own.extend_from_slice(&content);
            own.extend_from_slice(b"\nendstream\nendobj\n");
        }
        let xref_offset = base + own.len() as u64;
        match self.kind {
            XrefKind::Table => self.table(&mut objects, &mut own),
            XrefKind::Stream => self.xref_stream(&mut objects, xref_offset, &mut own),
        }
        own.extend_from_slice(format!("startxref\n{xref_offset}\n%%EOF\n").as_bytes());
        Update {
            shared: self.head.clone(),
            own: Bytes::from(own),
        }
    }

    /// A classic `xref` section and its `trailer`.
    fn table(&self, objects: &mut [Placed], out: &mut Vec<u8>) {
        objects.sort_by_key(|placed| placed.number);
        out.extend_from_slice(b"xref\n");
        for run in runs(objects) {
            out.extend_from_slice(format!("{} {}\n", run[0].number, run.len()).as_bytes());
            for placed in run {
                // Each entry exactly 20 bytes, its end of line two.
                out.extend_from_slice(
                    format!("{:010} {:05} n\r\n", placed.offset, placed.generation).as_bytes(),
                );
            }
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Prev {}",
                self.next_number, self.startxref
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.trailer);
        out.extend_from_slice(b" >>\n");
    }

    /// A cross-reference stream object at `offset`, listing itself too.
    fn xref_stream(&self, objects: &mut Vec<Placed>, offset: u64, out: &mut Vec<u8>) {
        let number = self.next_number;
        objects.push(Placed {
            number,
            generation: 0,
            offset,
        });
        objects.sort_by_key(|placed| placed.number);
        // Wide enough for the largest offset, which is this stream's own.
        let width = (8 - (offset.leading_zeros() / 8) as usize).max(1);
        let mut data = Vec::with_capacity(objects.len() * (width + 3));
        let mut index = String::new();
        for run in runs(objects) {
            index.push_str(&format!("{} {} ", run[0].number, run.len()));
            for placed in run {
                data.push(1);
                data.extend_from_slice(&placed.offset.to_be_bytes()[8 - width..]);
                data.extend_from_slice(&placed.generation.to_be_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                "{number} 0 obj\n<< /Type /XRef /Size {} /Index [{}] /W [1 {width} 2] /Prev {}",
                number + 1,
                index.trim_end(),
                self.startxref
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.trailer);
        out.extend_from_slice(format!(" /Length {} >>\nstream\n", data.len()).as_bytes());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    }
}

/// `sorted` cut into runs of consecutive object numbers (a cross-reference subsection each).
fn runs(sorted: &[Placed]) -> impl Iterator<Item = &[Placed]> {
    sorted.chunk_by(|a, b| b.number == a.number + 1)
}
