//! A folder of people, `<dir>/<name>/*.jpg`: each person is enrolled from all their photos or, if
//! any photo is not one clear face, not at all, with the reason for every file.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Map;

use super::shot::{self, Shot};
use crate::confine::{ConfineError, Root};
use crate::store::{Store, StoreError};
use crate::vision::quality::Rejection;
use crate::vision::{FaceEngine, VisionError};

#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} has no folders: lay it out as <dir>/<name>/*.jpg")]
    NoPeople(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine itself failed (not a photo's fault): nothing more can be enrolled.
    #[error(transparent)]
    Vision(VisionError),
}

/// What happened to one photo.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FileReport {
    pub file: String,
    /// `ok`, or why the photo cannot be used: `not_an_image`, `unsupported_image_format`,
    /// `image_too_large`, `no_face`, `multiple_faces`, `face_too_small`, `unreadable`,
    /// `outside_enrol_dir`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What happened to one person's folder.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PersonReport {
    pub name: String,
    pub enrolled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub face_ids: Vec<String>,
    pub files: Vec<FileReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FolderReport {
    pub people: Vec<PersonReport>,
}

impl FolderReport {
    pub fn enrolled(&self) -> impl Iterator<Item = &PersonReport> {
        self.people.iter().filter(|p| p.enrolled)
    }
    pub fn skipped(&self) -> impl Iterator<Item = &PersonReport> {
        self.people.iter().filter(|p| !p.enrolled)
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, FolderError> {
    let err = |source| FolderError::Read {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        paths.push(entry.map_err(err)?.path());
    }
    paths.sort();
    Ok(paths)
}

fn is_photo(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
}

/// Enrols every person folder of `dir` (the folder name is the person's name, `_` read as a
/// space). With `confine`, a photo whose real path (symlinks followed) is outside that folder is
/// refused, so that a link cannot make the appliance read a file it was not meant to.
pub fn enrol_folder(
    engine: &mut FaceEngine,
    store: &Store,
    model: &str,
    dir: &Path,
    confine: Option<&Root>,
) -> Result<FolderReport, FolderError> {
    let people: Vec<PathBuf> = read_dir(dir)?.into_iter().filter(|p| p.is_dir()).collect();
    if people.is_empty() {
        return Err(FolderError::NoPeople(dir.to_owned()));
    }
    let mut report = FolderReport { people: Vec::new() };
    for person in people {
        let name = person
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .replace('_', " ");
        let (shots, files) = embed_person(engine, &person, confine)?;
        let bad = files.iter().filter(|f| f.status != "ok").count();
        let reason = if files.is_empty() {
            Some("no .jpg, .jpeg or .png photos".to_owned())
        } else if bad > 0 {
            Some(format!("{bad} of {} photo(s) cannot be used", files.len()))
        } else {
            None
        };
        let face_ids = match reason {
            Some(_) => Vec::new(),
            None => shot::enrol(store, &name, model, &shots, &Map::new())?
                .into_iter()
                .map(|f| f.id)
                .collect(),
        };
        report.people.push(PersonReport {
            name,
            enrolled: reason.is_none(),
            reason,
            face_ids,
            files,
        });
    }
    Ok(report)
}

/// Embeds every photo of one person, reporting each; stops only if the engine itself fails.
fn embed_person(
    engine: &mut FaceEngine,
    dir: &Path,
    confine: Option<&Root>,
) -> Result<(Vec<Shot>, Vec<FileReport>), FolderError> {
    let mut shots = Vec::new();
    let mut files = Vec::new();
    for path in read_dir(dir)?.into_iter().filter(|p| is_photo(p)) {
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let (status, reason) = match photo_embedding(engine, &path, confine) {
            Ok(s) => {
                shots.push(s);
                ("ok", None)
            }
            Err(Refusal::Photo(status, reason)) => (status, Some(reason)),
            Err(Refusal::Engine(e)) => return Err(FolderError::Vision(e)),
        };
        files.push(FileReport {
            file,
            status,
            reason,
        });
    }
    Ok((shots, files))
}

enum Refusal {
    Photo(&'static str, String),
    Engine(VisionError),
}

fn photo_embedding(
    engine: &mut FaceEngine,
    path: &Path,
    confine: Option<&Root>,
) -> Result<Shot, Refusal> {
    let unreadable = |e: std::io::Error| Refusal::Photo("unreadable", e.to_string());
    if let Some(root) = confine {
        if let Err(e) = root.resolve(path) {
            let (status, reason) = match e {
                ConfineError::Outside => {
                    ("outside_enrol_dir", "links outside the enrolment folder")
                }
                ConfineError::Missing => ("unreadable", "a link to nothing"),
            };
            return Err(Refusal::Photo(status, reason.into()));
        }
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    match shot::from_image(engine, &bytes) {
        Ok(s) => Ok(s),
        Err(e) => Err(match photo_code(&e) {
            Some(code) => Refusal::Photo(code, e.to_string()),
            None => Refusal::Engine(e),
        }),
    }
}

/// The code of a refusal that is the photo's fault; `None` for the engine's own failures.
pub fn photo_code(e: &VisionError) -> Option<&'static str> {
    Some(match e {
        VisionError::NoFace => "no_face",
        VisionError::MultipleFaces { .. } => "multiple_faces",
        VisionError::FaceTooSmall { .. } => "face_too_small",
        VisionError::PoorFace(Rejection::Turned { .. }) => "face_turned",
        VisionError::PoorFace(Rejection::Blurred { .. }) => "face_blurred",
        VisionError::PoorFace(Rejection::TooSmall { .. }) => "face_too_small",
        VisionError::ImageDecode(_) => "not_an_image",
        VisionError::ImageFormat(_) => "unsupported_image_format",
        VisionError::ImageTooLarge { .. } => "image_too_large",
        _ => return None,
    })
}
