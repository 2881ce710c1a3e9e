//! The gallery: who is enrolled, and who a face is.
//!
//! Matching is cosine top-1 over every enrolled embedding, with several embeddings per person
//! allowed (different lighting, glasses, years): a face is the person of its single most similar
//! enrolled photo, if that similarity reaches the threshold. A linear scan is right for the size
//! of an appliance's gallery: 1,000 FaceRes embeddings is a million multiply-adds, well under a
//! millisecond, and needs no index to keep in step with the store.

use super::embedder::Embedding;
use super::VisionError;

/// The best enrolled match for a face.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match<'a, K> {
    /// The enrolled person's key.
    pub id: &'a K,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

/// Enrolled embeddings keyed by the caller's person id `K`.
#[derive(Debug, Clone)]
pub struct Gallery<K> {
    entries: Vec<(K, Embedding)>,
    threshold: f32,
}

impl<K: PartialEq> Gallery<K> {
    /// An empty gallery that accepts matches at or above `threshold`.
    pub fn new(threshold: f32) -> Self {
        Gallery {
            entries: Vec::new(),
            threshold,
        }
    }

    /// The match threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The size of its embeddings; `None` while it is empty.
    pub fn dim(&self) -> Option<usize> {
        self.entries.first().map(|(_, e)| e.dim())
    }

    /// Add one embedding for `id`. All embeddings must come from the same embedder: one of another
    /// size is refused, since comparing it would silently match nobody.
    pub fn enrol(&mut self, id: K, embedding: Embedding) -> Result<(), VisionError> {
        if let Some((_, first)) = self.entries.first() {
            if first.dim() != embedding.dim() {
                return Err(VisionError::EmbeddingDim {
                    expected: first.dim(),
                    got: embedding.dim(),
                });
            }
        }
        self.entries.push((id, embedding));
        Ok(())
    }

    /// Remove every embedding of `id`; returns how many there were.
    pub fn remove(&mut self, id: &K) -> usize {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k != id);
        before - self.entries.len()
    }

    /// Number of enrolled embeddings (not people).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is enrolled.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most similar enrolled embedding, whatever its similarity.
    pub fn best(&self, face: &Embedding) -> Option<Match<'_, K>> {
        self.entries
            .iter()
            .map(|(id, e)| Match {
                id,
                similarity: e.cosine(face),
            })
            .max_by(|a, b| a.similarity.total_cmp(&b.similarity))
    }

    /// The most similar enrolled embedding, with the best similarity of anyone else (`same`
    /// tells whether two keys are one person; 0 when nobody else is enrolled): how far ahead of
    /// the next person a match is says how sure it is.
    pub fn best_with_rival(
        &self,
        face: &Embedding,
        same: impl Fn(&K, &K) -> bool,
    ) -> Option<(Match<'_, K>, f32)> {
        let mut best: Option<Match<'_, K>> = None;
        let mut rival = 0f32;
        for (id, e) in &self.entries {
            let similarity = e.cosine(face);
            match &best {
                Some(b) if similarity <= b.similarity => {
                    if !same(id, b.id) {
                        rival = rival.max(similarity);
                    }
                }
                Some(b) => {
                    if !same(id, b.id) {
                        rival = rival.max(b.similarity);
                    }
                    best = Some(Match { id, similarity });
                }
                None => best = Some(Match { id, similarity }),
            }
        }
        best.map(|b| (b, rival))
    }

    /// Who `face` is: the best match if it reaches the threshold, else `None` (a stranger).
    pub fn identify(&self, face: &Embedding) -> Option<Match<'_, K>> {
        self.best(face).filter(|m| m.similarity >= self.threshold)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &[f32]) -> Embedding {
        Embedding::from_raw(v).unwrap()
    }

    #[test]
    fn the_closest_enrolled_photo_wins_if_close_enough() {
        let mut g = Gallery::new(0.9);
        g.enrol("ann", e(&[1.0, 0.0, 0.0])).unwrap();
        g.enrol("ann", e(&[0.9, 0.1, 0.0])).unwrap();
        g.enrol("bob", e(&[0.0, 1.0, 0.0])).unwrap();
        assert_eq!(g.identify(&e(&[0.05, 1.0, 0.0])).unwrap().id, &"bob");
        assert!(g.identify(&e(&[0.0, 0.0, 1.0])).is_none(), "a stranger");
        assert_eq!(
            g.best(&e(&[0.0, 0.0, 1.0])).map(|m| m.similarity),
            Some(0.0)
        );
        let (m, rival) = g
            .best_with_rival(&e(&[1.0, 0.05, 0.0]), |a, b| a == b)
            .unwrap();
        assert_eq!(*m.id, "ann");
        assert!(
            rival > 0.0 && rival < 0.1,
            "bob's, not ann's other photo: {rival}"
        );
        assert_eq!(g.remove(&"ann"), 2);
        assert!(g.enrol("cy", e(&[1.0, 0.0])).is_err(), "other embedder");
    }
}
