//! Uploaded photos (JPEG, PNG) into RGB8, with memory bounded whatever the bytes claim.
//!
//! An image's header says how large it is before a single pixel is decoded, and a few hundred KB
//! of a flat PNG or a forged JPEG frame header can claim 13000x13000 (a 500 MB buffer). So:
//!
//! - the header is read first ([`read_header`]), and an image of more than
//!   [`ImageLimits::max_pixels`] (`api.max_image_pixels`) is refused before decoding;
//! - a large photo is decoded at a reduced scale so that its long side lands between
//!   [`TARGET_LONG_SIDE`] and twice that, as FaceCV scaled uploads to 1024 px: a JPEG in the DCT
//!   domain (1/2, 1/4, 1/8, which also costs less), a PNG row by row into a box filter, so the
//!   full-size image never exists in memory (the output plus a row or two does);
//! - a photo whose data ends early (a truncated upload) is an error, never a grey-padded picture.
//!
//! The detector looks at 192x192 and the embedder at 112x112, so a long side of 1024 keeps a face
//! that the detector can find at least ~50 px wide: a phone photo loses nothing it needs.

mod jpeg;
mod png;

use super::VisionError;

/// Photos with a long side of at least twice this are decoded at a reduced scale, to a long side
/// between this and twice this.
pub const TARGET_LONG_SIDE: u32 = 1024;

/// What an uploaded image may cost to decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest image accepted, in pixels of its header's width x height (`api.max_image_pixels`).
    pub max_pixels: u64,
}

impl ImageLimits {
    /// 64 Mi px: a 48 MP phone photo is 8000x6000 (48.0 M), 50 MP sensors give 8160x6120 (49.9 M),
    /// 64 MP ones 9248x6936 (64.1 M). Memory does not depend on it (large photos are decoded at a
    /// reduced scale); decoding time does, and the API's engine waits meanwhile.
    pub const DEFAULT_MAX_PIXELS: u64 = 1 << 26;
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits {
            max_pixels: Self::DEFAULT_MAX_PIXELS,
        }
    }
}

/// The two formats the appliance decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
}

/// What an image's header says, read without decoding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl ImageHeader {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// The format, from the first bytes; anything but JPEG and PNG is refused by name.
fn sniff(bytes: &[u8]) -> Result<ImageFormat, VisionError> {
    const OTHERS: [(&[u8], &str); 7] = [
        (b"GIF8", "GIF"),
        (b"BM", "BMP"),
        (b"II*\0", "TIFF"),
        (b"MM\0*", "TIFF"),
        (b"\0\0\x01\0", "ICO"),
        (b"\xff\x0a", "JPEG XL"),
        (b"8BPS", "PSD"),
    ];
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Ok(ImageFormat::Jpeg);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(ImageFormat::Png);
    }
    let named = if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("WebP")
    } else if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        Some("HEIF/AVIF")
    } else {
        OTHERS
            .iter()
            .find(|(magic, _)| bytes.starts_with(magic))
            .map(|(_, name)| *name)
    };
    Err(match named {
        Some(name) => VisionError::ImageFormat(format!(
            "{name} images are not supported; send a JPEG or PNG"
        )),
        None => VisionError::ImageDecode("neither a JPEG nor a PNG".into()),
    })
}

/// The format and size an image declares, from its header alone (JPEG frame header, PNG IHDR).
pub fn read_header(bytes: &[u8]) -> Result<ImageHeader, VisionError> {
    let format = sniff(bytes)?;
    let (width, height) = match format {
        ImageFormat::Jpeg => {
            let layout = jpeg::Layout::read(bytes)?;
            (layout.width, layout.height)
        }
        ImageFormat::Png => png::dimensions(bytes)?,
    };
    Ok(ImageHeader {
        format,
        width,
        height,
    })
}

/// Refuses an image larger than the limit, naming the limit and the image's size.
fn check_pixels(width: u32, height: u32, limits: &ImageLimits) -> Result<(), VisionError> {
    if width == 0 || height == 0 {
        return Err(VisionError::ImageDecode(format!(
            "the header says {width}x{height}"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(VisionError::ImageTooLarge {
            width,
            height,
            why: format!(
                "{pixels} pixels, more than api.max_image_pixels = {}",
                limits.max_pixels
            ),
        });
    }
    Ok(())
}

/// The integer factor a long side is divided by so that it lands in
/// `TARGET_LONG_SIDE..2 * TARGET_LONG_SIDE` (1 when it is already below twice the target).
fn box_factor(width: u32, height: u32) -> u32 {
    (width.max(height) / TARGET_LONG_SIDE).max(1)
}

/// A decoded photo: packed RGB8, at its own size or reduced (see the module's doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// The size its header declared.
    pub original: (u32, u32),
}

/// Decodes a JPEG or PNG into packed RGB8 within `limits`, reduced when large (see the module's
/// doc). Errors: [`VisionError::ImageTooLarge`] past the limit, [`VisionError::ImageFormat`] for
/// another format, [`VisionError::ImageDecode`] for damaged or truncated data.
pub fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Decoded, VisionError> {
    match sniff(bytes)? {
        ImageFormat::Jpeg => jpeg::decode(bytes, limits),
        ImageFormat::Png => png::decode(bytes, limits),
    }
}

/// Averages `k`x`k` cells of RGB rows as they arrive, so an image is reduced while it is decoded
/// without ever being whole in memory: it holds one row of sums and the output.
struct BoxRows {
    in_width: usize,
    k: usize,
    out_width: usize,
    sums: Vec<u32>,
    rows_in_cell: usize,
    out: Vec<u8>,
}

impl BoxRows {
    fn new(in_width: u32, in_height: u32, k: u32) -> Self {
        let out_width = in_width.div_ceil(k) as usize;
        let out_height = in_height.div_ceil(k) as usize;
        BoxRows {
            in_width: in_width as usize,
            k: k as usize,
            out_width,
            sums: vec![0; out_width * 3],
            rows_in_cell: 0,
            out: Vec::with_capacity(out_width * out_height * 3),
        }
    }

    /// Adds one RGB row (`in_width * 3` bytes).
    fn push(&mut self, row: &[u8]) {
        if self.k == 1 {
            self.out.extend_from_slice(&row[..self.in_width * 3]);
            return;
        }
        for (x, px) in row.chunks_exact(3).take(self.in_width).enumerate() {
            let cell = &mut self.sums[x / self.k * 3..][..3];
            for (s, v) in cell.iter_mut().zip(px) {
                *s += u32::from(*v);
            }
        }
        self.rows_in_cell += 1;
        if self.rows_in_cell == self.k {
            self.flush();
        }
    }

    /// Writes the row of cells summed so far (a partial last row too).
    fn flush(&mut self) {
        if self.rows_in_cell == 0 {
            return;
        }
        for cx in 0..self.out_width {
            let cols = self.k.min(self.in_width - cx * self.k);
            let n = (cols * self.rows_in_cell) as u32;
            for s in &mut self.sums[cx * 3..cx * 3 + 3] {
                self.out.push(((*s + n / 2) / n) as u8);
                *s = 0;
            }
        }
        self.rows_in_cell = 0;
    }

    fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.out
    }
}

/// Reduces a packed RGB8 image by an integer factor (box filter).
pub(crate) fn reduce_rgb(rgb: &[u8], width: u32, height: u32, k: u32) -> (Vec<u8>, u32, u32) {
    let mut rows = BoxRows::new(width, height, k);
    for row in rgb.chunks_exact(width as usize * 3).take(height as usize) {
        rows.push(row);
    }
    (rows.finish(), width.div_ceil(k), height.div_ceil(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_formats_are_named() {
        let err = decode(b"GIF89a\x01\0\x01\0", &ImageLimits::default()).unwrap_err();
        assert!(
            matches!(err, VisionError::ImageFormat(ref m) if m.starts_with("GIF")),
            "{err}"
        );
        let err = decode(b"hello", &ImageLimits::default()).unwrap_err();
        assert!(matches!(err, VisionError::ImageDecode(_)), "{err}");
    }

    #[test]
    fn box_factor_lands_the_long_side_near_the_target() {
        assert_eq!(box_factor(640, 480), 1);
        assert_eq!(box_factor(2047, 10), 1);
        assert_eq!(box_factor(2048, 10), 2);
        for (w, h) in [(8000, 6000), (6000, 8000), (13000, 13000), (1, 100_000)] {
            let k = box_factor(w, h);
            let long = w.max(h).div_ceil(k);
            assert!(
                (TARGET_LONG_SIDE..2 * TARGET_LONG_SIDE).contains(&long),
                "{w}x{h}: {long}"
            );
        }
    }

    #[test]
    fn box_rows_average_cells_and_keep_partial_edges() {
        // 3x3 reduced by 2: cells of 4, 2, 2 and 1 pixels.
        let grey = |v: u8| [v, v, v];
        let rgb: Vec<u8> = [10, 20, 99, 30, 40, 99, 7, 7, 50]
            .into_iter()
            .flat_map(grey)
            .collect();
        let (out, w, h) = reduce_rgb(&rgb, 3, 3, 2);
        assert_eq!((w, h), (2, 2));
        let firsts: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, [25, 99, 7, 50]);
    }
}
