//! Face embeddings: an aligned crop in, an L2-normalised vector out.
//!
//! Two networks are supported (see `models/README.md`): MobileFaceNet (112x112 float input
//! `(x - 127.5) / 128`, 192-d) and HSE FaceRes (224x224 raw uint8 input, 1024-d int8 output that
//! is dequantized here). Normalising makes cosine similarity a dot product, which is all the
//! gallery needs, and makes the int8 output's scale irrelevant (its zero point still matters).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::align::Aligner;
use super::config::{EmbedderKind, VisionConfig};
use super::detector::Detection;
use super::model::{self, DType, ModelFile};
use super::runtime::{Runtime, Session};
use super::VisionError;

/// Largest embedding we hold (FaceRes's 1024).
pub const MAX_EMBEDDING_DIM: usize = 1024;

/// An L2-normalised face embedding. Stored inline (no heap), so a frame's faces cost no
/// allocation; serialises as a plain list of floats.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(heapless::Vec<f32, MAX_EMBEDDING_DIM>);

impl Embedding {
    /// Normalise `values` into an embedding. `None` for an empty, oversized, non-finite or
    /// all-zero vector, none of which can be compared with anything.
    pub fn from_raw(values: &[f32]) -> Option<Embedding> {
        let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if values.is_empty() || !norm.is_finite() || norm <= f32::EPSILON {
            return None;
        }
        let mut v = heapless::Vec::new();
        for x in values {
            v.push(x / norm).ok()?;
        }
        Some(Embedding(v))
    }

    /// Number of dimensions.
    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// The normalised values.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity in [-1, 1] (a dot product: both are unit vectors). 0 if the sizes differ.
    pub fn cosine(&self, other: &Embedding) -> f32 {
        if self.dim() != other.dim() {
            return 0.0;
        }
        self.0.iter().zip(other.0.iter()).map(|(a, b)| a * b).sum()
    }

    /// Little-endian f32 bytes, for a database blob.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Inverse of [`Embedding::to_le_bytes`] (renormalises).
    pub fn from_le_bytes(bytes: &[u8]) -> Option<Embedding> {
        if !bytes.len().is_multiple_of(4) || bytes.len() / 4 > MAX_EMBEDDING_DIM {
            return None;
        }
        let mut v = [0.0f32; MAX_EMBEDDING_DIM];
        for (dst, b) in v.iter_mut().zip(bytes.chunks_exact(4)) {
            *dst = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        Embedding::from_raw(&v[..bytes.len() / 4])
    }
}

impl Serialize for Embedding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<f32>::deserialize(d)?;
        Embedding::from_raw(&v).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "an embedding needs 1..={MAX_EMBEDDING_DIM} finite values, not all zero"
            ))
        })
    }
}

/// The embedding network with its aligner and reusable buffers.
#[derive(Debug)]
pub struct Embedder {
    session: Session,
    aligner: Aligner,
    dim: usize,
    output_dtype: DType,
    quant: (f32, i64),
    values: Vec<f32>,
}

impl Embedder {
    /// Load, check and compile the embedder `config` names.
    pub fn new(runtime: &'static Runtime, config: &VisionConfig) -> Result<Self, VisionError> {
        let kind = config.embedder.kind;
        let (file, (dim, output_dtype, quant)) = load_checked(config)?;
        let path = config.embedder_model();
        let rejected = model::rejected_by_runtime("vision.embedder.model", &path);
        let mut session = runtime.session(&file, &config.runtime).map_err(&rejected)?;
        // Once on the blank input: a model the runtime cannot prepare fails here, named.
        session.run().map_err(&rejected)?;
        Ok(Embedder {
            session,
            aligner: Aligner::new(kind, config.embedder.align),
            dim,
            output_dtype,
            quant,
            values: vec![0.0; dim],
        })
    }

    /// Size of the embeddings it makes.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Warp the face into the network's input tensor (the "align" stage).
    pub fn align(&mut self, rgb: &[u8], width: u32, height: u32, det: &Detection) {
        let crop = self.aligner.align(rgb, width, height, det);
        let input = self.session.input_mut();
        match input.len() / crop.len() {
            // Float input: MobileFaceNet's (x - 127.5) / 128.
            4 => {
                for (dst, &px) in input.chunks_exact_mut(4).zip(crop) {
                    dst.copy_from_slice(&((f32::from(px) - 127.5) / 128.0).to_ne_bytes());
                }
            }
            // uint8 input: raw RGB.
            _ => input.copy_from_slice(crop),
        }
    }

    /// The face as the network last saw it: the aligned RGB8 crop and its side.
    pub fn last_crop(&self) -> (&[u8], u32) {
        self.aligner.last_crop()
    }

    /// Time the last [`Embedder::embed_aligned`] spent in the runtime's invoke call alone.
    pub fn last_invoke(&self) -> std::time::Duration {
        self.session.last_invoke()
    }

    /// Run the network on the aligned input (the "embed" stage).
    pub fn embed_aligned(&mut self) -> Result<Embedding, VisionError> {
        self.session.run()?;
        let out = self.session.output(0);
        let (scale, zero) = self.quant;
        match self.output_dtype {
            DType::F32 => {
                for (v, b) in self.values.iter_mut().zip(out.chunks_exact(4)) {
                    *v = f32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            DType::I8 => {
                for (v, &b) in self.values.iter_mut().zip(out) {
                    *v = (f32::from(b as i8) - zero as f32) * scale;
                }
            }
            _ => {
                for (v, &b) in self.values.iter_mut().zip(out) {
                    *v = (f32::from(b) - zero as f32) * scale;
                }
            }
        }
        Embedding::from_raw(&self.values).ok_or(VisionError::Runtime {
            context: "embedder output",
            message: "the network returned an all-zero or non-finite embedding".into(),
        })
    }
}

/// What [`check_shapes`] reads off an embedder: its dimension, output type and quantization.
type OutputShape = (usize, DType, (f32, i64));

/// Reads the embedder model `config` names and checks it fits its kind, without compiling it.
fn load_checked(config: &VisionConfig) -> Result<(ModelFile, OutputShape), VisionError> {
    let path = config.embedder_model();
    let file = model::load(&path, "vision.embedder.model")?;
    let shapes = check_shapes(&file, config.embedder.kind, &path)?;
    Ok((file, shapes))
}

/// The checks of [`Embedder::new`] that need no runtime (`vision::check`).
pub(crate) fn check_model(config: &VisionConfig) -> Result<(), VisionError> {
    load_checked(config).map(|_| ())
}

/// An embedder takes one `[1, S, S, 3]` image (S from the kind; float or uint8) and returns one
/// `[1, D]` vector (float, or int8/uint8 with quantization parameters).
fn check_shapes(
    file: &ModelFile,
    kind: EmbedderKind,
    path: &std::path::Path,
) -> Result<OutputShape, VisionError> {
    let info = &file.info;
    let s = kind.input_size();
    let input_ok = info.inputs.len() == 1
        && info.inputs[0].shape == [1, s, s, 3]
        && matches!(info.inputs[0].dtype, DType::F32 | DType::U8);
    let output = (info.outputs.len() == 1).then(|| &info.outputs[0]);
    let out_ok = output.and_then(|o| match (o.shape.as_slice(), o.dtype, o.quant) {
        ([1, d], DType::F32, _) if (1..=MAX_EMBEDDING_DIM).contains(d) => {
            Some((*d, o.dtype, (1.0, 0)))
        }
        ([1, d], DType::I8 | DType::U8, Some(q)) if (1..=MAX_EMBEDDING_DIM).contains(d) => {
            Some((*d, o.dtype, q))
        }
        _ => None,
    });
    match (input_ok, out_ok) {
        (true, Some(found)) => Ok(found),
        _ => Err(VisionError::ModelShape {
            key: "vision.embedder.model".into(),
            path: path.to_path_buf(),
            expected: format!(
                "a {kind:?} face embedder (input [1, {s}, {s}, 3] F32 or U8 -> one output [1, D], \
                 D <= {MAX_EMBEDDING_DIM})"
            ),
            found: info.describe(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_unit_vectors_and_round_trip() {
        let e = Embedding::from_raw(&[3.0, 4.0]).unwrap();
        assert_eq!(e.as_slice(), &[0.6, 0.8]);
        assert!((e.cosine(&e) - 1.0).abs() < 1e-6);
        assert_eq!(Embedding::from_le_bytes(&e.to_le_bytes()).unwrap(), e);
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Embedding>(&json).unwrap(), e);
        assert!(Embedding::from_raw(&[0.0, 0.0]).is_none());
        assert!(Embedding::from_raw(&vec![1.0; MAX_EMBEDDING_DIM + 1]).is_none());
    }
}
