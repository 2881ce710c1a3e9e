//! The gallery on flash: enrolled faces, in FaceCV's data model (`faces(id, name, embedding,
//! embedding_model, metadata, created_at, updated_at)`), one row per enrolled image.

use rusqlite::{params, Row};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{now_text, Durability, Result, Store, StoreError};

/// One enrolled image of a person, as the API lists it (the embedding is not shown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaceRecord {
    pub id: String,
    pub name: String,
    pub embedding_model: String,
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
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
    /// Enrols embeddings of one person in one transaction: all of them or none.
    pub fn add_faces(
        &self,
        name: &str,
        model: &str,
        embeddings: &[Vec<f32>],
        metadata: &Map<String, Value>,
    ) -> Result<Vec<FaceRecord>> {
        let meta = Value::Object(metadata.clone()).to_string();
        self.write(Durability::Events, |tx| {
            let now = now_text();
            let mut out = Vec::with_capacity(embeddings.len());
            for e in embeddings {
                let id = uuid::Uuid::new_v4().to_string();
                tx.execute(
                    "INSERT INTO faces (id, name, embedding, embedding_model, metadata, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                    params![id, name, to_blob(e), model, meta, now],
                )?;
                out.push(FaceRecord {
                    id,
                    name: name.to_owned(),
                    embedding_model: model.to_owned(),
                    metadata: metadata.clone(),
                    created_at: now.clone(),
                    updated_at: now.clone(),
                });
            }
            Ok(out)
        })
    }

    /// Enrolled faces, optionally of one name, oldest first.
    pub fn faces(&self, name: Option<&str>, limit: usize) -> Result<Vec<FaceRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM faces WHERE (?1 IS NULL OR name = ?1) ORDER BY rowid LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![name, limit as i64], record)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
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

    #[test]
    fn faces_are_enrolled_listed_counted_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let mut meta = Map::new();
        meta.insert("department".into(), "Engineering".into());
        let added = store
            .add_faces("Ana", "m1", &[vec![0.6, 0.8], vec![1.0, 0.0]], &meta)
            .unwrap();
        store
            .add_faces("Bo", "m1", &[vec![0.0, 1.0]], &Map::new())
            .unwrap();
        store
            .add_faces("Bo", "m2", &[vec![0.0, 1.0, 0.0]], &Map::new())
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
            .add_faces("Ana", "m1", &[vec![0.6, 0.8]], &meta)
            .unwrap();
        store
            .writer()
            .execute(
                "UPDATE faces SET metadata = '{\"employee_id\": ' WHERE name = 'Ana'",
                [],
            )
            .unwrap();
        store
            .add_faces("Bo", "m1", &[vec![0.0, 1.0]], &Map::new())
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
}
