//! A camera's id, checked wherever one comes in.

use std::fmt;

use serde::Serialize;

use crate::config::check::{check_name, ConfigError};

/// A camera's id: the same safe alphabet as a webhook's, checked wherever an id comes in (the
/// cameras routes, a trigger's `camera_id`), since it ends up in paths, topics and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CameraId(String);

impl CameraId {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        check_name("camera_id", s)?;
        // Snapshots go to `snapshots/<camera>/`: `.` and `..` would name another folder.
        if s.contains("..") || s == "." {
            return Err(ConfigError::invalid(
                "camera_id",
                format!("must not be . or contain .., got {s:?}"),
            ));
        }
        // `/api/v1/cameras/devices` lists the V4L2 devices: a camera of that id could not be reached.
        if s == "devices" {
            return Err(ConfigError::invalid(
                "camera_id",
                "\"devices\" is reserved (GET /api/v1/cameras/devices lists the V4L2 devices)",
            ));
        }
        Ok(CameraId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camera_ids_name_no_other_folder() {
        assert!(CameraId::parse("gate-2.north_side").is_ok());
        for bad in [
            "", ".", "..", "a..b", "../x", "a/b", "a\u{0}b", "a b", "devices",
        ] {
            assert!(CameraId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
