//! The gallery every camera matches against, loaded from the store and reloaded after each
//! enrolment or deletion. Embeddings of another model than the running embedder's are ignored:
//! they live in a different space and would match nobody, or worse, somebody.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use serde_json::{Map, Value};

use crate::store::{Result, Store};
use crate::vision::{Embedding, Gallery};

/// An enrolled person as the gallery knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub name: String,
    /// The enrolled photo this embedding came from (`faces.id`): a person has one entry per photo.
    pub face_id: String,
    pub metadata: Map<String, Value>,
}

#[derive(Clone)]
pub struct SharedGallery {
    inner: Arc<RwLock<Gallery<Person>>>,
    model: Arc<str>,
    /// Counts reloads: a camera whose tracks were judged against an older gallery looks at
    /// them again (someone enrolled while in view is named at once; someone deleted is not).
    generation: Arc<AtomicU64>,
}

impl SharedGallery {
    /// The gallery of embeddings made by `model`, matching at `threshold`.
    pub fn load(store: &Store, model: &str, threshold: f32) -> Result<SharedGallery> {
        let g = SharedGallery {
            inner: Arc::new(RwLock::new(Gallery::new(threshold))),
            model: model.into(),
            generation: Arc::new(AtomicU64::new(0)),
        };
        g.reload(store)?;
        Ok(g)
    }

    /// Reads the enrolled faces again; call after every change to them.
    pub fn reload(&self, store: &Store) -> Result<usize> {
        let stored = store.embeddings(&self.model)?;
        let threshold = self.read().threshold();
        let mut fresh = Gallery::new(threshold);
        for s in stored {
            let Some(e) = Embedding::from_raw(&s.embedding) else {
                tracing::warn!(face = %s.face.id, "skipping an enrolled face with an unusable embedding");
                continue;
            };
            let person = Person {
                face_id: s.face.id.clone(),
                name: s.face.name,
                metadata: s.face.metadata,
            };
            if let Err(err) = fresh.enrol(person, e) {
                tracing::warn!(face = %s.face.id, error = %err, "skipping an enrolled face");
            }
        }
        let n = fresh.len();
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(n)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Gallery<Person>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes with every reload.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The embedder whose embeddings this gallery holds.
    pub fn model(&self) -> &str {
        &self.model
    }
}
