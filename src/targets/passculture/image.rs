//! Offer images. pass Culture takes the image itself (`image.file`, base64), not a URL, and only a PNG or
//! JPEG in portrait 2:3 between 400×600 and 800×1200 pixels. SecuTix images are often landscape banners, so
//! the daemon reads the size from the file's header first and publishes only an image pass Culture would
//! accept; any other is reported (`status`, logs) instead of making the whole offer fail.

/// Image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
}

/// Format and size (width, height) read from the file's header.
pub fn dimensions(bytes: &[u8]) -> Option<(Format, u32, u32)> {
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR" {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((Format::Png, w, h));
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        let mut i = 2;
        while i + 4 <= bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            let marker = bytes[i + 1];
            if marker == 0xFF {
                i += 1;
                continue;
            }
            if marker == 0x01 || (0xD0..=0xD9).contains(&marker) {
                i += 2;
                continue;
            }
            let len = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
            let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
            if is_sof && i + 9 <= bytes.len() {
                let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
                let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]);
                return Some((Format::Jpeg, u32::from(w), u32::from(h)));
            }
            i += 2 + len;
        }
    }
    None
}

/// `Ok(())` when pass Culture would take an image of this size, else why not.
pub fn check(width: u32, height: u32) -> Result<(), String> {
    if !(400..=800).contains(&width) || !(600..=1200).contains(&height) {
        return Err(format!(
            "the image is {width}×{height} px; pass Culture takes 400×600 to 800×1200 px (portrait 2:3)"
        ));
    }
    // 2:3 within 2 %.
    let ratio = f64::from(width) / f64::from(height);
    if (ratio - 2.0 / 3.0).abs() > 2.0 / 3.0 * 0.02 {
        return Err(format!(
            "the image is {width}×{height} px, not in portrait 2:3 as pass Culture requires"
        ));
    }
    Ok(())
}

/// A minimal PNG header of the given size (tests and fixtures).
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_png_and_jpeg_sizes() {
        assert_eq!(dimensions(&png_header(600, 900)), Some((Format::Png, 600, 900)));
        // SOI, an APP0 segment of 16 bytes, then SOF0 with height 1200 and width 800.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x04, 0xB0, 0x03, 0x20, 0x03]);
        assert_eq!(dimensions(&jpeg), Some((Format::Jpeg, 800, 1200)));
        assert_eq!(dimensions(b"GIF89a...."), None);
    }

    #[test]
    fn only_portrait_two_thirds_in_range_is_accepted() {
        assert!(check(600, 900).is_ok());
        assert!(check(800, 1200).is_ok());
        assert!(check(1200, 800).is_err(), "landscape");
        assert!(check(300, 450).is_err(), "too small");
        assert!(check(600, 800).is_err(), "3:4");
    }
}
