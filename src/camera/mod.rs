//! Cameras: where frames come from (v4l2, a command's pipe, files, synthetic), and the latest-frame
//! slot that keeps capture from ever blocking inference.
//!
//! A [`Source`] produces [`Frame`]s into a buffer the caller reuses, RGB24 or still as the source
//! gave them (JPEG, YUV) until [`Frame::decode`]; [`open`] builds one from a
//! [`SourceSpec`] (the config's `[camera.source]` table, or one of FaceCV's `source` strings through
//! [`parse_source`]). [`Capture`] runs a source on its own thread, keeps only the newest frame, and
//! reopens live sources (cameras, pipes) that go away, with capped exponential back-off.
//!
//! [`control`] is the small face the rest of the appliance sees of them: which cameras exist, whether
//! each runs, and a way to start and stop one (the MQTT bridge's commands and the GPIO inputs use it).

mod admit;
mod capture;
pub mod control;
mod devices;
mod file;
mod frame;
mod id;
mod mjpeg;
mod network;
mod pipe;
mod synthetic;
#[cfg(feature = "v4l2")]
mod v4l2;

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::shutdown::Shutdown;

pub use admit::{ApiSources, SourceRefusal};
pub use capture::{Backoff, Capture, CaptureEvent, CaptureStats, SourceState};
pub use devices::{list_devices, VideoDevice};
pub(crate) use file::y4m_frames;
pub use file::FileSource;
pub use frame::{
    decode_jpeg, grey_to_rgb, i420_to_rgb, nv12_to_rgb, planar_to_rgb, rgb_len, yuv_to_rgb,
    yuyv_to_rgb, Frame, PixelFormat, Planes, YuvRange,
};
pub use id::CameraId;
pub(crate) use mjpeg::read_jpeg;
pub use network::{ffmpeg_command, StreamUrl};
pub use pipe::PipeSource;
pub use synthetic::SyntheticSource;
#[cfg(feature = "v4l2")]
pub use v4l2::V4l2Source;

/// Size used when a `source` string does not say (FaceCV's strings never do).
pub const DEFAULT_WIDTH: u32 = 640;
pub const DEFAULT_HEIGHT: u32 = 480;
/// Largest frame rate accepted anywhere; above it a typo (`fps = 300`) is more likely than a camera.
pub const MAX_FPS: f32 = 240.0;

#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// A configuration value is wrong; `key` names it as the config file spells it.
    #[error("{key} {message}")]
    Invalid { key: String, message: String },
    /// A camera device could not be opened or set up; worth retrying (it may be plugged in later).
    #[error("cannot open {device}: {reason}")]
    Open { device: String, reason: String },
    /// The command of a pipe source could not be started.
    #[error("cannot start `{program}`: {source}{hint}")]
    Spawn {
        program: String,
        hint: &'static str,
        source: std::io::Error,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data is not in the format it claims to be (a bad y4m header, a frame of the wrong size).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    /// One frame could not be decoded; the next one may be fine.
    #[error("cannot decode frame: {0}")]
    Decode(String),
    /// What was asked cannot be done by this build or this device.
    #[error("{0}")]
    Unsupported(String),
    /// A file (not looped) has no more frames.
    #[error("the source ended")]
    Ended,
    /// A device or pipe went away; a [`Capture`] reopens it.
    #[error("the source was lost: {0}")]
    Lost(String),
    /// [`Capture::next`] waited its whole timeout without a new frame.
    #[error("no new frame within {0:?}")]
    Timeout(Duration),
    /// The source was interrupted because its capture is stopping.
    #[error("capture stopped")]
    Stopped,
    /// The source cannot work as configured and its capture gave up (see [`SourceState::Failed`]).
    #[error("the source failed: {0}")]
    Failed(String),
}

impl CameraError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        CameraError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }

    /// Whether reopening the source later may succeed: a camera can be plugged back in, a stream
    /// can come back; a wrong setting or a missing program stays wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            CameraError::Open { .. } | CameraError::Lost(_) => true,
            CameraError::Spawn { source, .. } => source.kind() != std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Where a camera's frames come from. Deserialised from the config's `[camera.source]` table.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A V4L2 device (USB cameras, CSI cameras with a V4L2 driver). The driver may give another
    /// size or rate than asked; the source logs and reports what it got.
    V4l2 {
        #[schema(value_type = String, example = "/dev/video0")]
        device: PathBuf,
        #[serde(default = "default_width")]
        #[schema(example = 640)]
        width: u32,
        #[serde(default = "default_height")]
        #[schema(example = 480)]
        height: u32,
        /// 0 keeps the driver's rate.
        #[serde(default = "default_fps")]
        #[schema(minimum = 0.0)]
        fps: f32,
        /// `None` picks one the device offers: YUYV up to 640x480, MJPEG above.
        #[serde(default)]
        format: Option<PixelFormat>,
    },
    /// Raw frames on a command's stdout: `rpicam-vid`, a GStreamer pipeline, `ffmpeg` for RTSP.
    Pipe {
        command: Vec<String>,
        width: u32,
        height: u32,
        format: PixelFormat,
    },
    /// A y4m or MJPEG file, a single image, or a folder of images; paced at `fps` (0: unpaced).
    File {
        /// In `api.media_dir` for a camera of the API.
        #[schema(value_type = String, example = "clip.y4m")]
        path: PathBuf,
        #[serde(default)]
        #[schema(minimum = 0.0)]
        fps: f32,
        #[serde(default)]
        looped: bool,
    },
    /// A moving test pattern with no faces, for soak tests and a camera-less default config.
    Synthetic {
        #[serde(default = "default_width")]
        #[schema(example = 640)]
        width: u32,
        #[serde(default = "default_height")]
        #[schema(example = 480)]
        height: u32,
        /// 0: as fast as the pattern can be drawn.
        #[serde(default = "default_fps")]
        #[schema(minimum = 0.0)]
        fps: f32,
    },
}

fn default_width() -> u32 {
    DEFAULT_WIDTH
}
fn default_height() -> u32 {
    DEFAULT_HEIGHT
}
fn default_fps() -> f32 {
    15.0
}

impl SourceSpec {
    /// Checks every value once at start-up, naming the key, so a typo fails loudly at `serve`.
    pub fn validate(&self) -> Result<(), CameraError> {
        match self {
            SourceSpec::V4l2 {
                device,
                width,
                height,
                fps,
                ..
            } => {
                if device.as_os_str().is_empty() {
                    return Err(CameraError::invalid("source.device", "must not be empty"));
                }
                check_size(*width, *height)?;
                check_fps(*fps)
            }
            SourceSpec::Pipe {
                command,
                width,
                height,
                ..
            } => {
                if command.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(CameraError::invalid(
                        "source.command",
                        "must name a program, e.g. [\"rpicam-vid\", \"-t\", \"0\", ...]",
                    ));
                }
                check_size(*width, *height)
            }
            SourceSpec::File { path, fps, .. } => {
                if !path.exists() {
                    return Err(CameraError::invalid(
                        "source.path",
                        format!("{} does not exist", path.display()),
                    ));
                }
                check_fps(*fps)
            }
            SourceSpec::Synthetic { width, height, fps } => {
                check_size(*width, *height)?;
                check_fps(*fps)
            }
        }
    }

    /// The `kind` the config file names this source by (`v4l2`, `pipe`, `file`, `synthetic`):
    /// also what events and the API show as the source of a camera that has no `source` string.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::V4l2 { .. } => "v4l2",
            SourceSpec::Pipe { .. } => "pipe",
            SourceSpec::File { .. } => "file",
            SourceSpec::Synthetic { .. } => "synthetic",
        }
    }

    /// Cameras and streams can come back after they vanish; files and patterns cannot vanish.
    pub fn is_live(&self) -> bool {
        matches!(self, SourceSpec::V4l2 { .. } | SourceSpec::Pipe { .. })
    }

    /// A file read without pacing (`fps = 0`): nothing is lost by waiting, so capture reads
    /// the next frame only once the last was taken, rather than read (and throw away) thousands
    /// a second. (An unpaced test pattern stays as fast as it can be drawn: it is a load.)
    pub fn is_unpaced(&self) -> bool {
        matches!(self, SourceSpec::File { fps, .. } if *fps <= 0.0)
    }
}

fn check_size(width: u32, height: u32) -> Result<(), CameraError> {
    for (key, v) in [("source.width", width), ("source.height", height)] {
        if !(16..=4096).contains(&v) {
            return Err(CameraError::invalid(
                key,
                format!("must be 16..=4096, got {v}"),
            ));
        }
    }
    Ok(())
}

fn check_fps(fps: f32) -> Result<(), CameraError> {
    if !fps.is_finite() || !(0.0..=MAX_FPS).contains(&fps) {
        return Err(CameraError::invalid(
            "source.fps",
            format!("must be 0..={MAX_FPS} (0: as fast as possible / driver default), got {fps}"),
        ));
    }
    Ok(())
}

/// Reads one of FaceCV's `source` strings, so existing configs keep working:
/// `"0"` is `/dev/video0`, `"/dev/videoN"` a V4L2 device, `rtsp://` and `http(s)://` URLs go through
/// `ffmpeg` (scaled to 640x480 RGB), an existing file or folder is a file source, `"synthetic"` the
/// test pattern. `fps` paces files and the pattern and is asked of cameras.
pub fn parse_source(s: &str, fps: f32) -> Result<SourceSpec, CameraError> {
    let s = s.trim();
    let (width, height) = (DEFAULT_WIDTH, DEFAULT_HEIGHT);
    let lower = s.to_ascii_lowercase();
    let spec = if s == "synthetic" {
        SourceSpec::Synthetic { width, height, fps }
    } else if !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit()) {
        let device = PathBuf::from(format!("/dev/video{}", s.parse::<u32>().unwrap_or(0)));
        SourceSpec::V4l2 {
            device,
            width,
            height,
            fps,
            format: None,
        }
    } else if s.starts_with("/dev/video") {
        SourceSpec::V4l2 {
            device: s.into(),
            width,
            height,
            fps,
            format: None,
        }
    } else if StreamUrl::SCHEMES
        .iter()
        .any(|p| lower.starts_with(&format!("{p}://")))
    {
        let command = ffmpeg_command(&StreamUrl::parse(s)?, width, height, fps);
        SourceSpec::Pipe {
            command,
            width,
            height,
            format: PixelFormat::Rgb24,
        }
    } else if !s.is_empty() && std::path::Path::new(s).exists() {
        SourceSpec::File {
            path: s.into(),
            fps,
            looped: false,
        }
    } else {
        return Err(CameraError::invalid(
            "source",
            format!(
                "\"{s}\" is not a camera index, /dev/videoN, rtsp:// or http(s):// URL, \
                 existing file or folder, or \"synthetic\""
            ),
        ));
    };
    spec.validate()?;
    Ok(spec)
}

/// A source of frames, left as the source gave them ([`Frame::set_encoded`]) or RGB24: whoever reads
/// the pixels calls [`Frame::decode`] first. `next_frame` blocks until a frame is there; it returns
/// [`CameraError::Ended`] when a file has no more, [`CameraError::Lost`] when a device or pipe went
/// away, and [`CameraError::Stopped`] once the [`Shutdown`] it was opened with is cancelled.
///
/// Every source is opened with a `Shutdown` of its own (a child of its capture's) and makes a
/// blocked `next_frame` return promptly when it is cancelled: pacing sleeps on it, v4l2 checks it
/// between polls, a pipe source has its command's process group killed by it.
pub trait Source: Send {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CameraError>;
    /// One line for logs: what this is and what it actually delivers ("/dev/video0 YUYV 640x480 @ 30").
    fn describe(&self) -> String;
}

/// Builds the source a spec describes, stopped by `stop` (see [`Source`]). Opening a missing
/// camera fails here, with a message that says what to check.
pub fn open(spec: &SourceSpec, stop: Shutdown) -> Result<Box<dyn Source>, CameraError> {
    spec.validate()?;
    Ok(match spec {
        SourceSpec::V4l2 { .. } => open_v4l2(spec, stop)?,
        SourceSpec::Pipe {
            command,
            width,
            height,
            format,
        } => Box::new(PipeSource::spawn(command, *width, *height, *format, stop)?),
        SourceSpec::File { path, fps, looped } => {
            Box::new(FileSource::open(path, *fps, *looped, stop)?)
        }
        SourceSpec::Synthetic { width, height, fps } => {
            Box::new(SyntheticSource::new(*width, *height, *fps, stop))
        }
    })
}

#[cfg(feature = "v4l2")]
fn open_v4l2(spec: &SourceSpec, stop: Shutdown) -> Result<Box<dyn Source>, CameraError> {
    Ok(Box::new(V4l2Source::open(spec, stop)?))
}

#[cfg(not(feature = "v4l2"))]
fn open_v4l2(_spec: &SourceSpec, _stop: Shutdown) -> Result<Box<dyn Source>, CameraError> {
    Err(CameraError::Unsupported(
        "this build has no V4L2 support (build with cargo feature `v4l2`); \
         use a pipe source for CSI cameras"
            .into(),
    ))
}

/// A poisoned lock only means another thread panicked mid-update of plain counters; keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Spaces frames `1/fps` apart on a fixed schedule (no drift), and never bursts to catch up after
/// a stall: a consumer that was paused gets the current frame, not a backlog.
#[derive(Debug)]
struct Pacer {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    fn new(fps: f32) -> Self {
        let interval = (fps > 0.0).then(|| Duration::from_secs_f64(1.0 / f64::from(fps)));
        Pacer {
            interval,
            next: None,
        }
    }

    fn wait(&mut self, stop: &Shutdown) -> Result<(), CameraError> {
        let Some(interval) = self.interval else {
            return if stop.is_cancelled() {
                Err(CameraError::Stopped)
            } else {
                Ok(())
            };
        };
        let now = Instant::now();
        let due = match self.next {
            Some(due) if due + interval >= now => due,
            _ => now,
        };
        if !stop.sleep_until(due) {
            return Err(CameraError::Stopped);
        }
        self.next = Some(due + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_table_in_the_config_is_read_and_checked_by_key() {
        let spec: SourceSpec = toml::from_str(
            r#"kind = "pipe"
               command = ["rpicam-vid", "-t", "0", "--codec", "yuv420", "-o", "-"]
               width = 1280
               height = 720
               format = "yuv420""#,
        )
        .unwrap();
        assert!(matches!(
            spec,
            SourceSpec::Pipe {
                format: PixelFormat::I420,
                width: 1280,
                ..
            }
        ));
        spec.validate().unwrap();

        let spec: SourceSpec =
            toml::from_str("kind = \"v4l2\"\ndevice = \"/dev/video0\"\nformat = \"mjpeg\"")
                .unwrap();
        assert!(matches!(
            spec,
            SourceSpec::V4l2 {
                width: 640,
                format: Some(PixelFormat::Mjpeg),
                ..
            }
        ));

        let tiny = SourceSpec::Synthetic {
            width: 8,
            height: 48,
            fps: 5.0,
        };
        let err = tiny.validate().unwrap_err().to_string();
        assert_eq!(err, "source.width must be 16..=4096, got 8");
        let fast = SourceSpec::Synthetic {
            width: 64,
            height: 48,
            fps: 1000.0,
        };
        let err = fast.validate().unwrap_err().to_string();
        assert!(err.starts_with("source.fps must be 0..=240"), "{err}");
        let typo = toml::from_str::<SourceSpec>("kind = \"synthetic\"\nwidht = 10");
        assert!(typo.unwrap_err().to_string().contains("widht"));
        let missing = SourceSpec::File {
            path: "/nope.y4m".into(),
            fps: 1.0,
            looped: false,
        };
        let err = missing.validate().unwrap_err().to_string();
        assert_eq!(err, "source.path /nope.y4m does not exist");
    }

    #[test]
    fn a_source_is_labelled_by_the_kind_its_config_table_names() {
        for (table, kind) in [
            ("kind = \"v4l2\"\ndevice = \"/dev/video0\"", "v4l2"),
            (
                "kind = \"pipe\"\ncommand = [\"x\"]\nwidth = 64\nheight = 48\nformat = \"rgb24\"",
                "pipe",
            ),
            ("kind = \"file\"\npath = \"/a.y4m\"", "file"),
            ("kind = \"synthetic\"", "synthetic"),
        ] {
            let spec: SourceSpec = toml::from_str(table).unwrap();
            assert_eq!(spec.kind(), kind);
        }
    }
}
