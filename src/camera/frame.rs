//! Frames, the pixel formats cameras send, and their conversion to the RGB24 the detector reads.
//!
//! Every converter writes into a buffer the caller owns and keeps: on a Pi Zero 2 W a fresh 640x480
//! frame per capture is 900 KiB of allocator churn 30 times a second, so the hot path allocates only
//! when the frame size grows. YUV maths is BT.601 in 10-bit fixed point: cameras and `ffmpeg` send
//! BT.601 unless told otherwise, and the detector does not notice the 709/601 difference anyway.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

use super::CameraError;

/// One picture: RGB24 (3 bytes a pixel, rows packed, no padding) once decoded.
///
/// Frames are reused: a source overwrites one in place, the capture slot swaps them, so `rgb` and
/// `encoded` keep their capacity across frames. `seq` counts frames from the capture that produced
/// them and only grows; gaps mean frames were dropped because the consumer was busy.
///
/// A source may leave its bytes as it got them (a JPEG, raw YUYV) with [`Frame::set_encoded`]:
/// the latest-frame slot and the runner's pacing throw most frames of a fast camera away, and
/// converting those was most of the capture's CPU. [`Frame::decode`] converts, once, when a
/// consumer takes the frame. Until then `rgb` is empty and `width`/`height` are 0 (a JPEG's size
/// is only known by decoding it), so a consumer that forgets to decode meets an empty picture, not
/// the pixels of an older frame.
#[derive(Clone, Debug)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
    /// The source's bytes while `pending` says how to read them.
    encoded: Vec<u8>,
    pending: Option<Encoded>,
    pub seq: u64,
    /// Monotonic time of capture, for latency and pacing maths.
    pub captured_at: Instant,
    /// Wall-clock time of capture, for the events' timestamps.
    pub timestamp: OffsetDateTime,
}

impl Default for Frame {
    fn default() -> Self {
        Frame::new()
    }
}

impl Frame {
    /// An empty frame; its buffer grows to the source's size on the first capture.
    pub fn new() -> Self {
        Frame {
            width: 0,
            height: 0,
            rgb: Vec::new(),
            encoded: Vec::new(),
            pending: None,
            seq: 0,
            captured_at: Instant::now(),
            timestamp: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Sets the size and returns the pixel buffer sized for it. Allocates only when the frame grows.
    /// The frame is decoded from then on: whatever was written there is its picture.
    pub fn resize(&mut self, width: u32, height: u32) -> &mut [u8] {
        self.pending = None;
        self.width = width;
        self.height = height;
        self.rgb.resize(rgb_len(width, height), 0);
        &mut self.rgb
    }

    /// Marks the frame as captured now with sequence number `seq`.
    pub fn stamp(&mut self, seq: u64) {
        self.seq = seq;
        self.captured_at = Instant::now();
        self.timestamp = OffsetDateTime::now_utc();
    }

    /// Empties the frame's buffer for a source to fill with one frame of `format` (for MJPEG the size
    /// is the JPEG's own and `width`/`height` are ignored); `stride` is the bytes per row of a raw
    /// format (drivers may pad rows), 0 for packed rows. The RGB pixels are gone until
    /// [`Frame::decode`]. Allocates only when the source's frames grow.
    pub fn set_encoded(
        &mut self,
        format: PixelFormat,
        width: u32,
        height: u32,
        stride: usize,
    ) -> &mut Vec<u8> {
        self.rgb.clear();
        self.width = 0;
        self.height = 0;
        self.pending = Some(Encoded {
            format,
            width,
            height,
            stride,
        });
        self.encoded.clear();
        &mut self.encoded
    }

    /// Whether `rgb` holds the frame's picture (the source gave RGB, or it was decoded).
    pub fn is_decoded(&self) -> bool {
        self.pending.is_none()
    }

    /// Converts the source's bytes into `rgb`; true if it did, false if the frame had nothing to
    /// convert (decoded already, or the source gave RGB). Allocation-free once the buffers are
    /// warm. A frame that cannot be decoded stays empty (0x0): the error is the only answer.
    pub fn decode(&mut self) -> Result<bool, CameraError> {
        let Some(p) = self.pending.take() else {
            return Ok(false);
        };
        let data = std::mem::take(&mut self.encoded);
        let done = convert_strided(p.format, &data, (p.width, p.height, p.stride), self);
        self.encoded = data;
        if done.is_err() {
            self.rgb.clear();
            self.width = 0;
            self.height = 0;
        }
        done.map(|()| true)
    }

    /// The RGB triple at (x, y), for tests and debugging.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
}

/// How to read a frame's `encoded` bytes.
#[derive(Clone, Copy, Debug)]
struct Encoded {
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
}

/// Converts one raw frame whose rows are `stride` bytes apart (0: packed), as drivers hand them.
fn convert_strided(
    format: PixelFormat,
    data: &[u8],
    (width, height, stride): (u32, u32, usize),
    frame: &mut Frame,
) -> Result<(), CameraError> {
    let (w, h) = (width as usize, height as usize);
    let packed = match format {
        PixelFormat::Yuyv => w.div_ceil(2) * 4,
        PixelFormat::Rgb24 => w * 3,
        _ => w,
    };
    if format != PixelFormat::Mjpeg && (w == 0 || h == 0) {
        return Err(CameraError::Decode(format!(
            "the source reports a {w}x{h} frame"
        )));
    }
    if stride == 0 || stride == packed || matches!(format, PixelFormat::I420 | PixelFormat::Mjpeg) {
        return format.convert(data, width, height, frame);
    }
    let need = match format {
        PixelFormat::Yuyv => stride * (h - 1) + w.div_ceil(2) * 4,
        PixelFormat::Nv12 => stride * h + stride * (h.div_ceil(2) - 1) + w.div_ceil(2) * 2,
        _ => stride * (h - 1) + w * 3,
    };
    if data.len() < need {
        return Err(CameraError::Decode(format!(
            "short {format} buffer: {} of {need} bytes",
            data.len()
        )));
    }
    let dst = frame.resize(width, height);
    match format {
        PixelFormat::Yuyv => yuyv_to_rgb(data, w, h, stride, dst),
        PixelFormat::Nv12 => nv12_to_rgb(data, w, h, stride, dst),
        _ => {
            for (row, out) in dst.chunks_exact_mut(w * 3).enumerate() {
                out.copy_from_slice(&data[row * stride..row * stride + w * 3]);
            }
        }
    }
    Ok(())
}

/// Bytes in an RGB24 frame of this size.
pub fn rgb_len(width: u32, height: u32) -> usize {
    width as usize * height as usize * 3
}

/// How raw frames are laid out in memory.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PixelFormat {
    /// Packed R, G, B bytes (`ffmpeg -pix_fmt rgb24`, V4L2 `RGB3`).
    Rgb24,
    /// Planar Y, then U and V at half width and height (`yuv420p`, `rpicam-vid --codec yuv420`).
    #[serde(alias = "yuv420", alias = "yuv420p")]
    I420,
    /// Y plane, then interleaved U,V at half size (Jetson's and many CSI pipelines' native format).
    Nv12,
    /// Packed Y0 U Y1 V (`YUYV`/`YUY2`), what most USB cameras send uncompressed.
    #[serde(alias = "yuy2")]
    Yuyv,
    /// Motion JPEG: one JPEG per frame, what USB cameras send above 640x480.
    #[serde(alias = "mjpg")]
    Mjpeg,
}

impl PixelFormat {
    /// Bytes in one frame, or `None` for MJPEG, whose frames vary in size.
    pub fn frame_len(self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match self {
            PixelFormat::Rgb24 => Some(w * h * 3),
            PixelFormat::I420 | PixelFormat::Nv12 => Some(w * h + 2 * cw * ch),
            PixelFormat::Yuyv => Some(cw * 4 * h),
            PixelFormat::Mjpeg => None,
        }
    }

    /// Converts one raw frame of this format (rows packed, no padding) into `frame`.
    pub fn convert(
        self,
        src: &[u8],
        width: u32,
        height: u32,
        frame: &mut Frame,
    ) -> Result<(), CameraError> {
        if self == PixelFormat::Mjpeg {
            return decode_jpeg(src, frame);
        }
        let need = self.frame_len(width, height).unwrap_or(0);
        if src.len() < need {
            return Err(CameraError::Decode(format!(
                "{self} frame of {width}x{height} needs {need} bytes, got {}",
                src.len()
            )));
        }
        let dst = frame.resize(width, height);
        let (w, h) = (width as usize, height as usize);
        match self {
            PixelFormat::Rgb24 => dst.copy_from_slice(&src[..need]),
            PixelFormat::I420 => i420_to_rgb(src, w, h, YuvRange::Limited, dst),
            PixelFormat::Nv12 => nv12_to_rgb(src, w, h, w, dst),
            PixelFormat::Yuyv => yuyv_to_rgb(src, w, h, w.div_ceil(2) * 4, dst),
            PixelFormat::Mjpeg => unreachable!("handled above"),
        }
        Ok(())
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::I420 => "i420",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Mjpeg => "mjpeg",
        })
    }
}

impl FromStr for PixelFormat {
    type Err = CameraError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rgb24" | "rgb" => Ok(PixelFormat::Rgb24),
            "i420" | "yuv420" | "yuv420p" => Ok(PixelFormat::I420),
            "nv12" => Ok(PixelFormat::Nv12),
            "yuyv" | "yuy2" => Ok(PixelFormat::Yuyv),
            "mjpeg" | "mjpg" => Ok(PixelFormat::Mjpeg),
            _ => Err(CameraError::invalid(
                "source.format",
                format!("\"{s}\" is not one of rgb24, i420 (yuv420), nv12, yuyv, mjpeg"),
            )),
        }
    }
}

/// Whether Y spans 16..=235 (video, the default for cameras and y4m) or 0..=255 (JPEG, `XCOLOR=FULL`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum YuvRange {
    Limited,
    Full,
}

/// BT.601 coefficients scaled by 1024, chosen once per frame so the per-pixel code has no branches.
#[derive(Clone, Copy)]
struct Coeffs {
    y_off: i32,
    y: i32,
    rv: i32,
    gu: i32,
    gv: i32,
    bu: i32,
}

impl Coeffs {
    fn new(range: YuvRange) -> Self {
        match range {
            YuvRange::Limited => Coeffs {
                y_off: 16,
                y: 1192,
                rv: 1634,
                gu: 401,
                gv: 832,
                bu: 2066,
            },
            YuvRange::Full => Coeffs {
                y_off: 0,
                y: 1024,
                rv: 1436,
                gu: 352,
                gv: 731,
                bu: 1815,
            },
        }
    }

    #[inline(always)]
    fn rgb(self, y: u8, u: u8, v: u8, out: &mut [u8]) {
        let c = (i32::from(y) - self.y_off) * self.y + 512;
        let d = i32::from(u) - 128;
        let e = i32::from(v) - 128;
        out[0] = clamp((c + self.rv * e) >> 10);
        out[1] = clamp((c - self.gu * d - self.gv * e) >> 10);
        out[2] = clamp((c + self.bu * d) >> 10);
    }
}

#[inline(always)]
fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One YUV pixel to RGB, for callers converting a single colour (tests, test patterns).
pub fn yuv_to_rgb(y: u8, u: u8, v: u8, range: YuvRange) -> [u8; 3] {
    let mut out = [0; 3];
    Coeffs::new(range).rgb(y, u, v, &mut out);
    out
}

/// Packed YUYV (Y0 U Y1 V) with `stride` bytes per row (drivers may pad rows) into packed RGB24.
pub fn yuyv_to_rgb(src: &[u8], width: usize, height: usize, stride: usize, dst: &mut [u8]) {
    let k = Coeffs::new(YuvRange::Limited);
    for (row, out) in dst.chunks_exact_mut(width * 3).take(height).enumerate() {
        let line = &src[row * stride..];
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let quad = &line[(x / 2) * 4..(x / 2) * 4 + 4];
            k.rgb(quad[(x & 1) * 2], quad[1], quad[3], px);
        }
    }
}

/// NV12 (Y plane, then interleaved U,V at half resolution), both planes `stride` bytes per row and
/// the chroma plane right after `height` luma rows, into packed RGB24.
pub fn nv12_to_rgb(src: &[u8], width: usize, height: usize, stride: usize, dst: &mut [u8]) {
    let k = Coeffs::new(YuvRange::Limited);
    let uv_plane = &src[stride * height..];
    let uv_stride = stride.max(width.div_ceil(2) * 2);
    for (row, out) in dst.chunks_exact_mut(width * 3).take(height).enumerate() {
        let y_line = &src[row * stride..];
        let uv_line = &uv_plane[(row / 2) * uv_stride..];
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let c = (x / 2) * 2;
            k.rgb(y_line[x], uv_line[c], uv_line[c + 1], px);
        }
    }
}

/// Planar I420 (Y, then U, then V at half resolution, rounded up, rows packed) into packed RGB24.
pub fn i420_to_rgb(src: &[u8], width: usize, height: usize, range: YuvRange, dst: &mut [u8]) {
    let (cw, ch) = (width.div_ceil(2), height.div_ceil(2));
    let y_len = width * height;
    let (y_plane, chroma) = src.split_at(y_len);
    let (u_plane, v_plane) = chroma.split_at(cw * ch);
    let planes = Planes {
        y: y_plane,
        u: u_plane,
        v: v_plane,
        cw,
        shift_x: 1,
        shift_y: 1,
    };
    planar_to_rgb(&planes, width, height, range, dst);
}

/// The three planes of a planar YUV frame and how chroma is subsampled (shift 1 = halved).
pub struct Planes<'a> {
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    /// Chroma row length in bytes.
    pub cw: usize,
    pub shift_x: u32,
    pub shift_y: u32,
}

/// Any planar 8-bit YUV (4:2:0, 4:2:2, 4:4:4) into packed RGB24; y4m files use all three.
pub fn planar_to_rgb(p: &Planes<'_>, width: usize, height: usize, range: YuvRange, dst: &mut [u8]) {
    let k = Coeffs::new(range);
    for (row, out) in dst.chunks_exact_mut(width * 3).take(height).enumerate() {
        let y_line = &p.y[row * width..];
        let c_row = (row >> p.shift_y) * p.cw;
        let (u_line, v_line) = (&p.u[c_row..], &p.v[c_row..]);
        for (x, px) in out.chunks_exact_mut(3).enumerate() {
            let c = x >> p.shift_x;
            k.rgb(y_line[x], u_line[c], v_line[c], px);
        }
    }
}

/// Grey (y4m `Cmono`, greyscale PNGs) into RGB24 by repeating each value.
pub fn grey_to_rgb(src: &[u8], dst: &mut [u8]) {
    for (g, px) in src.iter().zip(dst.chunks_exact_mut(3)) {
        px.fill(*g);
    }
}

/// The largest frame a file source decodes (48 MiB of RGB): above 4K, which no camera here sends;
/// a still image larger than that in a folder source is an error, not a multi-GB buffer.
pub const MAX_FRAME_PIXELS: u64 = 4096 * 4096;

/// Refuses a frame larger than [`MAX_FRAME_PIXELS`] before its buffer is made.
pub fn check_frame_size(width: u32, height: u32) -> Result<(), String> {
    if u64::from(width) * u64::from(height) > MAX_FRAME_PIXELS {
        return Err(format!(
            "{width}x{height} is larger than the {MAX_FRAME_PIXELS} pixels a frame may have"
        ));
    }
    Ok(())
}

/// Decodes one JPEG into `frame`, at the JPEG's own size.
///
/// UVC cameras leave the Huffman tables out of their MJPEG frames; zune-jpeg fills in the standard
/// ones, which is why it was chosen over decoders that reject such frames.
pub fn decode_jpeg(data: &[u8], frame: &mut Frame) -> Result<(), CameraError> {
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_max_width(8192)
        .set_max_height(8192);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(data), options);
    decoder
        .decode_headers()
        .map_err(|e| CameraError::Decode(format!("bad JPEG: {e:?}")))?;
    let info = decoder
        .info()
        .ok_or_else(|| CameraError::Decode("JPEG without a frame header".into()))?;
    check_frame_size(u32::from(info.width), u32::from(info.height)).map_err(CameraError::Decode)?;
    let dst = frame.resize(u32::from(info.width), u32::from(info.height));
    decoder
        .decode_into(dst)
        .map_err(|e| CameraError::Decode(format!("bad JPEG: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BT.601 limited-range values of the primaries, as `ffmpeg` writes them.
    const RED: [u8; 3] = [81, 90, 240];
    const GREEN: [u8; 3] = [145, 54, 34];
    const BLUE: [u8; 3] = [41, 240, 110];

    fn close(a: [u8; 3], b: [u8; 3]) -> bool {
        a.iter()
            .zip(b)
            .all(|(x, y)| (i16::from(*x) - i16::from(y)).abs() <= 3)
    }

    #[test]
    fn primaries_come_back_as_primaries() {
        for (yuv, rgb) in [
            (RED, [255, 0, 0]),
            (GREEN, [0, 255, 0]),
            (BLUE, [0, 0, 255]),
        ] {
            let got = yuv_to_rgb(yuv[0], yuv[1], yuv[2], YuvRange::Limited);
            assert!(close(got, rgb), "{yuv:?} -> {got:?}, want {rgb:?}");
        }
        assert_eq!(yuv_to_rgb(16, 128, 128, YuvRange::Limited), [0, 0, 0]);
        assert_eq!(
            yuv_to_rgb(235, 128, 128, YuvRange::Limited),
            [255, 255, 255]
        );
        assert_eq!(yuv_to_rgb(128, 128, 128, YuvRange::Full), [128, 128, 128]);
        assert!(close(yuv_to_rgb(76, 85, 255, YuvRange::Full), [254, 0, 0]));
    }

    #[test]
    fn yuyv_with_padded_rows() {
        // 2x2: top row red, bottom row blue; 4 bytes of row padding the converter must skip.
        let mut src = vec![RED[0], RED[1], RED[0], RED[2], 9, 9, 9, 9];
        src.extend([BLUE[0], BLUE[1], BLUE[0], BLUE[2], 9, 9, 9, 9]);
        let mut dst = vec![0; 12];
        yuyv_to_rgb(&src, 2, 2, 8, &mut dst);
        assert!(close([dst[0], dst[1], dst[2]], [255, 0, 0]));
        assert!(close([dst[3], dst[4], dst[5]], [255, 0, 0]));
        assert!(close([dst[9], dst[10], dst[11]], [0, 0, 255]));
    }

    #[test]
    fn nv12_and_i420_agree() {
        // 4x2: left half green, right half red.
        let y = [GREEN[0], GREEN[0], RED[0], RED[0]].repeat(2);
        let mut nv12 = y.clone();
        nv12.extend([GREEN[1], GREEN[2], RED[1], RED[2]]);
        let mut i420 = y;
        i420.extend([GREEN[1], RED[1], GREEN[2], RED[2]]);
        let (mut a, mut b) = (vec![0; 24], vec![0; 24]);
        nv12_to_rgb(&nv12, 4, 2, 4, &mut a);
        i420_to_rgb(&i420, 4, 2, YuvRange::Limited, &mut b);
        assert_eq!(a, b);
        assert!(close([a[0], a[1], a[2]], [0, 255, 0]));
        assert!(close([a[21], a[22], a[23]], [255, 0, 0]));
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        assert_eq!(PixelFormat::I420.frame_len(3, 3), Some(9 + 2 * 4));
        assert_eq!(PixelFormat::Yuyv.frame_len(3, 1), Some(8));
        let src = vec![128u8; 17];
        let mut frame = Frame::new();
        PixelFormat::I420.convert(&src, 3, 3, &mut frame).unwrap();
        assert_eq!(frame.rgb.len(), 27);
    }

    #[test]
    fn a_frame_larger_than_the_bound_is_refused_before_its_buffer() {
        assert!(check_frame_size(3840, 2160).is_ok());
        assert!(check_frame_size(13000, 13000).is_err());
        assert!(check_frame_size(1, 100_000_000).is_err());
    }

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        let mut frame = Frame::new();
        let err = PixelFormat::Nv12
            .convert(&[0; 10], 4, 4, &mut frame)
            .unwrap_err();
        assert!(err.to_string().contains("needs 24 bytes"), "{err}");
    }
}
