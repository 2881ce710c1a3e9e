//! The V4L2 capture devices present, for the console's "add a camera" (`GET
//! /api/v1/cameras/devices`): each one's name, driver, bus and the formats and frame sizes it
//! offers, so that an installer picks a device and a size it can actually give.
//!
//! Bounded: at most [`MAX_NODES`] `/dev/video*` nodes are opened, and at most [`MAX_FORMATS`]
//! format lines are listed per device. Metadata-only nodes (USB cameras expose one beside each
//! capture node) are left out. A node that cannot be opened or queried (busy, permission denied)
//! is listed with its error rather than failing the list: that is what the installer needs to see.
//! Without the `v4l2` feature the list is empty, as the build cannot capture from any of them.

use serde::Serialize;

/// `/dev/video*` nodes looked at, at most.
pub const MAX_NODES: usize = 64;
/// Format lines listed per device, at most (a stepwise range counts as one).
pub const MAX_FORMATS: usize = 128;

/// One V4L2 capture device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct VideoDevice {
    pub path: String,
    /// The card's name (`Integrated Camera`, `mmal service 16.1`); empty when it could not be read.
    pub name: String,
    pub driver: String,
    pub bus: String,
    /// `"<fourcc> <width>x<height>"` per discrete size, `"<fourcc> <min>-<max>"` for a range.
    pub formats: Vec<String>,
    /// Why the device could not be opened or queried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `/dev/video*` nodes, in number order, at most [`MAX_NODES`].
#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
fn video_nodes(dev: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dev) else {
        return Vec::new();
    };
    let mut nodes: Vec<(u32, std::path::PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let n = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    nodes.sort();
    nodes.into_iter().take(MAX_NODES).map(|(_, p)| p).collect()
}

/// The capture devices present. Blocks (it opens each node): call it off the async threads.
#[cfg(feature = "v4l2")]
pub fn list_devices() -> Vec<VideoDevice> {
    video_nodes(std::path::Path::new("/dev"))
        .iter()
        .filter_map(|p| v4l2::describe(p))
        .collect()
}

/// The capture devices present: none in a build without V4L2 support.
#[cfg(not(feature = "v4l2"))]
pub fn list_devices() -> Vec<VideoDevice> {
    Vec::new()
}

/// A frame size as listed: one size, or a range for drivers that take any size within one.
#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
fn size_line(fourcc: &str, size: Size) -> String {
    match size {
        Size::One(w, h) => format!("{fourcc} {w}x{h}"),
        Size::Range { min, max } => {
            format!("{fourcc} {}x{}-{}x{}", min.0, min.1, max.0, max.1)
        }
    }
}

#[cfg_attr(not(feature = "v4l2"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
enum Size {
    One(u32, u32),
    Range { min: (u32, u32), max: (u32, u32) },
}

#[cfg(feature = "v4l2")]
mod v4l2 {
    use std::path::Path;

    use v4l::capability::Flags;
    use v4l::framesize::FrameSizeEnum;
    use v4l::video::Capture as _;
    use v4l::Device;

    use super::{size_line, Size, VideoDevice, MAX_FORMATS};
    use crate::camera::CameraError;

    /// The device at `path`, `None` when it is no video capture node (a metadata node, an output).
    pub(super) fn describe(path: &Path) -> Option<VideoDevice> {
        let mut device = VideoDevice {
            path: path.display().to_string(),
            name: String::new(),
            driver: String::new(),
            bus: String::new(),
            formats: Vec::new(),
            error: None,
        };
        let reason = |e: std::io::Error| match super::super::v4l2::open_error(path, &e) {
            CameraError::Open { reason, .. } => reason,
            other => other.to_string(),
        };
        let dev = match Device::with_path(path) {
            Ok(d) => d,
            Err(e) => {
                device.error = Some(reason(e));
                return Some(device);
            }
        };
        let caps = match dev.query_caps() {
            Ok(c) => c,
            Err(e) => {
                device.error = Some(reason(e));
                return Some(device);
            }
        };
        if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
            return None;
        }
        device.name = caps.card;
        device.driver = caps.driver;
        device.bus = caps.bus;
        match formats(&dev) {
            Ok(f) => device.formats = f,
            Err(e) => device.error = Some(reason(e)),
        }
        Some(device)
    }

    fn formats(dev: &Device) -> std::io::Result<Vec<String>> {
        let mut out = Vec::new();
        for format in dev.enum_formats()? {
            let fourcc = format.fourcc.str().unwrap_or("????").to_owned();
            for size in dev.enum_framesizes(format.fourcc)? {
                if out.len() >= MAX_FORMATS {
                    return Ok(out);
                }
                let size = match size.size {
                    FrameSizeEnum::Discrete(d) => Size::One(d.width, d.height),
                    FrameSizeEnum::Stepwise(s) => Size::Range {
                        min: (s.min_width, s.min_height),
                        max: (s.max_width, s.max_height),
                    },
                };
                out.push(size_line(&fourcc, size));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_taken_in_number_order_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["video10", "video2", "video0", "videoX", "vbi0", "video1"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        for n in 100..200 {
            std::fs::write(dir.path().join(format!("video{n}")), b"").unwrap();
        }
        let nodes = video_nodes(dir.path());
        let names: Vec<String> = nodes
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names[..5],
            ["video0", "video1", "video2", "video10", "video100"]
        );
        assert_eq!(names.len(), MAX_NODES);
    }

    #[test]
    fn sizes_read_as_an_installer_writes_them() {
        assert_eq!(size_line("MJPG", Size::One(1280, 720)), "MJPG 1280x720");
        let range = Size::Range {
            min: (48, 32),
            max: (1920, 1080),
        };
        assert_eq!(size_line("YUYV", range), "YUYV 48x32-1920x1080");
    }

    #[test]
    fn listing_the_devices_of_this_machine_does_not_fail() {
        // Whatever this machine has (often nothing): every entry names its node.
        for d in list_devices() {
            assert!(d.path.starts_with("/dev/video"), "{d:?}");
        }
    }
}
