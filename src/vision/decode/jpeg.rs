//! JPEG: a walk over the marker segments (size, coding, how much image data there is, whether it
//! ends), then the decode, at the photo's own size (zune-jpeg, as the `image` crate did) when it is
//! small or in the DCT domain at 1/2, 1/4 or 1/8 (jpeg-decoder) when it is large.
//!
//! The walk is what makes a truncated upload an error: both decoders pad missing data with grey
//! (zune-jpeg logs it, jpeg-decoder does so at a premature marker), so an upload cut at a third
//! decoded "fine" and enrolled. Here the data must reach its end-of-image marker, and carry at
//! least the bits its declared size needs (every 8x8 block costs at least two bits in a
//! sequential JPEG, one in the first scan of a progressive one): a forged frame header with a
//! small scan behind it is refused before any decoding. What the walk cannot see is a cut file
//! with an end marker put back after the cut and enough data left to pass that floor: neither
//! decoder reports the grey it pads with, so that one decodes (half grey).

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::{check_pixels, Decoded, ImageLimits, TARGET_LONG_SIDE};
use crate::vision::VisionError;

/// Most memory a progressive JPEG's coefficients may take: they are kept for the whole image
/// whatever the output scale (2 bytes a sample), so a progressive 4:2:0 photo of up to ~11 Mpx
/// is decoded and a larger one is refused (phones write baseline JPEGs).
const PROGRESSIVE_COEFFICIENT_BYTES: u64 = 32 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Sequential,
    Progressive,
    Lossless,
}

/// What the marker segments of a JPEG say, read without decoding.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub width: u32,
    pub height: u32,
    coding: Coding,
    /// (horizontal, vertical) sampling factors of each component.
    sampling: heapless::Vec<(u8, u8), 4>,
    /// Bytes of entropy-coded data in all scans (stuffing and restart markers left out).
    scan_bytes: u64,
}

fn damaged(why: impl Into<String>) -> VisionError {
    VisionError::ImageDecode(format!("damaged JPEG: {}", why.into()))
}

fn truncated(why: &str) -> VisionError {
    VisionError::ImageDecode(format!("truncated JPEG: {why} (was the upload cut short?)"))
}

impl Layout {
    /// Walks the segments from SOI to EOI; the frame header (SOF) gives the size.
    pub fn read(b: &[u8]) -> Result<Layout, VisionError> {
        if !b.starts_with(&[0xFF, 0xD8]) {
            return Err(damaged("no start-of-image marker"));
        }
        let mut layout: Option<Layout> = None;
        let mut i = 2;
        loop {
            // Junk between segments is tolerated, as libjpeg does; fill bytes (0xFF) too.
            i += b[i..]
                .iter()
                .position(|&x| x == 0xFF)
                .unwrap_or(b.len() - i);
            i += b[i..]
                .iter()
                .position(|&x| x != 0xFF)
                .unwrap_or(b.len() - i);
            let Some(&marker) = b.get(i) else {
                return Err(truncated("the data ends before its end-of-image marker"));
            };
            i += 1;
            match marker {
                0xD9 => break,
                0x00 | 0x01 | 0xD0..=0xD7 => continue,
                _ => {}
            }
            let len = match b.get(i..i + 2) {
                Some(l) => usize::from(u16::from_be_bytes([l[0], l[1]])),
                None => return Err(truncated("the data ends inside a segment header")),
            };
            if len < 2 {
                return Err(damaged(format!("segment 0xFF{marker:02X} of length {len}")));
            }
            let segment = b
                .get(i + 2..i + len)
                .ok_or_else(|| truncated("the data ends inside a segment"))?;
            i += len;
            match marker {
                0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && layout.is_none() => {
                    layout = Some(Self::frame(marker, segment)?);
                }
                0xDA => {
                    let frame = layout
                        .as_mut()
                        .ok_or_else(|| damaged("image data before the frame header"))?;
                    let (bytes, end) = entropy_coded(b, i)?;
                    frame.scan_bytes += bytes;
                    i = end;
                }
                _ => {}
            }
        }
        layout.ok_or_else(|| damaged("no frame header (SOF)"))
    }

    /// Parses a frame header (SOFn).
    fn frame(marker: u8, s: &[u8]) -> Result<Layout, VisionError> {
        let coding =
            match marker {
                0xC0 | 0xC1 => Coding::Sequential,
                0xC2 => Coding::Progressive,
                0xC3 => Coding::Lossless,
                _ => return Err(VisionError::ImageFormat(
                    "arithmetic-coded and hierarchical JPEGs are not supported; send a baseline \
                     or progressive JPEG, or a PNG"
                        .into(),
                )),
            };
        if s.len() < 6 {
            return Err(damaged("short frame header"));
        }
        let height = u32::from(u16::from_be_bytes([s[1], s[2]]));
        let width = u32::from(u16::from_be_bytes([s[3], s[4]]));
        let n = usize::from(s[5]);
        if !(1..=4).contains(&n) || s.len() < 6 + 3 * n {
            return Err(damaged(format!("frame header with {n} components")));
        }
        if height == 0 {
            return Err(VisionError::ImageFormat(
                "JPEGs that give their height after the image data (DNL) are not supported".into(),
            ));
        }
        let mut sampling = heapless::Vec::new();
        for c in s[6..6 + 3 * n].chunks_exact(3) {
            let (h, v) = (c[1] >> 4, c[1] & 15);
            if !(1..=4).contains(&h) || !(1..=4).contains(&v) {
                return Err(damaged(format!("sampling factors {h}x{v}")));
            }
            let _ = sampling.push((h, v));
        }
        Ok(Layout {
            width,
            height,
            coding,
            sampling,
            scan_bytes: 0,
        })
    }

    /// Blocks of one component, as the decoders lay them out (whole MCUs).
    fn blocks(&self, (h, v): (u8, u8)) -> u64 {
        let hmax = self.sampling.iter().map(|s| s.0).max().unwrap_or(1);
        let vmax = self.sampling.iter().map(|s| s.1).max().unwrap_or(1);
        let mcus_x = u64::from(self.width).div_ceil(8 * u64::from(hmax));
        let mcus_y = u64::from(self.height).div_ceil(8 * u64::from(vmax));
        mcus_x * u64::from(h) * mcus_y * u64::from(v)
    }

    /// Refuses image data too short for the declared size: what a forged or cut frame leaves.
    fn check_scan_data(&self) -> Result<(), VisionError> {
        let luma = u64::from(self.width).div_ceil(8) * u64::from(self.height).div_ceil(8);
        let bits_per_block = if self.coding == Coding::Sequential {
            2
        } else {
            1
        };
        let needed = (luma * bits_per_block).div_ceil(8);
        if self.scan_bytes < needed {
            return Err(truncated(&format!(
                "{} bytes of image data, a {}x{} JPEG needs at least {needed}",
                self.scan_bytes, self.width, self.height
            )));
        }
        Ok(())
    }

    /// Memory for a progressive JPEG's coefficients, which decoders keep for the whole image.
    fn coefficient_bytes(&self) -> u64 {
        self.sampling.iter().map(|&s| self.blocks(s) * 128).sum()
    }
}

/// Skips the entropy-coded data that starts at `i`: returns its byte count (stuffed 0xFF00 and
/// restart markers left out) and where the next marker starts.
fn entropy_coded(b: &[u8], mut i: usize) -> Result<(u64, usize), VisionError> {
    let mut bytes = 0u64;
    loop {
        let run = b[i..]
            .iter()
            .position(|&x| x == 0xFF)
            .ok_or_else(|| truncated("the data ends inside the image data"))?;
        bytes += run as u64;
        i += run;
        match b.get(i + 1) {
            None => return Err(truncated("the data ends inside the image data")),
            Some(0x00) => {
                bytes += 1;
                i += 2;
            }
            Some(0xD0..=0xD7) => i += 2,
            Some(0xFF) => i += 1,
            Some(_) => return Ok((bytes, i)),
        }
    }
}

/// The DCT scale (in eighths) that brings the long side to `TARGET_LONG_SIDE..2 * TARGET_LONG_SIDE`,
/// chosen as jpeg-decoder chooses it; 8 means the photo's own size.
fn idct_eighths(long_side: u32) -> u32 {
    [1, 2, 4]
        .into_iter()
        .find(|&s| (long_side * s).div_ceil(8) >= TARGET_LONG_SIDE)
        .unwrap_or(8)
}

pub(super) fn decode(bytes: &[u8], limits: &ImageLimits) -> Result<Decoded, VisionError> {
    let layout = Layout::read(bytes)?;
    let (w, h) = (layout.width, layout.height);
    check_pixels(w, h, limits)?;
    layout.check_scan_data()?;
    if layout.coding == Coding::Progressive
        && layout.coefficient_bytes() > PROGRESSIVE_COEFFICIENT_BYTES
    {
        return Err(VisionError::ImageTooLarge {
            width: w,
            height: h,
            why: format!(
                "a progressive JPEG this large needs {} MiB to decode, more than {} MiB; save it \
                 as a baseline JPEG or smaller",
                layout.coefficient_bytes() >> 20,
                PROGRESSIVE_COEFFICIENT_BYTES >> 20
            ),
        });
    }
    let (rgb, width, height) = match idct_eighths(w.max(h)) {
        8 => full_size(bytes, w, h)?,
        _ => reduced(bytes, w, h)?,
    };
    Ok(Decoded {
        rgb,
        width,
        height,
        original: (w, h),
    })
}

fn decode_err(e: impl std::fmt::Debug) -> VisionError {
    damaged(format!("{e:?}"))
}

/// Decodes at the photo's own size (its long side is below `2 * TARGET_LONG_SIDE`).
fn full_size(bytes: &[u8], w: u32, h: u32) -> Result<(Vec<u8>, u32, u32), VisionError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(w as usize)
        .set_max_height(h as usize);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(decode_err)?;
    let (dw, dh) = decoder
        .dimensions()
        .ok_or_else(|| damaged("no frame header"))?;
    if (dw as u32, dh as u32) != (w, h) {
        return Err(damaged(format!("{dw}x{dh} decoded from a {w}x{h} header")));
    }
    let len = decoder
        .output_buffer_size()
        .ok_or_else(|| damaged("size"))?;
    let mut out = vec![0u8; len];
    decoder.decode_into(&mut out).map_err(decode_err)?;
    let pixels = w as usize * h as usize;
    match len / pixels.max(1) {
        3 => Ok((out, w, h)),
        1 => Ok((out.iter().flat_map(|&g| [g, g, g]).collect(), w, h)),
        n => Err(VisionError::ImageFormat(format!(
            "JPEGs with {n} output channels are not supported"
        ))),
    }
}

/// Decodes in the DCT domain at 1/2, 1/4 or 1/8: the full-size image never exists in memory.
fn reduced(bytes: &[u8], w: u32, h: u32) -> Result<(Vec<u8>, u32, u32), VisionError> {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let target = TARGET_LONG_SIDE as u16;
    let (rw, rh) = if w >= h {
        (target, u16::MAX)
    } else {
        (u16::MAX, target)
    };
    let (ow, oh) = decoder.scale(rw, rh).map_err(decode_err)?;
    let (ow, oh) = (u32::from(ow), u32::from(oh));
    decoder.set_max_decoding_buffer_size(ow as usize * oh as usize * 4);
    let out = decoder.decode().map_err(decode_err)?;
    let format = decoder.info().map(|i| i.pixel_format);
    match format {
        Some(jpeg_decoder::PixelFormat::RGB24) => Ok((out, ow, oh)),
        Some(jpeg_decoder::PixelFormat::L8) => {
            Ok((out.iter().flat_map(|&g| [g, g, g]).collect(), ow, oh))
        }
        other => Err(VisionError::ImageFormat(format!(
            "{other:?} JPEGs larger than {} px are not supported; send an RGB or grey JPEG",
            2 * TARGET_LONG_SIDE
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idct_scale_matches_the_target() {
        assert_eq!(idct_eighths(2000), 8);
        assert_eq!(idct_eighths(4000), 4);
        assert_eq!(idct_eighths(8000), 2);
        assert_eq!(idct_eighths(13000), 1);
        assert_eq!(idct_eighths(65535), 1);
    }

    #[test]
    fn a_forged_frame_header_is_refused_before_decoding() {
        // SOI, SOF0 13000x13000 grey, SOS with two bytes of data, EOI.
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 11, 8];
        b.extend(13000u16.to_be_bytes());
        b.extend(13000u16.to_be_bytes());
        b.extend([1, 1, 0x11, 0]);
        b.extend([0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0, 0x12, 0x34, 0xFF, 0xD9]);
        let layout = Layout::read(&b).unwrap();
        assert_eq!(
            (layout.width, layout.height, layout.scan_bytes),
            (13000, 13000, 2)
        );
        let err = layout.check_scan_data().unwrap_err().to_string();
        assert!(err.contains("truncated JPEG: 2 bytes"), "{err}");
        let limits = ImageLimits {
            max_pixels: u64::MAX,
        };
        assert!(decode(&b, &limits)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }

    #[test]
    fn no_end_marker_is_truncated() {
        let b = [0xFF, 0xD8, 0xFF, 0xDB, 0, 4, 1];
        assert!(Layout::read(&b)
            .unwrap_err()
            .to_string()
            .contains("truncated"));
    }
}
