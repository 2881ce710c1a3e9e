//! PNG: the size from IHDR, then the image row by row (the `png` crate's `next_row`), each row
//! into RGB and into a box filter, so memory is the output plus a row or two whatever the size.
//!
//! Interlaced (Adam7) rows arrive in passes, not in order, so an interlaced PNG is decoded whole;
//! that is done only for one small enough to need no reduction (web images; no phone or camera
//! writes interlaced PNGs).

use std::io::Cursor;

use super::{box_factor, check_pixels, BoxRows, Decoded, ImageLimits, TARGET_LONG_SIDE};
use crate::vision::VisionError;

/// What the `png` crate may allocate besides the rows: text, ICC profiles and other chunks.
const CHUNK_BYTES: usize = 4 << 20;

fn err(e: png::DecodingError) -> VisionError {
    VisionError::ImageDecode(match e {
        png::DecodingError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated PNG: the data ends before its last chunk (was the upload cut short?)".into()
        }
        e => format!("damaged PNG: {e}"),
    })
}

fn reader(bytes: &[u8]) -> Result<png::Reader<Cursor<&[u8]>>, VisionError> {
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: CHUNK_BYTES });
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    decoder.read_info().map_err(err)
}

/// The size IHDR declares.
pub(super) fn dimensions(bytes: &[u8]) -> Result<(u32, u32), VisionError> {
    let mut decoder =
        png::Decoder::new_with_limits(Cursor::new(bytes), png::Limits { bytes: CHUNK_BYTES });
    let info = decoder.read_header_info().map_err(err)?;
    Ok((info.width, info.height))
}

pub(super) fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Decoded, VisionError> {
    let (w, h) = dimensions(bytes)?;
    check_pixels(w, h, limits)?;
    let mut reader = reader(bytes)?;
    let channels = reader.output_color_type().0.samples();
    let k = box_factor(w, h);
    let rgb = if reader.info().interlaced {
        if k > 1 {
            return Err(VisionError::ImageTooLarge {
                width: w,
                height: h,
                why: format!(
                    "interlaced PNGs are decoded whole, so only up to {} px on the long side; \
                     save it without interlacing",
                    2 * TARGET_LONG_SIDE - 1
                ),
            });
        }
        let mut all = vec![0; reader.output_buffer_size().ok_or_else(|| size_err(w, h))?];
        let frame = reader.next_frame(&mut all).map_err(err)?;
        let mut rows = BoxRows::new(w, h, 1);
        let mut line = vec![0; w as usize * 3];
        for row in all.chunks_exact(frame.line_size).take(h as usize) {
            to_rgb(row, channels, &mut line);
            rows.push(&line);
        }
        rows.finish()
    } else {
        let mut rows = BoxRows::new(w, h, k);
        let mut line = vec![0; w as usize * 3];
        let mut seen = 0u32;
        while let Some(row) = reader.next_row().map_err(err)? {
            to_rgb(row.data(), channels, &mut line);
            rows.push(&line);
            seen += 1;
        }
        if seen != h {
            return Err(VisionError::ImageDecode(format!(
                "truncated PNG: {seen} of {h} rows"
            )));
        }
        rows.finish()
    };
    // The chunks after the image data, up to IEND: a cut upload ends before them.
    reader.finish().map_err(err)?;
    let (width, height) = (w.div_ceil(k), h.div_ceil(k));
    Ok(Decoded {
        rgb,
        width,
        height,
        original: (w, h),
    })
}

fn size_err(w: u32, h: u32) -> VisionError {
    VisionError::ImageDecode(format!("damaged PNG: {w}x{h} does not fit in memory"))
}

/// One row of 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) 8-bit samples into RGB; alpha is
/// dropped, as the `image` crate's `into_rgb8` did.
fn to_rgb(src: &[u8], channels: usize, dst: &mut [u8]) {
    for (px, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(channels)) {
        if channels < 3 {
            px.fill(s[0]);
        } else {
            px.copy_from_slice(&s[..3]);
        }
    }
}
