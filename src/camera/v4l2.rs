//! USB and CSI cameras through Video4Linux2, memory-mapped streaming (no copy from the driver).
//!
//! Drivers treat a requested size, format and rate as wishes: the source asks, reads back what it
//! got, logs both, and converts whatever the device actually sends. A camera that is unplugged
//! makes `next_frame` return [`CameraError::Lost`]; [`super::Capture`] reopens it with back-off.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use v4l::buffer::{Flags, Type};
use v4l::capability::Flags as CapFlags;
use v4l::io::mmap::Stream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::capture::Parameters;
use v4l::video::Capture as _;
use v4l::{Device, Format, FourCC, Fraction};

use super::{CameraError, Frame, PixelFormat, Source, SourceSpec};
use crate::shutdown::Shutdown;

/// How long a dequeue waits before checking whether the capture is stopping.
const POLL: Duration = Duration::from_millis(200);
/// A camera that sends nothing for this long is treated as gone: UVC cameras do hang, and
/// reopening them is the cure.
const STALL: Duration = Duration::from_secs(5);
/// Driver buffers: enough to ride out a slow conversion, few enough to keep latency low.
const BUFFERS: u32 = 4;

/// An open, configured V4L2 capture device.
pub struct V4l2Source {
    path: PathBuf,
    stream: Option<Stream<'static>>,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: usize,
    fps: f32,
    seq: u64,
    last_frame: Instant,
    /// Checked between dequeues, which time out every [`POLL`].
    stop: Shutdown,
}

impl V4l2Source {
    /// Opens the device and negotiates format, size and rate. Fails with [`CameraError::Open`]
    /// (worth retrying) when the device is missing or busy, and [`CameraError::Unsupported`] when it
    /// cannot give any format we convert.
    pub fn open(spec: &SourceSpec, stop: Shutdown) -> Result<Self, CameraError> {
        let SourceSpec::V4l2 {
            device: path,
            width,
            height,
            fps,
            format,
        } = spec
        else {
            return Err(CameraError::Unsupported("not a v4l2 source spec".into()));
        };
        let dev = Device::with_path(path).map_err(|e| open_error(path, &e))?;
        let caps = dev.query_caps().map_err(|e| open_error(path, &e))?;
        if !caps
            .capabilities
            .contains(CapFlags::VIDEO_CAPTURE | CapFlags::STREAMING)
        {
            return Err(CameraError::Unsupported(format!(
                "{} ({}) is not a streaming video capture device; USB cameras also expose a \
                 metadata node, try the next /dev/videoN",
                path.display(),
                caps.card
            )));
        }
        let offered: Vec<FourCC> = dev
            .enum_formats()
            .map_err(|e| open_error(path, &e))?
            .into_iter()
            .map(|d| d.fourcc)
            .collect();
        let fourcc = choose_fourcc(path, &offered, *format, *width, *height)?;
        let got = dev
            .set_format(&Format::new(*width, *height, fourcc))
            .map_err(|e| open_error(path, &e))?;
        let format = pixel_format(got.fourcc).ok_or_else(|| {
            CameraError::Unsupported(format!(
                "{} switched to format {}",
                path.display(),
                got.fourcc
            ))
        })?;
        let stride = got.stride as usize;
        if format == PixelFormat::I420 && stride != got.width as usize {
            return Err(CameraError::Unsupported(format!(
                "{} pads I420 rows; ask for yuyv, nv12 or mjpeg",
                path.display()
            )));
        }
        let actual_fps = negotiate_fps(&dev, *fps).map_err(|e| open_error(path, &e))?;
        let mut stream = Stream::with_buffers(&dev, Type::VideoCapture, BUFFERS)
            .map_err(|e| open_error(path, &e))?;
        stream.set_timeout(POLL);
        tracing::info!(
            device = %path.display(), card = %caps.card, format = %got.fourcc,
            width = got.width, height = got.height, fps = actual_fps,
            asked = %format_args!("{width}x{height} @ {fps}"), "v4l2 camera opened"
        );
        Ok(V4l2Source {
            path: path.clone(),
            stream: Some(stream),
            format,
            width: got.width,
            height: got.height,
            stride,
            fps: actual_fps,
            seq: 0,
            last_frame: Instant::now(),
            stop,
        })
    }

    /// The size the driver gave, which may differ from the one asked for.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The frame rate the driver reported (0 when it did not say).
    pub fn fps(&self) -> f32 {
        self.fps
    }
}

pub(super) fn open_error(path: &Path, e: &io::Error) -> CameraError {
    let reason = match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::NotFound, _) | (_, Some(libc::ENODEV)) => {
            "no such device (is the camera plugged in? `v4l2-ctl --list-devices` lists them)".into()
        }
        (io::ErrorKind::PermissionDenied, _) => {
            "permission denied (add the service user to the `video` group)".into()
        }
        (_, Some(libc::EBUSY)) => "device busy (another program is using the camera)".into(),
        _ => e.to_string(),
    };
    CameraError::Open {
        device: path.display().to_string(),
        reason,
    }
}

fn pixel_format(fourcc: FourCC) -> Option<PixelFormat> {
    Some(match &fourcc.repr {
        b"YUYV" => PixelFormat::Yuyv,
        b"MJPG" | b"JPEG" => PixelFormat::Mjpeg,
        b"NV12" => PixelFormat::Nv12,
        b"RGB3" => PixelFormat::Rgb24,
        b"YU12" => PixelFormat::I420,
        _ => return None,
    })
}

fn fourcc_of(format: PixelFormat) -> &'static [u8; 4] {
    match format {
        PixelFormat::Yuyv => b"YUYV",
        PixelFormat::Mjpeg => b"MJPG",
        PixelFormat::Nv12 => b"NV12",
        PixelFormat::Rgb24 => b"RGB3",
        PixelFormat::I420 => b"YU12",
    }
}

/// The asked format if the device offers it; otherwise uncompressed up to 640x480 (no decode
/// cost) and MJPEG above it, because USB 2 cannot carry uncompressed 720p at a useful rate.
fn choose_fourcc(
    path: &Path,
    offered: &[FourCC],
    asked: Option<PixelFormat>,
    width: u32,
    height: u32,
) -> Result<FourCC, CameraError> {
    let has = |f: PixelFormat| offered.iter().any(|o| o.repr == *fourcc_of(f));
    let offers = || {
        offered
            .iter()
            .map(|o| o.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(f) = asked {
        return if has(f) {
            Ok(FourCC::new(fourcc_of(f)))
        } else {
            Err(CameraError::Unsupported(format!(
                "{} does not offer {f}; it offers {}",
                path.display(),
                offers()
            )))
        };
    }
    use PixelFormat::*;
    let order = if width * height > 640 * 480 {
        [Mjpeg, Yuyv, Nv12, Rgb24, I420]
    } else {
        [Yuyv, Nv12, Rgb24, I420, Mjpeg]
    };
    order
        .into_iter()
        .find(|f| has(*f))
        .map(|f| FourCC::new(fourcc_of(f)))
        .ok_or_else(|| {
            CameraError::Unsupported(format!(
                "{} offers none of YUYV, MJPG, NV12, RGB3, YU12 (it offers {})",
                path.display(),
                offers()
            ))
        })
}

/// Asks for `fps` (0 keeps the driver's) and returns the rate the driver settled on.
fn negotiate_fps(dev: &Device, fps: f32) -> io::Result<f32> {
    let params = if fps > 0.0 {
        let interval = Fraction::new(1000, (fps * 1000.0).round() as u32);
        // Some drivers (fixed-rate CSI bridges) refuse S_PARM; their rate is what G_PARM says.
        dev.set_params(&Parameters::new(interval))
            .or_else(|_| dev.params())?
    } else {
        dev.params()?
    };
    let Fraction {
        numerator,
        denominator,
    } = params.interval;
    Ok(if numerator == 0 {
        0.0
    } else {
        denominator as f32 / numerator as f32
    })
}

impl Source for V4l2Source {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CameraError> {
        let geometry = (self.width, self.height, self.stride);
        loop {
            if self.stop.is_cancelled() {
                return Err(CameraError::Stopped);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(CameraError::Lost(format!(
                    "{} is closed",
                    self.path.display()
                )));
            };
            match stream.next() {
                Ok((buf, meta)) => {
                    // A buffer the driver flags as corrupt (USB bandwidth hiccup) is skipped, not fatal.
                    if meta.flags.contains(Flags::ERROR) || meta.bytesused == 0 {
                        continue;
                    }
                    let used = (meta.bytesused as usize).min(buf.len());
                    // Copied as the driver gave it; converted only if analysis takes it.
                    let (width, height, stride) = geometry;
                    frame
                        .set_encoded(self.format, width, height, stride)
                        .extend_from_slice(&buf[..used]);
                    self.last_frame = Instant::now();
                    self.seq += 1;
                    frame.stamp(self.seq);
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    if self.last_frame.elapsed() > STALL {
                        return Err(CameraError::Lost(format!(
                            "{} sent no frame for {} s",
                            self.path.display(),
                            STALL.as_secs()
                        )));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let gone = e.raw_os_error() == Some(libc::ENODEV);
                    let what = if gone {
                        "device gone (unplugged?)".to_string()
                    } else {
                        e.to_string()
                    };
                    return Err(CameraError::Lost(format!(
                        "{}: {what}",
                        self.path.display()
                    )));
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "v4l2 {} {} {}x{} @ {} fps",
            self.path.display(),
            self.format,
            self.width,
            self.height,
            self.fps
        )
    }
}

impl Drop for V4l2Source {
    /// The `v4l` stream panics in its own drop if STREAMOFF fails with anything but ENODEV; a
    /// camera dying in an odd way must not take the appliance down with it.
    fn drop(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            let _ = stream.stop();
            if catch_unwind(AssertUnwindSafe(move || drop(stream))).is_err() {
                tracing::warn!(device = %self.path.display(), "v4l2 stream did not stop cleanly");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fourccs(names: &[&[u8; 4]]) -> Vec<FourCC> {
        names.iter().map(|n| FourCC::new(n)).collect()
    }

    #[test]
    fn uncompressed_up_to_vga_and_mjpeg_above() {
        let offered = fourccs(&[b"MJPG", b"YUYV"]);
        let dev = Path::new("/dev/video0");
        let pick = |w, h| choose_fourcc(dev, &offered, None, w, h).unwrap();
        assert_eq!(pick(640, 480), FourCC::new(b"YUYV"));
        assert_eq!(pick(1280, 720), FourCC::new(b"MJPG"));
    }

    #[test]
    fn a_format_the_device_lacks_is_refused_with_what_it_offers() {
        let dev = Path::new("/dev/video0");
        let offered = fourccs(&[b"YUYV", b"NV12"]);
        let asked = choose_fourcc(dev, &offered, Some(PixelFormat::Mjpeg), 640, 480);
        assert_eq!(
            asked.unwrap_err().to_string(),
            CameraError::Unsupported(
                "/dev/video0 does not offer mjpeg; it offers YUYV, NV12".into()
            )
            .to_string()
        );
        let grey = choose_fourcc(dev, &fourccs(&[b"GREY"]), None, 640, 480);
        assert_eq!(
            grey.unwrap_err().to_string(),
            CameraError::Unsupported(
                "/dev/video0 offers none of YUYV, MJPG, NV12, RGB3, YU12 (it offers GREY)".into()
            )
            .to_string()
        );
    }
}
