//! Model files: read, checksum, and check their tensors before the runtime ever sees them.
//!
//! A `.tflite` file that is truncated, swapped for another model, or from a different conversion
//! would otherwise fail deep inside the runtime (or, worse, run and produce garbage embeddings that
//! match nobody). So every model goes through [`load`]: the files we ship are known by name and
//! sha256; every file, known or not, is parsed here with bounds-checked reads of the TFLite
//! flatbuffer (schema `tflite/schema.fbs`), and its input and output tensors are compared with what
//! the caller's role needs. The quantization parameters read here are also how an int8 output is
//! dequantized: LiteRT's CompiledModel API does not report them.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::VisionError;

/// A `.tflite` file this project ships, pinned by sha256 (see `models/README.md`).
#[derive(Debug, Clone, Copy)]
pub struct KnownModel {
    pub file_name: &'static str,
    pub sha256: &'static str,
}

/// The models in `models/`. A file with one of these names must have this digest (unless its
/// folder's `SHA256SUMS` names another, see [`SUMS_FILE`]): a mismatch means a damaged copy or a
/// file put in the wrong place, and is refused.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        file_name: "blazeface_full_int8.tflite",
        sha256: "8ff50ce098b04be7a56489adff951d904d204045f77582072ce0128091b9780a",
    },
    KnownModel {
        file_name: "mobilefacenet_expo_int8.tflite",
        sha256: "b689b7ac59325f467b7b84f8e582289d020daa8cd12f2f29bfae803e5f57b158",
    },
    KnownModel {
        file_name: "mobilefacenet_expo_f32.tflite",
        sha256: "f1d6adfa8f0d83920aec6d4c1711855643332f1ea0a5042cc3fab7ffda8aa6db",
    },
    KnownModel {
        file_name: "faceres_hse_int8_iou8.tflite",
        sha256: "583bf5032bf8d63727fa873b21c8d0dff679159df472c6a0e4a40cb2348debad",
    },
];

/// A models folder may carry this file, in `sha256sum`'s format, as `scripts/make-models.sh`
/// writes it. A rebuild is equivalent to the shipped files but never byte-identical (int8
/// calibration depends on the TensorFlow build), so without this a rebuilt
/// `blazeface_full_int8.tflite` would be refused as damaged; with it, the rebuilt files are pinned
/// just as firmly, by the digests written when they were made. A file it lists must have that
/// digest; a file it does not list falls back to [`KNOWN_MODELS`].
pub const SUMS_FILE: &str = "SHA256SUMS";

/// Element type of a tensor, as the TFLite schema numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    U8,
    I8,
    Other(u8),
}

impl DType {
    fn from_schema(code: u8) -> Self {
        match code {
            0 => DType::F32,
            3 => DType::U8,
            9 => DType::I8,
            other => DType::Other(other),
        }
    }

    /// Bytes per element, for sizing host buffers.
    pub fn width(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::U8 | DType::I8 => 1,
            DType::Other(_) => 0,
        }
    }
}

/// One input or output tensor of a model's main subgraph.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// `(scale, zero_point)` of a quantized tensor (per-tensor; the first entry if per-axis).
    pub quant: Option<(f32, i64)>,
}

impl TensorInfo {
    /// Size of the tensor's data in bytes.
    pub fn byte_size(&self) -> usize {
        self.shape.iter().product::<usize>() * self.dtype.width()
    }
}

impl std::fmt::Display for TensorInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?}", self.shape, self.dtype)
    }
}

/// What a model file says about itself: the tensors of subgraph 0.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

impl ModelInfo {
    /// One line for error messages: `inputs [..] -> outputs [..], [..]`.
    pub fn describe(&self) -> String {
        let list = |t: &[TensorInfo]| {
            t.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "input {} -> output {}",
            list(&self.inputs),
            list(&self.outputs)
        )
    }
}

/// A model file read, checked and parsed: the bytes are what the runtime gets.
#[derive(Debug)]
pub struct ModelFile {
    pub bytes: Vec<u8>,
    pub info: ModelInfo,
}

/// For a relative model path that is not there, where it was read from and where the default
/// `vision.models_dir` is searched: the usual cause is a command run outside the checkout or the
/// install, and the fix is to run it elsewhere or to set `vision.models_dir`.
fn looked_in(path: &Path, cause: &std::io::Error) -> String {
    if !path.is_relative() || cause.kind() != std::io::ErrorKind::NotFound {
        return String::new();
    }
    let cwd = std::env::current_dir().map_or_else(|_| "?".into(), |d| d.display().to_string());
    let dirs: Vec<String> = super::config::models_dir_candidates()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    format!(
        " (relative to the working directory {cwd}; without vision.models_dir the models are \
         looked for in {}; set vision.models_dir to the folder that holds them)",
        dirs.join(", ")
    )
}

/// Read `path`, verify its digest if it is one of [`KNOWN_MODELS`], and parse its tensors.
/// `key` is the config key that named the file, so that every error points at what to fix.
pub fn load(path: &Path, key: &str) -> Result<ModelFile, VisionError> {
    let bytes = std::fs::read(path).map_err(|cause| VisionError::ModelRead {
        key: key.to_string(),
        path: path.to_path_buf(),
        looked_in: looked_in(path, &cause),
        cause,
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));
    if let Some((expected, pinned_by)) = pinned_digest(path)? {
        if expected != sha256 {
            return Err(VisionError::ModelChecksum {
                path: path.to_path_buf(),
                expected,
                actual: sha256,
                len: bytes.len(),
                pinned_by,
            });
        }
    }
    let info = parse(&bytes).map_err(|reason| VisionError::ModelCorrupt {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(ModelFile { bytes, info })
}

/// Names the model in a runtime failure while it is compiled or first run (LiteRT prepares a
/// model at its first run, so a damaged file that parsed may fail only then). Errors of the
/// settings (accelerator, delegate) pass unchanged: the file is not their cause.
pub fn rejected_by_runtime<'a>(
    key: &'a str,
    path: &'a Path,
) -> impl Fn(VisionError) -> VisionError + 'a {
    move |e| match e {
        VisionError::Runtime { context, message } => VisionError::ModelRejected {
            key: key.to_string(),
            path: path.to_path_buf(),
            reason: format!("{context}: {message}"),
        },
        other => other,
    }
}

/// The digest `path` must have and who says so: its folder's [`SUMS_FILE`] if that lists it,
/// else the shipped table if the name is one of ours, else none (any file may be tried; its
/// tensors are still checked).
fn pinned_digest(path: &Path) -> Result<Option<(String, String)>, VisionError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let sums = path.with_file_name(SUMS_FILE);
    if sums.is_file() {
        let text = std::fs::read_to_string(&sums).map_err(|e| VisionError::ModelSums {
            path: sums.clone(),
            reason: e.to_string(),
        })?;
        let listed = parse_sums(&text).map_err(|reason| VisionError::ModelSums {
            path: sums.clone(),
            reason,
        })?;
        if let Some((digest, _)) = listed.into_iter().find(|(_, file)| file == name) {
            return Ok(Some((digest, sums.display().to_string())));
        }
    }
    Ok(KNOWN_MODELS
        .iter()
        .find(|k| k.file_name == name)
        .map(|k| (k.sha256.to_string(), "models/README.md's table".to_string())))
}

/// `(digest, file name)` per line of a `sha256sum` output; blank lines are skipped.
fn parse_sums(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = || format!("line {} is not `<sha256>  <file>`: {line:?}", n + 1);
        let (digest, file) = line.split_once(' ').ok_or_else(bad)?;
        // sha256sum writes two spaces in text mode and " *" in binary mode.
        let file = file.strip_prefix([' ', '*']).ok_or_else(bad)?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) || file.is_empty() {
            return Err(bad());
        }
        out.push((digest.to_ascii_lowercase(), file.to_string()));
    }
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse the tensors of subgraph 0 from a TFLite flatbuffer. Every read is bounds-checked, so a
/// truncated or foreign file gives an `Err` with the reason, never a panic.
pub fn parse(buf: &[u8]) -> Result<ModelInfo, String> {
    let fb = Flat(buf);
    if buf.get(4..8) != Some(b"TFL3".as_slice()) {
        return Err("not a TFLite flatbuffer (no TFL3 identifier)".into());
    }
    let model = fb.deref(0)?;
    // Every constant buffer must lie inside the file: this is where truncation shows.
    if let Some(buffers) = fb.field_vector(model, 4)? {
        for i in 0..buffers.1 {
            let table = fb.deref(buffers.0 + 4 * i)?;
            fb.field_vector(table, 0)?;
        }
    }
    let (subgraphs, count) = fb.field_vector(model, 2)?.ok_or("model has no subgraphs")?;
    if count == 0 {
        return Err("model has no subgraphs".into());
    }
    let graph = fb.deref(subgraphs)?;
    let (tensors, n_tensors) = fb
        .field_vector(graph, 0)?
        .ok_or("subgraph has no tensors")?;
    let tensor_at = |index: i32| -> Result<TensorInfo, String> {
        let index = usize::try_from(index).map_err(|_| "negative tensor index")?;
        if index >= n_tensors {
            return Err(format!("tensor index {index} out of range"));
        }
        read_tensor(&fb, fb.deref(tensors + 4 * index)?)
    };
    let list = |field: usize| -> Result<Vec<TensorInfo>, String> {
        let (at, n) = fb
            .field_vector(graph, field)?
            .ok_or("subgraph lacks inputs/outputs")?;
        (0..n).map(|i| tensor_at(fb.i32(at + 4 * i)?)).collect()
    };
    Ok(ModelInfo {
        inputs: list(1)?,
        outputs: list(2)?,
    })
}

fn read_tensor(fb: &Flat<'_>, table: usize) -> Result<TensorInfo, String> {
    let shape = match fb.field_vector(table, 0)? {
        Some((at, n)) => (0..n)
            .map(|i| {
                let d = fb.i32(at + 4 * i)?;
                usize::try_from(d).map_err(|_| format!("dynamic dimension {d}"))
            })
            .collect::<Result<Vec<_>, String>>()?,
        None => Vec::new(),
    };
    let dtype = DType::from_schema(match fb.field(table, 1)? {
        Some(at) => fb.u8(at)?,
        None => 0,
    });
    let mut quant = None;
    if let Some(q) = fb.field(table, 4)? {
        let q = q + fb.u32(q)? as usize;
        if let (Some((s, ns)), Some((z, nz))) = (fb.field_vector(q, 2)?, fb.field_vector(q, 3)?) {
            if ns > 0 && nz > 0 {
                quant = Some((f32::from_bits(fb.u32(s)?), fb.i64(z)?));
            }
        }
    }
    Ok(TensorInfo {
        shape,
        dtype,
        quant,
    })
}

/// Bounds-checked little-endian reads over a flatbuffer.
struct Flat<'a>(&'a [u8]);

impl Flat<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], String> {
        self.0
            .get(at..at.checked_add(N).ok_or("offset overflow")?)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| format!("read past end of file at byte {at} (file is truncated?)"))
    }
    fn u8(&self, at: usize) -> Result<u8, String> {
        Ok(self.bytes::<1>(at)?[0])
    }
    fn u16(&self, at: usize) -> Result<u16, String> {
        Ok(u16::from_le_bytes(self.bytes(at)?))
    }
    fn u32(&self, at: usize) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes(at)?))
    }
    fn i32(&self, at: usize) -> Result<i32, String> {
        Ok(i32::from_le_bytes(self.bytes(at)?))
    }
    fn i64(&self, at: usize) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.bytes(at)?))
    }

    /// Follow the unsigned offset stored at `at` to the table or vector it points to.
    fn deref(&self, at: usize) -> Result<usize, String> {
        at.checked_add(self.u32(at)? as usize)
            .filter(|&p| p < self.0.len())
            .ok_or_else(|| format!("offset at byte {at} points outside the file (truncated?)"))
    }

    /// Position of field `index` of the table at `table`, or `None` if the field is absent.
    fn field(&self, table: usize, index: usize) -> Result<Option<usize>, String> {
        let vtable =
            i64::try_from(table).map_err(|_| "offset overflow")? - i64::from(self.i32(table)?);
        let vtable = usize::try_from(vtable).map_err(|_| "vtable outside the file")?;
        let vt_len = usize::from(self.u16(vtable)?);
        let slot = 4 + 2 * index;
        if slot + 2 > vt_len {
            return Ok(None);
        }
        match self.u16(vtable + slot)? {
            0 => Ok(None),
            off => Ok(Some(table + usize::from(off))),
        }
    }

    /// `(first element position, length)` of the vector that field `index` points to. At least
    /// `length` bytes past it must lie inside the file (exact for byte vectors such as weight
    /// buffers; wider elements are bounds-checked again when read).
    fn field_vector(&self, table: usize, index: usize) -> Result<Option<(usize, usize)>, String> {
        let Some(at) = self.field(table, index)? else {
            return Ok(None);
        };
        let vec = self.deref(at)?;
        let len = self.u32(vec)? as usize;
        if vec + 4 + len > self.0.len() {
            return Err(format!(
                "vector of {len} elements at byte {vec} runs past the end of the file (truncated?)"
            ));
        }
        Ok(Some((vec + 4, len)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_files_are_read_as_sha256sum_writes_them() {
        let d = "8ff50ce098b04be7a56489adff951d904d204045f77582072ce0128091b9780a";
        let text = format!("{d}  a.tflite\n\n{} *b.tflite\n", d.to_uppercase());
        let sums = parse_sums(&text).unwrap();
        assert_eq!(sums[0], (d.to_string(), "a.tflite".to_string()));
        assert_eq!(sums[1], (d.to_string(), "b.tflite".to_string()));
        assert!(parse_sums("8ff50ce0  a.tflite")
            .unwrap_err()
            .contains("line 1"));
        assert!(parse_sums(&format!("{d}a.tflite")).is_err());
        assert!(parse_sums(&format!("{d} a.tflite")).is_err());
    }

    #[test]
    fn rejects_what_is_not_a_tflite_file() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x10\0\0\0TFL3").is_err());
        assert!(parse(&[0u8; 64]).unwrap_err().contains("TFL3"));
    }
}
