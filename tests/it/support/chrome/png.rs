//! Screenshots checked as PNG: whole and well-formed, with their size.

/// Checks that `bytes` are a whole, well-formed PNG (signature, every chunk's CRC, `IHDR` first
/// and `IEND` last) and returns its width and height.
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    assert!(bytes.starts_with(SIGNATURE), "not a PNG");
    let mut at = SIGNATURE.len();
    let mut size = None;
    let mut ended = false;
    while at < bytes.len() {
        assert!(!ended, "bytes after IEND");
        assert!(at + 12 <= bytes.len(), "truncated chunk header at {at}");
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let end = at + 8 + len;
        assert!(end + 4 <= bytes.len(), "truncated chunk at {at}");
        let kind = &bytes[at + 4..at + 8];
        let crc = u32::from_be_bytes(bytes[end..end + 4].try_into().unwrap());
        assert_eq!(
            crc32(&bytes[at + 4..end]),
            crc,
            "bad CRC in a {kind:?} chunk"
        );
        match kind {
            b"IHDR" => {
                assert_eq!(at, SIGNATURE.len(), "IHDR is not the first chunk");
                let data = &bytes[at + 8..end];
                size = Some((
                    u32::from_be_bytes(data[0..4].try_into().unwrap()),
                    u32::from_be_bytes(data[4..8].try_into().unwrap()),
                ));
            }
            b"IEND" => ended = true,
            _ => {}
        }
        at = end + 4;
    }
    assert!(ended, "no IEND: the PNG is cut short");
    size.expect("no IHDR")
}

/// CRC-32 (ISO-HDLC, as PNG uses), bit by bit: the PNGs here are small.
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn png_checks_find_cut_and_corrupt_images() {
    // A 1x1 PNG, as Chromium would write it.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    };
    chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0]);
    chunk(b"IDAT", &[0x78, 0x9c, 0x63, 0x60, 0, 0, 0, 2, 0, 1]);
    chunk(b"IEND", &[]);
    assert_eq!(png_size(&png), (1, 1));
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the CRC-32 check value");
    let cut = png[..png.len() - 12].to_vec();
    assert!(std::panic::catch_unwind(|| png_size(&cut)).is_err());
    let mut corrupt = png.clone();
    corrupt[40] ^= 1;
    assert!(std::panic::catch_unwind(|| png_size(&corrupt)).is_err());
}
