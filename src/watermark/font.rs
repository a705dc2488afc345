//! The stamp's font: standard Type 1 Helvetica (one of the 14 fonts every PDF reader has, so
//! nothing is embedded) in WinAnsiEncoding. Turns text into the bytes of a PDF string in that
//! encoding, and measures it with Helvetica's widths to centre and fit the line.

/// The font dictionary the update writes once and every stamped page names.
pub const FONT_DICTIONARY: &str =
    "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>";

/// What a character WinAnsiEncoding cannot hold becomes.
const REPLACEMENT: u8 = b'?';

/// The WinAnsiEncoding code of `c`, or `?` for a character it cannot encode. Line breaks and tabs
/// become spaces (the stamp is one line); other control characters become `?`.
pub fn encode_char(c: char) -> u8 {
    match c {
        '\t' | '\n' | '\r' => b' ',
        ' '..='~' => c as u8,
        // ISO-8859-1's upper half is WinAnsi's (U+00A0..U+00FF at the same codes).
        '\u{a0}'..='\u{ff}' => c as u32 as u8,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => REPLACEMENT,
    }
}

/// `text` in WinAnsiEncoding, one byte per character.
pub fn encode(text: &str) -> Vec<u8> {
    text.chars().map(encode_char).collect()
}

/// `encoded` as a PDF literal string, parentheses included: `(`, `)` and `\` escaped, and every
/// byte outside printable ASCII written in octal so the content stream stays plain text.
pub fn literal(encoded: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded.len() + 2);
    out.push(b'(');
    for &byte in encoded {
        match byte {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
            b' '..=b'~' => out.push(byte),
            _ => out.extend_from_slice(format!("\\{byte:03o}").as_bytes()),
        }
    }
    out.push(b')');
    out
}

/// The advance width of `encoded` in Helvetica, in thousandths of the font size.
pub fn width(encoded: &[u8]) -> u32 {
    encoded.iter().map(|&code| glyph_width(code)).sum()
}

/// Helvetica's advance width of one WinAnsi code (Adobe's AFM metrics for printable ASCII and the
/// Latin-1 letters; the typical 556 for the few other symbols, which only centres them roughly).
fn glyph_width(code: u8) -> u32 {
    match code {
        b' ' | b'!' | b',' | b'.' | b'/' | b':' | b';' | b'[' | b'\\' | b']' | b'I' | b'f'
        | b't' => 278,
        b'"' => 355,
        b'%' => 889,
        b'&' | b'A' | b'B' | b'E' | b'K' | b'P' | b'S' | b'V' | b'X' | b'Y' => 667,
        b'\'' => 191,
        b'(' | b')' | b'-' | b'`' | b'r' => 333,
        b'*' => 389,
        b'+' | b'<' | b'=' | b'>' | b'~' => 584,
        b'@' => 1015,
        b'C' | b'D' | b'H' | b'N' | b'R' | b'U' => 722,
        b'F' | b'T' | b'Z' => 611,
        b'G' | b'O' | b'Q' => 778,
        b'J' => 500,
        b'L' => 556,
        b'M' | b'm' => 833,
        b'W' => 944,
        b'^' => 469,
        b'c' | b'k' | b's' | b'v' | b'x' | b'y' | b'z' => 500,
        b'i' | b'j' | b'l' => 222,
        b'w' => 722,
        b'{' | b'}' => 334,
        b'|' => 260,
        0xc0..=0xc5 | 0xc8..=0xcb | 0xdd | 0xde => 667,
        0xc6 => 1000,
        0xc7 | 0xd0 | 0xd1 | 0xd9..=0xdc => 722,
        0xcc..=0xcf | 0xec..=0xef => 278,
        0xd2..=0xd6 | 0xd8 => 778,
        0xd7 | 0xf7 => 584,
        0xdf | 0xf8 => 611,
        0xe6 => 889,
        0xe7 | 0xfd | 0xff => 500,
        // Digits, the other lowercase letters and everything else.
        _ => 556,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_latin_text_and_replaces_the_rest() {
        assert_eq!(encode("Zoë €5"), b"Zo\xeb \x805");
        assert_eq!(encode("日本\u{7}"), b"???");
        assert_eq!(encode("a\nb"), b"a b");
    }

    #[test]
    fn escapes_what_a_literal_string_cannot_hold() {
        assert_eq!(literal(b"a(b)c\\d"), b"(a\\(b\\)c\\\\d)".to_vec());
        assert_eq!(literal(b"\xeb\x0a"), b"(\\353\\012)".to_vec());
    }

    #[test]
    fn measures_with_helvetica_widths() {
        assert_eq!(width(b"Il"), 278 + 222);
        assert_eq!(width(b"@W"), 1015 + 944);
    }
}
