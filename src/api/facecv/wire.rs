//! FaceCV's request forms and answers, as its Pydantic schemas (`schemas/face.py`) and route code
//! had them: the OpenAPI document is generated from these types, and the handlers serialise them,
//! so what is described is what is sent. Every score goes out through `crate::score`.

#![allow(dead_code)] // The form structs only describe the multipart fields to the document.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::score::{ser_as_written, ser_confidence};

/// `GET .../health`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvHealth {
    #[schema(example = "healthy")]
    pub status: &'static str,
    /// Contains FaceCV's `"Real InsightFace API"`, which its clients look for.
    pub service: &'static str,
    /// Whether the configured models pass their checks.
    pub initialized: bool,
    /// The embedder the gallery is enrolled with.
    pub model_pack: String,
    pub database_connected: bool,
    pub timestamp: String,
}

/// `GET .../models/info`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvModelsInfo {
    /// `active` once the models run, `inactive` when they cannot be loaded (`error` says why).
    pub status: &'static str,
    pub initialized: bool,
    pub model_pack: String,
    /// The gallery's calibrated threshold: what an absent `threshold` means.
    #[serde(serialize_with = "ser_as_written")]
    pub similarity_threshold: f32,
    /// The detector's floor (`vision.detector.threshold`).
    #[serde(serialize_with = "ser_as_written")]
    pub detection_threshold: f32,
    pub detector_model: String,
    pub embedder_model: String,
    /// The length of an embedding; absent while the models cannot be loaded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub face_database_connected: bool,
    pub face_count: u64,
    /// Always false: the appliance runs its own TFLite models, not InsightFace.
    pub insightface_available: bool,
    pub database: FacecvDatabase,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FacecvDatabase {
    #[schema(example = "SQLite")]
    pub r#type: &'static str,
    pub connected: bool,
    pub face_count: u64,
}

/// `GET .../models/status`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvModelsStatus {
    pub status: &'static str,
    /// The loaded model pack; null until an upload (or `models/info`) loads it.
    pub current_model: Option<String>,
    pub loaded_models: Vec<String>,
    pub model_count: usize,
    pub lazy_loading_enabled: bool,
    /// False: the API's models stay loaded until `models/clear`.
    pub auto_unload_enabled: bool,
    pub available_models: FacecvAvailable,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FacecvAvailable {
    /// The detector model file.
    pub detection_only: Vec<String>,
    /// The embedder the gallery is enrolled with.
    pub full_packages: Vec<String>,
    pub all: Vec<String>,
}

/// `POST .../models/clear`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvCleared {
    pub success: bool,
    pub message: &'static str,
    /// Always empty.
    pub current_models: Vec<String>,
}

/// One face of `POST .../detect` (FaceCV's `FaceDetection`).
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvDetection {
    /// `[x1, y1, x2, y2]` in the photo's pixels.
    #[schema(min_items = 4, max_items = 4)]
    pub bbox: Vec<i32>,
    /// The detector's confidence.
    #[serde(serialize_with = "ser_confidence")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f32,
    /// A fresh id for this detection (a UUID, as FaceCV gave).
    pub id: String,
    /// Right eye, left eye, nose tip, mouth centre, right ear, left ear, as `[x, y]`.
    pub landmarks: Vec<[f32; 2]>,
    #[serde(serialize_with = "ser_as_written")]
    pub quality_score: f32,
    /// Always `"Unknown"`: detection does not recognise.
    pub name: &'static str,
    #[serde(serialize_with = "ser_confidence")]
    pub similarity: f32,
}

/// One face of `POST .../recognize` (FaceCV's `RecognitionResult`).
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvRecognition {
    /// The enrolled person, or `"Unknown"` below the threshold.
    pub name: String,
    /// The best match's cosine similarity, clamped to [0, 1] (for `"Unknown"` faces too).
    #[serde(serialize_with = "ser_confidence")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f32,
    /// The same number as `confidence`.
    #[serde(serialize_with = "ser_confidence")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub similarity: f32,
    #[schema(min_items = 4, max_items = 4)]
    pub bbox: Vec<i32>,
    /// The enrolled photo that matched (`faces[].id`); empty for `"Unknown"`.
    pub id: String,
    /// The detector's confidence.
    #[serde(serialize_with = "ser_confidence")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub detection_score: f32,
    #[serde(serialize_with = "ser_as_written")]
    pub quality_score: f32,
    pub landmarks: Vec<[f32; 2]>,
    /// The matched person's enrolment metadata (`department`, `employee_id`, ...).
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    /// The threshold used, as written.
    #[serde(serialize_with = "ser_as_written")]
    pub threshold: f32,
}

/// `POST .../verify` (FaceCV's `VerificationResult`).
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvVerification {
    pub is_same_person: bool,
    /// Cosine similarity of the two faces, clamped to [0, 1]; 0 when a photo has no face.
    #[serde(serialize_with = "ser_confidence")]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub confidence: f32,
    /// `1 - similarity`, in [0, 2]; 2 when a photo has no face.
    #[serde(serialize_with = "ser_as_written")]
    #[schema(minimum = 0.0, maximum = 2.0)]
    pub distance: f32,
    /// The threshold used, as written.
    #[serde(serialize_with = "ser_as_written")]
    pub threshold: f32,
    pub message: Option<String>,
    pub face1_bbox: Vec<i32>,
    pub face2_bbox: Vec<i32>,
    #[serde(serialize_with = "ser_as_written")]
    pub face1_quality: f32,
    #[serde(serialize_with = "ser_as_written")]
    pub face2_quality: f32,
}

/// `POST .../register` (FaceCV's `FaceRegisterResponse`).
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvRegistered {
    pub success: bool,
    pub message: String,
    pub person_name: String,
    /// The new face's id when one photo was enrolled, else null.
    pub face_id: Option<String>,
    /// The new faces' ids when several photos were enrolled, else null.
    pub face_ids: Option<Vec<String>>,
    pub face_count: usize,
}

impl FacecvRegistered {
    pub(super) fn new(name: String, mut ids: Vec<String>) -> Self {
        let face_count = ids.len();
        let (face_id, face_ids) = match face_count {
            1 => (ids.pop(), None),
            _ => (None, Some(ids)),
        };
        FacecvRegistered {
            success: true,
            message: format!("Successfully registered {face_count} face(s)"),
            person_name: name,
            face_id,
            face_ids,
            face_count,
        }
    }
}

/// One face of `GET .../faces`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvFace {
    pub id: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    /// The length of its embedding (present when the running embedder made it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding_size: Option<usize>,
}

/// `GET .../faces`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvFaces {
    pub faces: Vec<FacecvFace>,
    /// How many faces match the filter, before `limit`.
    pub total: usize,
    /// How many are in `faces`.
    pub returned: usize,
}

/// `GET .../faces/count` (as FaceCV at b47c6a8 answered).
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvCount {
    pub total_faces: u64,
}

/// `DELETE .../faces/{face_id}` and `.../faces/by-name/{name}`.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvDeleted {
    pub message: String,
    /// Faces deleted (by name only, as FaceCV).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_count: Option<usize>,
}

/// `POST .../video_face/`: FaceCV's registration answer and its frame extractor's fields.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvVideoEnrolled {
    #[serde(flatten)]
    pub registered: FacecvRegistered,
    /// Frames the video held.
    pub total_frames_processed: usize,
    /// Frames with one usable face.
    pub faces_found: usize,
    /// The frames enrolled, best first.
    pub results: Vec<FacecvVideoFrame>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FacecvVideoFrame {
    pub frame_index: usize,
    pub bbox: Vec<i32>,
    /// Sharpness, size and detector confidence together, in [0, 1].
    #[serde(serialize_with = "ser_confidence")]
    pub quality_score: f32,
    #[serde(serialize_with = "ser_confidence")]
    pub detection_confidence: f32,
}

/// `POST .../faces/offline`: FaceCV's `summary` and `details`, and our per-person report.
#[derive(Serialize, ToSchema)]
pub(super) struct FacecvOfflineEnrolled {
    pub summary: FacecvOfflineSummary,
    pub details: FacecvOfflineDetails,
    /// Each person folder: enrolled or not (and why), its new face ids, each photo's status.
    #[schema(value_type = Vec<Object>)]
    pub people: Vec<crate::enrol::PersonReport>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FacecvOfflineSummary {
    pub total_success: usize,
    pub total_failed: usize,
    pub total_skipped: usize,
}

#[derive(Default, Serialize, ToSchema)]
pub(super) struct FacecvOfflineDetails {
    /// Photos enrolled.
    pub success: Vec<FacecvPhotoOutcome>,
    /// Photos that could not be read.
    pub failed: Vec<FacecvPhotoOutcome>,
    /// Photos left out (no face, several, too small, or their person was not enrolled).
    pub skipped: Vec<FacecvPhotoOutcome>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct FacecvPhotoOutcome {
    /// `<person>/<file>`, relative to `directory_path`.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The form of `POST .../detect`.
#[derive(ToSchema)]
pub(super) struct FacecvDetectForm {
    #[schema(format = Binary, value_type = String)]
    pub file: Vec<u8>,
    /// Faces the detector is less sure of are left out (default 0.5).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub min_confidence: Option<f32>,
    /// FaceCV's model choice; ignored (the appliance runs its configured models).
    pub model_name: Option<String>,
}

/// The form of `POST .../recognize`.
#[derive(ToSchema)]
pub(super) struct FacecvRecognizeForm {
    #[schema(format = Binary, value_type = String)]
    pub file: Vec<u8>,
    /// Similarity a match needs; absent: the gallery's calibrated threshold.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub threshold: Option<f32>,
    /// FaceCV's model choice; ignored.
    pub model_name: Option<String>,
}

/// The form of `POST .../verify` (the threshold is a query parameter, as in FaceCV).
#[derive(ToSchema)]
pub(super) struct FacecvVerifyForm {
    #[schema(format = Binary, value_type = String)]
    pub file1: Vec<u8>,
    #[schema(format = Binary, value_type = String)]
    pub file2: Vec<u8>,
}

/// The form of `POST .../register`.
#[derive(ToSchema)]
pub(super) struct FacecvRegisterForm {
    /// A photo with exactly one face (repeat the part to enrol several photos).
    #[schema(format = Binary, value_type = String)]
    pub file: Vec<u8>,
    #[schema(min_length = 1, max_length = 128, example = "Ada Lovelace")]
    pub name: String,
    pub department: Option<String>,
    pub employee_id: Option<String>,
}
