//! Bodies that the handlers read or write without a Rust type of that shape, described here for
//! the OpenAPI document: the multipart forms of the face routes (read field by field by
//! `form.rs`, FaceCV's way, so that a client may send a file under any field name where FaceCV
//! allowed it) and the pictures the API hands out. The constraints are the ones the handlers
//! check, so that a client generating requests from the document sends what is accepted.

// The types below are never built: each describes bytes on the wire.
#![allow(dead_code)]

use utoipa::ToSchema;

/// A JPEG picture.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub(super) struct Jpeg(Vec<u8>);

/// One or more photos of one person, each showing exactly one face.
#[derive(ToSchema)]
#[schema(as = FacesRegisterForm)]
pub(super) struct RegisterForm {
    /// JPEG or PNG; repeat the field for several photos (each is enrolled).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
    /// Trimmed, 1 to 128 bytes.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "\\S",
        example = "John Doe"
    )]
    name: String,
    /// Kept in the person's metadata.
    #[schema(example = "Engineering")]
    department: Option<String>,
    /// Kept in the person's metadata.
    #[schema(example = "E1024")]
    employee_id: Option<String>,
    /// A JSON object kept with the person; events carry it.
    #[schema(example = "{\"badge\": \"blue\"}")]
    metadata: Option<String>,
}

/// A photo to find and name faces in.
#[derive(ToSchema)]
#[schema(as = FacesRecognizeForm)]
pub(super) struct RecognizeForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// The similarity a match needs; absent: the gallery's calibrated threshold.
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.55)]
    threshold: Option<f32>,
}

/// Two photos, one face each.
#[derive(ToSchema)]
#[schema(as = FacesVerifyForm)]
pub(super) struct VerifyForm {
    #[schema(value_type = String, format = Binary)]
    file1: Vec<u8>,
    #[schema(value_type = String, format = Binary)]
    file2: Vec<u8>,
    /// The similarity that counts as the same person; absent: the gallery's threshold.
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.55)]
    threshold: Option<f32>,
}

/// A photo to find faces in.
#[derive(ToSchema)]
#[schema(as = FacesDetectForm)]
pub(super) struct DetectForm {
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Faces the detector is less sure of are left out.
    #[schema(minimum = 0.0, maximum = 1.0, default = 0.5, example = 0.5)]
    min_confidence: Option<f32>,
}

/// How frames of a video are sampled: evenly over its length.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[schema(as = VideoSampling)]
pub(super) enum Sampling {
    Uniform,
}

/// A short video of one person; its best frames are enrolled.
#[derive(ToSchema)]
#[schema(as = FacesVideoForm)]
pub(super) struct VideoForm {
    /// y4m or MJPEG (convert others: `ffmpeg -i in.mp4 -f yuv4mpegpipe out.y4m`).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// Trimmed, 1 to 128 bytes.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "\\S",
        example = "John Doe"
    )]
    name: String,
    #[schema(example = "Engineering")]
    department: Option<String>,
    #[schema(example = "E1024")]
    employee_id: Option<String>,
    /// A JSON object kept with the person.
    #[schema(example = "{\"badge\": \"blue\"}")]
    metadata: Option<String>,
    /// Frames to enrol at most, a whole number.
    #[schema(minimum = 1, maximum = 20, default = 5)]
    count: Option<u32>,
    /// The detector confidence a face needs.
    #[schema(minimum = 0.0, maximum = 1.0, default = 0.7)]
    quality_threshold: Option<f32>,
    method: Option<Sampling>,
}

/// A folder on the appliance laid out `<dir>/<name>/*.jpg`, inside `api.offline_enrol_dir`
/// (relative paths are taken from there). Sent as JSON, a multipart form or a urlencoded form.
#[derive(ToSchema)]
#[schema(example = json!({"directory_path": "staff"}))]
#[schema(as = FacesFolderRequest)]
pub(super) struct FolderRequest {
    #[schema(min_length = 1, example = "staff")]
    directory_path: String,
}
