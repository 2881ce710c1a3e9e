//! The gallery on flash: enrolled faces, in FaceCV's data model (`faces(id, name, embedding,
//! embedding_model, metadata, created_at, updated_at)`), one row per enrolled image, and beside
//! each the pictures it was enrolled from (`face_images`, see migration v5 for why in the
//! database): written in the face's transaction, removed with it by a trigger.
//!
//! The pictures are bounded twice: each is small (a 112-pixel crop and a photo of at most 1024
//! pixels a side, made by `enrol::shot`), and together they may take at most
//! [`IMAGE_QUOTA_SHARE`] of `storage.quota_mb`, so enrolling never crowds the events out of the
//! store; past it enrolment is refused with [`StoreError::ImagesFull`] until photos are deleted.

use rusqlite::{params, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{now_text, Durability, Result, Store, StoreError};

/// One enrolled image of a person, as the API lists it (the embedding is not shown).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FaceRecord {
    #[schema(example = "4f0c2f9e-8a51-4a8e-9a33-0d6c1f1f7b21")]
    pub id: String,
    pub name: String,
    pub embedding_model: String,
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
    /// Whether its pictures are kept (faces enrolled before v5 have none). Not one of FaceCV's
    /// fields: our own listing adds it, FaceCV's paths keep FaceCV's shape.
    #[serde(skip)]
    #[schema(ignore)]
    pub has_image: bool,
}

/// The share of `storage.quota_mb` the gallery's pictures may take together (one quarter).
pub const IMAGE_QUOTA_SHARE: u64 = 4;

/// The pictures kept with an enrolled face, both JPEG.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceImages {
    /// The aligned face, as the embedder saw it: what the console shows as the thumbnail.
    pub crop: Vec<u8>,
    /// The photo or frame it came from (long side at most 1024 px), so that embeddings can be
    /// made again when the model changes.
    pub photo: Vec<u8>,
}

impl FaceImages {
    fn bytes(&self) -> u64 {
        (self.crop.len() + self.photo.len()) as u64
    }
}

/// A face to enrol: its embedding and the pictures it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFace {
    pub embedding: Vec<f32>,
    /// `None` only where no picture exists (tests, a gallery imported as embeddings).
    pub images: Option<FaceImages>,
}

impl NewFace {
    /// A face with no pictures.
    pub fn bare(embedding: Vec<f32>) -> NewFace {
        NewFace {
            embedding,
            images: None,
        }
    }
}

/// Which of a face's pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FacePicture {
    Crop,
    Photo,
}

/// An enrolled embedding, for the gallery in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEmbedding {
    pub face: FaceRecord,
    pub embedding: Vec<f32>,
}

fn record(r: &Row<'_>) -> rusqlite::Result<FaceRecord> {
    Ok(FaceRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        embedding_model: r.get(2)?,
        metadata: super::json_column(r, 3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        has_image: false,
    })
}

const COLUMNS: &str = "id, name, embedding_model, metadata, created_at, updated_at";

fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

impl Store {
    /// Enrols faces of one person in one transaction, pictures included: all of them or none.
    pub fn add_faces(
        &self,
        name: &str,
        model: &str,
        faces: &[NewFace],
        metadata: &Map<String, Value>,
    ) -> Result<Vec<FaceRecord>> {
        let meta = Value::Object(metadata.clone()).to_string();
        let adding: u64 = faces
            .iter()
            .filter_map(|f| f.images.as_ref())
            .map(FaceImages::bytes)
            .sum();
        let limit = self.inner.quota_bytes / IMAGE_QUOTA_SHARE;
        self.write(Durability::Events, |tx| {
            if adding > 0 {
                let used: i64 = tx.query_row(
                    "SELECT COALESCE(SUM(bytes), 0) FROM face_images",
                    [],
                    |r| r.get(0),
                )?;
                if used as u64 + adding > limit {
                    return Err(StoreError::ImagesFull {
                        used: used as u64,
                        adding,
                        limit,
                    });
                }
            }
            let now = now_text();
            let mut out = Vec::with_capacity(faces.len());
            for f in faces {
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO faces (id, name, embedding, embedding_model, metadata, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![id, name, to_blob(&f.embedding), model, meta, now],
                )?;
                if let Some(img) = &f.images {
                    tx.execute(
                        "INSERT INTO face_images (face_id, crop, photo, bytes) VALUES (?1, ?2, ?3, ?4)",
                        params![id, img.crop, img.photo, img.bytes() as i64],
                    )?;
                }
                out.push(FaceRecord {
                    id,
                    name: name.to_owned(),
                    embedding_model: model.to_owned(),
                    metadata: metadata.clone(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                    has_image: f.images.is_some(),
                });
            }
            Ok(out)
        })
    }

    /// Enrolled faces, optionally of one name, oldest first.
    pub fn faces(&self, name: Option<&str>, limit: usize) -> Result<Vec<FaceRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT f.id, f.name, f.embedding_model, f.metadata, f.created_at, f.updated_at,
                        i.face_id IS NOT NULL
                 FROM faces f LEFT JOIN face_images i ON i.face_id = f.id
                 WHERE (?1 IS NULL OR f.name = ?1) ORDER BY f.rowid LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![name, limit as i64], |r| {
                Ok(FaceRecord {
                    has_image: r.get(6)?,
                    ..record(r)?
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// One picture of a face: `NotFound` for no such face, `None` for a face enrolled before
    /// pictures were kept.
    pub fn face_picture(&self, id: &str, which: FacePicture) -> Result<Option<Vec<u8>>> {
        let column = match which {
            FacePicture::Crop => "crop",
            FacePicture::Photo => "photo",
        };
        self.read(|c| {
            let found: Option<Option<Vec<u8>>> = c
                .query_row(
                    &format!(
                        "SELECT i.{column} FROM faces f LEFT JOIN face_images i ON i.face_id = f.id
                         WHERE f.id = ?1"
                    ),
                    [id],
                    |r| r.get(0),
                )
                .optional()?;
            found.ok_or_else(|| StoreError::NotFound(format!("face {id}")))
        })
    }

    /// Gives every face of `from` the name `to`; returns how many. `NotFound` when nobody is
    /// called `from`, `Conflict` when somebody is already called `to`: two people are never
    /// merged by a rename. Recorded events keep the name they were recorded with.
    pub fn rename_person(&self, from: &str, to: &str) -> Result<usize> {
        self.write(Durability::Events, |tx| {
            if from != to {
                let taken: bool = tx.query_row(
                    "SELECT EXISTS (SELECT 1 FROM faces WHERE name = ?1)",
                    [to],
                    |r| r.get(0),
                )?;
                if taken {
                    return Err(StoreError::Conflict(format!("person {to:?}")));
                }
            }
            let n = tx.execute(
                "UPDATE faces SET name = ?2, updated_at = ?3 WHERE name = ?1",
                params![from, to, now_text()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("person {from:?}")));
            }
            Ok(n)
        })
    }

    pub fn face_count(&self) -> Result<(u64, u64)> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*), COUNT(DISTINCT name) FROM faces",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?)
        })
    }

    pub fn delete_face(&self, id: &str) -> Result<()> {
        self.write(Durability::Events, |tx| {
            match tx.execute("DELETE FROM faces WHERE id = ?1", [id])? {
                0 => Err(StoreError::NotFound(format!("face {id}"))),
                _ => Ok(()),
            }
        })
    }

    /// Deletes every face of a person; returns how many.
    pub fn delete_faces_by_name(&self, name: &str) -> Result<usize> {
        self.write(Durability::Events, |tx| {
            match tx.execute("DELETE FROM faces WHERE name = ?1", [name])? {
                0 => Err(StoreError::NotFound(format!("person {name:?}"))),
                n => Ok(n),
            }
        })
    }

    /// Every embedding made by `model`, for the gallery in memory.
    pub fn embeddings(&self, model: &str) -> Result<Vec<StoredEmbedding>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS}, embedding FROM faces WHERE embedding_model = ?1 ORDER BY rowid"
            ))?;
            // A damaged row costs its one enrolment, not the gallery: it is reported and left
            // out, and the people around it are still recognised.
            let rows = stmt.query_map([model], |r| {
                let id: String = r.get(0)?;
                let blob: Vec<u8> = r.get(6)?;
                Ok(record(r)
                    .map(|face| StoredEmbedding {
                        face,
                        embedding: from_blob(&blob),
                    })
                    .map_err(|e| (id, e)))
            })?;
            let mut out = Vec::new();
            for row in rows {
                match row? {
                    Ok(e) => out.push(e),
                    Err((id, e)) => {
                        tracing::error!(face = %id, error = %e, "an enrolled face cannot be read; it is left out of the gallery")
                    }
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn bare(embeddings: &[Vec<f32>]) -> Vec<NewFace> {
        embeddings.iter().cloned().map(NewFace::bare).collect()
    }

    #[test]
    fn faces_are_enrolled_listed_counted_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let mut meta = Map::new();
        meta.insert("department".into(), "Engineering".into());
        let added = store
            .add_faces("Ana", "m1", &bare(&[vec![0.6, 0.8], vec![1.0, 0.0]]), &meta)
            .unwrap();
        store
            .add_faces("Bo", "m1", &bare(&[vec![0.0, 1.0]]), &Map::new())
            .unwrap();
        store
            .add_faces("Bo", "m2", &bare(&[vec![0.0, 1.0, 0.0]]), &Map::new())
            .unwrap();
        assert_eq!(store.face_count().unwrap(), (4, 2));
        assert_eq!(store.faces(Some("Ana"), 10).unwrap().len(), 2);
        let m1 = store.embeddings("m1").unwrap();
        assert_eq!(m1.len(), 3);
        assert_eq!(m1[0].embedding, vec![0.6, 0.8]);
        assert_eq!(m1[0].face.metadata["department"], "Engineering");
        store.delete_face(&added[0].id).unwrap();
        assert!(matches!(
            store.delete_face(&added[0].id),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.delete_faces_by_name("Bo").unwrap(), 2);
        assert_eq!(store.face_count().unwrap(), (1, 1));
    }

    #[test]
    fn damaged_metadata_is_an_error_naming_the_column_not_an_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let mut meta = Map::new();
        meta.insert("employee_id".into(), "E-7".into());
        store
            .add_faces("Ana", "m1", &bare(&[vec![0.6, 0.8]]), &meta)
            .unwrap();
        store
            .writer()
            .execute(
                "UPDATE faces SET metadata = '{\"employee_id\": ' WHERE name = 'Ana'",
                [],
            )
            .unwrap();
        store
            .add_faces("Bo", "m1", &bare(&[vec![0.0, 1.0]]), &Map::new())
            .unwrap();
        let err = store.faces(Some("Ana"), 10).unwrap_err();
        assert!(err.to_string().contains("index: 3"), "{err}");
        let gallery = store.embeddings("m1").unwrap();
        let names: Vec<&str> = gallery.iter().map(|e| e.face.name.as_str()).collect();
        assert_eq!(
            names,
            ["Bo"],
            "the damaged row is left out, the others load"
        );
    }

    fn pictures(n: usize) -> FaceImages {
        FaceImages {
            crop: vec![1; n],
            photo: vec![2; n],
        }
    }

    #[test]
    fn pictures_are_kept_with_their_face_and_go_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let with = NewFace {
            embedding: vec![0.6, 0.8],
            images: Some(pictures(10)),
        };
        let added = store
            .add_faces(
                "Ana",
                "m1",
                &[with, NewFace::bare(vec![1.0, 0.0])],
                &Map::new(),
            )
            .unwrap();
        let listed = store.faces(Some("Ana"), 10).unwrap();
        assert_eq!(
            listed.iter().map(|f| f.has_image).collect::<Vec<_>>(),
            [true, false]
        );
        let crop = store.face_picture(&added[0].id, FacePicture::Crop).unwrap();
        assert_eq!(crop, Some(vec![1; 10]));
        let photo = store
            .face_picture(&added[0].id, FacePicture::Photo)
            .unwrap();
        assert_eq!(photo, Some(vec![2; 10]));
        assert_eq!(
            store.face_picture(&added[1].id, FacePicture::Crop).unwrap(),
            None
        );
        assert!(matches!(
            store.face_picture("nobody", FacePicture::Crop),
            Err(StoreError::NotFound(_))
        ));
        store.delete_face(&added[0].id).unwrap();
        let left: i64 = store
            .writer()
            .query_row("SELECT COUNT(*) FROM face_images", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "the pictures went with their face");
    }

    #[test]
    fn pictures_past_their_share_of_the_quota_are_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::store::StorageConfig {
            dir: dir.path().to_owned(),
            quota_mb: 8,
            ..Default::default()
        };
        let store = Store::open(&config, Default::default()).unwrap();
        let limit = store.inner.quota_bytes / IMAGE_QUOTA_SHARE;
        let big = |n| NewFace {
            embedding: vec![0.6, 0.8],
            images: Some(pictures(n)),
        };
        let half = (limit / 2 - 10) as usize / 2;
        store
            .add_faces("Ana", "m1", &[big(half)], &Map::new())
            .unwrap();
        let err = store
            .add_faces("Bo", "m1", &[big(half), big(half)], &Map::new())
            .unwrap_err();
        assert!(matches!(err, StoreError::ImagesFull { .. }), "{err}");
        assert_eq!(
            store.face_count().unwrap(),
            (1, 1),
            "nothing of Bo was kept"
        );
    }

    #[test]
    fn a_rename_moves_every_face_and_never_merges_two_people() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        store
            .add_faces("Ana", "m1", &bare(&[vec![1.0], vec![1.0]]), &Map::new())
            .unwrap();
        store
            .add_faces("Bo", "m1", &bare(&[vec![1.0]]), &Map::new())
            .unwrap();
        assert!(matches!(
            store.rename_person("Ana", "Bo"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.rename_person("Cy", "Di"),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(store.rename_person("Ana", "Ana Lima").unwrap(), 2);
        assert_eq!(store.faces(Some("Ana Lima"), 10).unwrap().len(), 2);
        assert!(store.faces(Some("Ana"), 10).unwrap().is_empty());
    }
}
