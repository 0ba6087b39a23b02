//! PNG labels for Zebra printers: a PNG is decoded in memory and turned into one ZPL `^GF`
//! graphic (1 bit per dot, black below half brightness), so a raw ZPL printer prints any
//! label format that arrives as an image. Every buffer that holds the image is wiped after
//! use; nothing is written anywhere.
//!
//! It does not scale or dither: carriers send labels at the printer's resolution (203 or 300
//! dpi), which is what the printer gets.

use std::fmt::Write as _;

use thiserror::Error;
use zeroize::Zeroizing;

/// Largest image accepted, in dots per side (a 4x6 inch label at 600 dpi is 2400x3600).
pub const MAX_SIDE: u32 = 8192;

/// Why a PNG could not be converted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum GraphicError {
    /// The bytes are not a PNG the decoder accepts.
    #[error("not a decodable png")]
    Decode,
    /// The image is empty or larger than [`MAX_SIDE`] on a side.
    #[error("png of {0}x{1} dots is outside 1..={MAX_SIDE} per side")]
    Size(u32, u32),
}

/// Converts a PNG label into ZPL that prints it as one graphic at the label's origin.
///
/// # Errors
/// [`GraphicError`] when the PNG cannot be decoded or is too large.
pub fn png_to_zpl(png: &[u8]) -> Result<Zeroizing<Vec<u8>>, GraphicError> {
    let mut decoder = png::Decoder::new(png);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    // 8192 x 8192 RGBA at most.
    decoder.set_limits(png::Limits {
        bytes: (MAX_SIDE as usize) * (MAX_SIDE as usize) * 4,
    });
    let mut reader = decoder.read_info().map_err(|_| GraphicError::Decode)?;
    let (w, h) = reader.info().size();
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(GraphicError::Size(w, h));
    }
    let mut pixels = Zeroizing::new(vec![0u8; reader.output_buffer_size()]);
    let info = reader
        .next_frame(&mut pixels)
        .map_err(|_| GraphicError::Decode)?;
    let channels = info.color_type.samples();
    let bytes_per_row = (info.width as usize).div_ceil(8);
    let mut bits = Zeroizing::new(vec![0u8; bytes_per_row * info.height as usize]);
    for y in 0..info.height as usize {
        let line = &pixels[y * info.line_size..(y + 1) * info.line_size];
        for x in 0..info.width as usize {
            let px = &line[x * channels..(x + 1) * channels];
            if is_dark(px) {
                bits[y * bytes_per_row + x / 8] |= 0x80 >> (x % 8);
            }
        }
    }
    let total = bits.len();
    let mut out = Zeroizing::new(String::with_capacity(total * 2 + 64));
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "^XA^PW{}^LL{}^FO0,0^GFA,{total},{total},{bytes_per_row},",
        info.width, info.height
    );
    for b in bits.iter() {
        let _ = write!(out, "{b:02X}");
    }
    out.push_str("^FS^XZ");
    Ok(Zeroizing::new(out.as_bytes().to_vec()))
}

/// Dark enough to burn a dot: luminance below half, and not transparent.
fn is_dark(px: &[u8]) -> bool {
    let (luma, alpha) = match px {
        [g] => (u32::from(*g), 255),
        [g, a] => (u32::from(*g), u32::from(*a)),
        [r, g, b] => (
            (299 * u32::from(*r) + 587 * u32::from(*g) + 114 * u32::from(*b)) / 1000,
            255,
        ),
        [r, g, b, a, ..] => (
            (299 * u32::from(*r) + 587 * u32::from(*g) + 114 * u32::from(*b)) / 1000,
            u32::from(*a),
        ),
        [] => (255, 0),
    };
    alpha >= 128 && luma < 128
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().expect("header");
            writer.write_image_data(data).expect("data");
        }
        out
    }

    #[test]
    fn gray_checkerboard_becomes_gf_graphic() {
        // 10x2, row 0: black at x=0 and x=9; row 1: all white.
        let mut data = vec![255u8; 20];
        data[0] = 0;
        data[9] = 0;
        let zpl = png_to_zpl(&png(10, 2, png::ColorType::Grayscale, &data)).expect("converts");
        let text = String::from_utf8(zpl.to_vec()).expect("ascii");
        assert_eq!(text, "^XA^PW10^LL2^FO0,0^GFA,4,4,2,80400000^FS^XZ");
    }

    #[test]
    fn rgba_transparent_is_white() {
        // 1x1 black but fully transparent.
        let zpl = png_to_zpl(&png(1, 1, png::ColorType::Rgba, &[0, 0, 0, 0])).expect("converts");
        assert!(String::from_utf8_lossy(&zpl).contains(",1,1,1,00^FS"));
        let zpl = png_to_zpl(&png(1, 1, png::ColorType::Rgb, &[0, 0, 0])).expect("converts");
        assert!(String::from_utf8_lossy(&zpl).contains(",1,1,1,80^FS"));
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert_eq!(png_to_zpl(b"\x89PNG\r\n\x1a\n"), Err(GraphicError::Decode));
        assert_eq!(png_to_zpl(b"not a png"), Err(GraphicError::Decode));
        let good = png(4, 4, png::ColorType::Grayscale, &[0; 16]);
        assert_eq!(
            png_to_zpl(&good[..good.len() - 10]),
            Err(GraphicError::Decode)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = png_to_zpl(&bytes);
        }
    }
}
