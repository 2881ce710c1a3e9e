//! Enrolment from more than one photo at a time: a folder laid out `<dir>/<name>/*.jpg` (the
//! installer's `facecv enroll --dir` and FaceCV's `POST /faces/offline` share [`folder`]), and a
//! short video of one person ([`video`], FaceCV's `POST /video_face/`), and the frames a running
//! camera analyses while someone stands in front of it ([`camera`], "take five good shots now").
//! Video and camera frames are judged and ranked alike ([`rank`]).
//!
//! Every path, these and the API's single photos, keeps the same pictures of each face and
//! stores them through one function ([`shot`]).
//!
//! All hold enrolment to the rule of a single photo: one clear face, or nothing is enrolled from
//! it. A gallery that learned a stranger's face recognises the stranger as someone else forever.

pub(crate) mod camera;
pub(crate) mod folder;
pub(crate) mod rank;
pub(crate) mod shot;
pub(crate) mod video;

pub use camera::ShotCollector;
pub use folder::{enrol_folder, PersonReport};
pub use shot::Shot;
pub use video::{pick_faces, sniff_video, VideoError, VideoOptions};
