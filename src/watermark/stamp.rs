//! The stamp itself: where the line goes on a page (its visible box and rotation) and the content
//! stream that draws it, upright as the page is shown, centred in the bottom margin; or, for a
//! signed PDF, the margin strip its annotation covers and the appearance stream drawing it.

use super::font;

/// The stamp's font size, in points, when the line fits across the page.
pub const FONT_SIZE: f64 = 7.0;
/// The smallest size a long line is shrunk to on a narrow page; beyond, it runs past the edges.
const MIN_FONT_SIZE: f64 = 4.0;
/// The baseline's height above the shown page's bottom edge, in points.
const BASELINE: f64 = 10.0;
/// The space kept free at the left and right of the line, in points.
const SIDE: f64 = 18.0;

/// What decides where the stamp goes on a page: its visible box (the CropBox within the
/// MediaBox, `[llx lly urx ury]` in default user space) and its `/Rotate`, one of 0, 90, 180, 270.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub visible: [f64; 4],
    pub rotate: u16,
}

impl Geometry {
    /// A key equal for equal geometries, so pages of one size and rotation share one stamp.
    pub fn key(&self) -> ([u64; 4], u16) {
        (self.visible.map(f64::to_bits), self.rotate)
    }
}

/// The content stream drawing `encoded` (WinAnsi bytes) on a page of `geometry`, with the font
/// under the resource name `font_name`. It starts with `Q`, closing the `q` stream put before the
/// page's own contents, so nothing those contents left in the graphics state (a transformation,
/// a clip, a colour, a text mode) applies to the stamp; the text state it uses is set explicitly.
pub fn content(geometry: &Geometry, font_name: &[u8], encoded: &[u8]) -> Vec<u8> {
    let mut out = b"Q\n".to_vec();
    out.extend_from_slice(&appearance(geometry, font_name, encoded));
    out
}

/// The line alone, in a `q`/`Q` pair, in the page's default user space: a stamp annotation's
/// appearance stream, whose `/BBox` is [`margin`] and whose matrix is the identity, so it lands
/// exactly where [`content`] draws it.
pub fn appearance(geometry: &Geometry, font_name: &[u8], encoded: &[u8]) -> Vec<u8> {
    let (width, height) = shown(geometry);
    let advance = f64::from(font::width(encoded)) / 1000.0;
    let room = (width - 2.0 * SIDE).max(width / 2.0);
    let size = if advance * FONT_SIZE > room && advance > 0.0 {
        (room / advance).max(MIN_FONT_SIZE)
    } else {
        FONT_SIZE
    };
    // Where the line starts, in the page as shown: centred, on the bottom margin's baseline.
    let dx = ((width - advance * size) / 2.0).max(0.0);
    let dy = BASELINE.min(height / 3.0);
    let (x, y) = user_space(geometry, dx, dy);
    // The text direction that reads upright once the viewer turns the page by /Rotate degrees
    // clockwise.
    let [a, b, c, d] = match geometry.rotate {
        90 => [0, 1, -1, 0],
        180 => [-1, 0, 0, -1],
        270 => [0, -1, 1, 0],
        _ => [1, 0, 0, 1],
    };
    let mut out = Vec::with_capacity(160 + encoded.len() * 2);
    out.extend_from_slice(b"q\n0 g\nBT\n/");
    out.extend_from_slice(font_name);
    out.extend_from_slice(
        format!(
            " {} Tf\n0 Tc 0 Tw 100 Tz 0 Ts 0 Tr\n{a} {b} {c} {d} {} {} Tm\n",
            number(size),
            number(x),
            number(y)
        )
        .as_bytes(),
    );
    out.extend_from_slice(&font::literal(encoded));
    out.extend_from_slice(b" Tj\nET\nQ\n");
    out
}

/// The strip the line is drawn in, in default user space `[llx lly urx ury]`: the whole width of
/// the page as shown, from its bottom edge to a little above the line. A stamp annotation's
/// `/Rect` and its appearance's `/BBox`; the same for every text, so it is part of what every
/// recipient shares.
pub fn margin(geometry: &Geometry) -> [f64; 4] {
    let (width, height) = shown(geometry);
    let top = BASELINE.min(height / 3.0) + FONT_SIZE + 2.0;
    let (ax, ay) = user_space(geometry, 0.0, 0.0);
    let (bx, by) = user_space(geometry, width, top.min(height));
    [ax.min(bx), ay.min(by), ax.max(bx), ay.max(by)]
}

/// The page's width and height as shown, after `/Rotate`.
fn shown(geometry: &Geometry) -> (f64, f64) {
    let [x0, y0, x1, y1] = geometry.visible;
    match geometry.rotate {
        90 | 270 => (y1 - y0, x1 - x0),
        _ => (x1 - x0, y1 - y0),
    }
}

/// The point `(dx, dy)` of the page as shown (from its bottom left corner, after `/Rotate`) in
/// default user space.
fn user_space(geometry: &Geometry, dx: f64, dy: f64) -> (f64, f64) {
    let [x0, y0, x1, y1] = geometry.visible;
    match geometry.rotate {
        90 => (x1 - dy, y0 + dx),
        180 => (x1 - dx, y1 - dy),
        270 => (x0 + dy, y1 - dx),
        _ => (x0 + dx, y0 + dy),
    }
}

/// A PDF number with at most two decimals and no exponent.
pub fn number(value: f64) -> String {
    let text = format!("{value:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    match text {
        "-0" | "" => "0".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(geometry: Geometry, line: &str) -> String {
        String::from_utf8(content(&geometry, b"F9", &font::encode(line))).unwrap_or_default()
    }

    #[test]
    fn upright_page_gets_the_line_centred_near_its_bottom() {
        let page = Geometry {
            visible: [0.0, 0.0, 612.0, 792.0],
            rotate: 0,
        };
        let drawn = text(page, "Il");
        // 500/1000 of 7 pt wide: starts at (612 - 3.5) / 2.
        assert!(drawn.contains("/F9 7 Tf"), "{drawn}");
        assert!(drawn.contains("1 0 0 1 304.25 10 Tm"), "{drawn}");
        assert!(drawn.starts_with("Q\nq\n") && drawn.ends_with("ET\nQ\n"));
    }

    #[test]
    fn the_margin_strip_is_the_bottom_edge_as_shown() {
        let box_ = [10.0, 20.0, 410.0, 620.0];
        let strip = |rotate| {
            margin(&Geometry {
                visible: box_,
                rotate,
            })
        };
        // Upright: the bottom 19 pt of the box, its whole width.
        assert_eq!(strip(0), [10.0, 20.0, 410.0, 39.0]);
        // A quarter turn shows user space's right edge at the bottom.
        assert_eq!(strip(90), [391.0, 20.0, 410.0, 620.0]);
        assert_eq!(strip(180), [10.0, 601.0, 410.0, 620.0]);
        assert_eq!(strip(270), [10.0, 20.0, 29.0, 620.0]);
    }

    #[test]
    fn rotated_pages_get_the_line_along_the_edge_shown_at_the_bottom() {
        let box_ = [10.0, 20.0, 410.0, 620.0];
        let quarter = text(
            Geometry {
                visible: box_,
                rotate: 90,
            },
            "",
        );
        // Shown 600 wide and 400 high; its bottom edge is user space's right edge (x = 410).
        assert!(quarter.contains("0 1 -1 0 400 320 Tm"), "{quarter}");
        let half = text(
            Geometry {
                visible: box_,
                rotate: 180,
            },
            "",
        );
        assert!(half.contains("-1 0 0 -1 210 610 Tm"), "{half}");
        let three = text(
            Geometry {
                visible: box_,
                rotate: 270,
            },
            "",
        );
        assert!(three.contains("0 -1 1 0 20 320 Tm"), "{three}");
    }

    #[test]
    fn a_long_line_shrinks_to_fit_a_narrow_page() {
        let page = Geometry {
            visible: [0.0, 0.0, 100.0, 100.0],
            rotate: 0,
        };
        let drawn = text(page, &"W".repeat(20));
        // 20 × 0.944 em in 64 pt of room: 3.39 pt, held at the 4 pt floor.
        assert!(drawn.contains("/F9 4 Tf"), "{drawn}");
    }
}
