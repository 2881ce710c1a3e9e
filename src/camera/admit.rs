//! What a camera defined over the API may read: the one check every source that comes in through
//! the API passes (the cameras routes, an SSE stream's `source`, a camera the store remembers).
//!
//! The config file is the operator's word; a request is anyone's on the LAN (or any web page a
//! browser on the device opens, were it not for `api::guard`). So the API may ask for:
//! * a V4L2 camera as `/dev/videoN` (no other device node),
//! * a network camera as an `rtsp://`, `rtsps://`, `http://` or `https://` URL, which becomes an
//!   `ffmpeg` argv the appliance builds itself ([`super::network`]),
//! * a video file, image or folder below `api.media_dir` (`..` and symlinks that lead out refused),
//! * the synthetic pattern.
//!
//! Never a `pipe` source: that runs a command, and commands belong in the config file. What the
//! check returns is the spec to open, with a file's real path, so nothing later re-reads the text.

use std::path::{Path, PathBuf};

use super::network::StreamUrl;
use super::{parse_source, CameraError, SourceSpec};
use crate::confine::{ConfineError, Root};

/// Why the API may not have a source; [`SourceRefusal::code`] is the API's error code.
#[derive(Debug, thiserror::Error)]
pub enum SourceRefusal {
    #[error("pipe sources run a command on the appliance; define them in the config file ([[cameras]] with a `spec` of kind \"pipe\"), not over the API")]
    PipeNeedsConfig,
    #[error("video files and folders are off over the API: set api.media_dir to the folder cameras may read")]
    MediaDirUnset,
    #[error("api.media_dir cannot be read; the appliance's log says why")]
    MediaDirUnreadable,
    #[error("{0:?} is outside api.media_dir; over the API, cameras read files only from there")]
    OutsideMediaDir(String),
    #[error("{0:?} is not in api.media_dir")]
    MissingMedia(String),
    #[error("{0:?}: over the API a camera device is /dev/videoN; other devices belong in the config file")]
    DeviceNotAllowed(String),
    /// The source is allowed in kind but wrong (a malformed URL, a frame size out of range).
    #[error(transparent)]
    Invalid(#[from] CameraError),
}

impl SourceRefusal {
    pub fn code(&self) -> &'static str {
        match self {
            SourceRefusal::PipeNeedsConfig => "pipe_needs_config",
            SourceRefusal::MediaDirUnset => "media_dir_unset",
            SourceRefusal::MediaDirUnreadable => "media_dir_unreadable",
            SourceRefusal::OutsideMediaDir(_) => "outside_media_dir",
            SourceRefusal::MissingMedia(_) => "no_such_media",
            SourceRefusal::DeviceNotAllowed(_) => "device_not_allowed",
            SourceRefusal::Invalid(_) => "validation_error",
        }
    }

    /// Refused by the rules (403), as opposed to a request that is wrong in itself (422).
    pub fn is_forbidden(&self) -> bool {
        !matches!(
            self,
            SourceRefusal::MissingMedia(_) | SourceRefusal::Invalid(_)
        )
    }
}

/// The rules of the module comment, with the configured `api.media_dir`.
#[derive(Debug, Clone, Default)]
pub struct ApiSources {
    media_dir: Option<PathBuf>,
}

impl ApiSources {
    pub fn new(media_dir: Option<PathBuf>) -> Self {
        ApiSources { media_dir }
    }

    /// One of FaceCV's `source` strings. A string that is neither a camera, a URL nor the
    /// pattern is a path in the media folder, and the filesystem is asked about it only there.
    pub fn source(&self, s: &str, fps: f32) -> Result<SourceSpec, SourceRefusal> {
        let t = s.trim();
        let device = t.starts_with("/dev/video")
            || (!t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()));
        // Anything with a scheme is a URL, so that `file:` or `concat:` is named as such.
        let url = url::Url::parse(t).is_ok_and(|u| u.scheme().len() > 1);
        if url {
            // The one way to a pipe over the API: an argv built here from a checked URL.
            let spec = parse_source(&StreamUrl::parse(t)?.to_string(), fps)?;
            spec.validate()?;
            return Ok(spec);
        }
        if t == "synthetic" || device {
            return self.spec(&parse_source(t, fps)?);
        }
        let path = self.media(Path::new(t), s)?;
        self.spec(&SourceSpec::File {
            path,
            fps,
            looped: false,
        })
    }

    /// A `spec` table given to the API, checked and with a file's path made real.
    pub fn spec(&self, spec: &SourceSpec) -> Result<SourceSpec, SourceRefusal> {
        let spec = match spec {
            SourceSpec::Pipe { .. } => return Err(SourceRefusal::PipeNeedsConfig),
            SourceSpec::V4l2 { device, .. } => {
                if !is_video_node(device) {
                    let shown = device.to_string_lossy().into_owned();
                    return Err(SourceRefusal::DeviceNotAllowed(shown));
                }
                spec.clone()
            }
            SourceSpec::File { path, fps, looped } => SourceSpec::File {
                path: self.media(path, &path.to_string_lossy())?,
                fps: *fps,
                looped: *looped,
            },
            SourceSpec::Synthetic { .. } => spec.clone(),
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The real path of `asked` in the media folder; `shown` is how the client wrote it, the only
    /// form of the path an answer repeats.
    fn media(&self, asked: &Path, shown: &str) -> Result<PathBuf, SourceRefusal> {
        let dir = self
            .media_dir
            .as_ref()
            .ok_or(SourceRefusal::MediaDirUnset)?;
        let root = Root::open(dir).map_err(|e| {
            tracing::warn!(media_dir = %dir.display(), error = %e, "api.media_dir cannot be read");
            SourceRefusal::MediaDirUnreadable
        })?;
        root.resolve(asked).map_err(|e| match e {
            ConfineError::Outside => SourceRefusal::OutsideMediaDir(shown.to_owned()),
            ConfineError::Missing => SourceRefusal::MissingMedia(shown.to_owned()),
        })
    }
}

/// `/dev/video` and a number, nothing else (no `/dev/video0/../sda`, no `/dev/v4l/...` links).
fn is_video_node(device: &Path) -> bool {
    device
        .to_str()
        .and_then(|d| d.strip_prefix("/dev/video"))
        .is_some_and(|n| (1..=3).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_gets_cameras_urls_the_pattern_and_media_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let media = tmp.path().join("media");
        std::fs::create_dir(&media).unwrap();
        std::fs::write(media.join("clip.y4m"), b"YUV4MPEG2 W16 H16\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", media.join("passwd")).unwrap();
        let api = ApiSources::new(Some(media.clone()));
        let code = |r: Result<SourceSpec, SourceRefusal>| r.err().map(|e| e.code());

        assert_eq!(code(api.source("synthetic", 5.0)), None);
        assert_eq!(code(api.source("0", 5.0)), None);
        assert_eq!(code(api.source("rtsp://cam.local/s", 5.0)), None);
        let SourceSpec::File { path, .. } = api.source("clip.y4m", 5.0).unwrap() else {
            panic!("a file source")
        };
        assert_eq!(path, media.canonicalize().unwrap().join("clip.y4m"));

        let forbidden = [
            ("/etc/passwd", "outside_media_dir"),
            ("/etc/nope", "outside_media_dir"),
            ("../../../../etc/shadow", "outside_media_dir"),
            ("passwd", "outside_media_dir"),
            ("/dev/video0/../sda", "device_not_allowed"),
            ("/dev/videox", "device_not_allowed"),
        ];
        for (s, want) in forbidden {
            assert_eq!(code(api.source(s, 5.0)), Some(want), "{s}");
        }
        for s in ["file:/etc/passwd", "concat:/a|/b", "rtsp://cam/x -f lavfi"] {
            assert_eq!(code(api.source(s, 5.0)), Some("validation_error"), "{s}");
        }
        assert_eq!(code(api.source("gone.y4m", 5.0)), Some("no_such_media"));

        let pipe = SourceSpec::Pipe {
            command: vec!["/bin/sh".into(), "-c".into(), "touch /tmp/x".into()],
            width: 64,
            height: 48,
            format: super::super::PixelFormat::Rgb24,
        };
        assert_eq!(code(api.spec(&pipe)), Some("pipe_needs_config"));
        let off = ApiSources::new(None);
        assert_eq!(code(off.source("clip.y4m", 5.0)), Some("media_dir_unset"));
        assert_eq!(code(off.source("synthetic", 5.0)), None);
    }
}
