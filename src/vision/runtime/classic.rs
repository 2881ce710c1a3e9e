//! The classic backend: TFLite's Interpreter C API (`TfLite*` symbols), driven through
//! `edgefirst-tflite`'s safe wrappers.
//!
//! This is the only way to an external delegate `.so` (Edge TPU, i.MX8 VX, vendor NPUs, Arm NN),
//! and the fallback for a library without LiteRT's API. The interpreter runs on `threads`
//! threads; XNNPACK is stacked in only where its options ABI matches the crate's (see
//! [`xnnpack_abi_matches`]).

use std::path::Path;
use std::time::{Duration, Instant};

use edgefirst_tflite::{Delegate, DelegateOptions, Interpreter, Library};

use crate::vision::config::{ExternalDelegate, RuntimeConfig};
use crate::vision::model::ModelFile;
use crate::vision::VisionError;

/// Whether `lib` has the classic Interpreter C API (needed for external delegates).
pub(super) fn available(lib: &Library) -> bool {
    let sys = lib.as_sys();
    sys.TfLiteModelCreate.is_ok()
        && sys.TfLiteInterpreterCreate.is_ok()
        && sys.TfLiteInterpreterInvoke.is_ok()
}

/// A classic interpreter. `edgefirst_tflite::Model` owns the flatbuffer the interpreter's model
/// points into, so it is kept alive beside it and dropped after it (field order).
pub(super) struct ClassicSession {
    interp: Interpreter<'static>,
    _model: edgefirst_tflite::Model<'static>,
}

/// Build an interpreter for `model` on the library at `path`, with the external delegate or
/// XNNPACK that `config` and the library allow.
pub(super) fn compile(
    lib: &'static Library,
    path: &Path,
    model: &ModelFile,
    config: &RuntimeConfig,
) -> Result<ClassicSession, VisionError> {
    if !available(lib) {
        return Err(VisionError::RuntimeLoad {
            path: path.to_path_buf(),
            reason: "the classic TFLite C API is missing".into(),
        });
    }
    let threads = i32::from(config.threads.max(1));
    let tfl_model = edgefirst_tflite::Model::from_bytes(lib, model.bytes.clone())
        .map_err(rt_err("TfLiteModelCreate"))?;
    let build = |delegate: Option<Delegate>| {
        let builder = Interpreter::builder(lib)
            .map_err(rt_err("TfLiteInterpreterOptionsCreate"))?
            .num_threads(threads);
        match delegate {
            Some(d) => builder.delegate(d),
            None => builder,
        }
        .build(&tfl_model)
        .map_err(rt_err("TfLiteInterpreterCreate"))
    };
    let interp = match &config.external_delegate {
        // The delegate claims what it runs; TFLite's built-in kernels run the rest on
        // `threads`. XNNPACK is not stacked after it: no library here has both a matching
        // XNNPACK ABI and a delegate to test the pair with.
        Some(ext) => build(Some(load_delegate(ext)?)).map_err(|e| VisionError::DelegateLoad {
            path: ext.path.clone(),
            reason: format!("the interpreter could not be built with it ({e})"),
        })?,
        None if xnnpack_abi_matches(lib) => {
            let xnnpack = Delegate::xnnpack(lib, threads).map_err(rt_err("XNNPACK delegate"))?;
            // XNNPACK can still refuse a model; TFLite's own kernels, on the same thread
            // count, then run it.
            build(Some(xnnpack)).or_else(|first| {
                let interp = build(None).map_err(|_| first)?;
                tracing::warn!(
                    library = %path.display(),
                    "XNNPACK refused this model; it runs on TFLite's built-in kernels instead"
                );
                Ok::<_, VisionError>(interp)
            })?
        }
        None => build(None)?,
    };
    Ok(ClassicSession {
        interp,
        _model: tfl_model,
    })
}

impl ClassicSession {
    /// Outputs in the interpreter's order, which is the model file's.
    pub(super) fn output_count(&self) -> usize {
        self.interp.output_count()
    }

    /// Copy `input` in, invoke, copy each output `i` into `outputs[map[i]]`; returns the time
    /// spent in the invoke call alone.
    pub(super) fn run(
        &mut self,
        input: &[u8],
        outputs: &mut [Vec<u8>],
        map: &[usize],
    ) -> Result<Duration, VisionError> {
        self.interp.inputs_mut().map_err(rt_err("inputs"))?[0]
            .copy_from_bytes(input)
            .map_err(rt_err("write input"))?;
        let start = Instant::now();
        let ran = self.interp.invoke();
        let invoke = start.elapsed();
        ran.map_err(rt_err("TfLiteInterpreterInvoke"))?;
        let tensors = self.interp.outputs().map_err(rt_err("outputs"))?;
        for (i, t) in tensors.iter().enumerate() {
            let bytes = t.as_bytes().map_err(rt_err("read output"))?;
            let dst = &mut outputs[map[i]];
            let n = dst.len().min(bytes.len());
            dst[..n].copy_from_slice(&bytes[..n]);
        }
        Ok(invoke)
    }
}

/// TFLite 2.17 is the first release whose `TfLiteXNNPackDelegateOptions` has the fields that
/// `edgefirst-tflite` 0.10 declares (it ends in `weight_cache_file_path`).
const XNNPACK_ABI_SINCE: (u32, u32) = (2, 17);

/// Whether `Delegate::xnnpack` may be called on this classic library. Older TFLite returns a
/// smaller options struct by value, in registers rather than through the caller's buffer, so
/// the crate would pass stack garbage as flags and weights cache: measured with TFLite 2.9
/// (npm `tfjs-tflite-node`), whose XNNPACK then failed to build its runtime in most
/// processes. Such a library runs on its built-in kernels, which take `threads` as well.
fn xnnpack_abi_matches(lib: &Library) -> bool {
    let sys = lib.as_sys();
    if sys.TfLiteVersion.is_err() {
        return false;
    }
    // SAFETY: `TfLiteVersion` takes nothing and returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(sys.TfLiteVersion()) };
    parse_version(&version.to_string_lossy()).is_some_and(|v| v >= XNNPACK_ABI_SINCE)
}

/// `"2.9.0"` -> `(2, 9)`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, minor))
}

/// Load `ext` with its options. A missing file, a library that is not a delegate plug-in and a
/// delegate whose create call fails all end here, named by file and config key.
fn load_delegate(ext: &ExternalDelegate) -> Result<Delegate, VisionError> {
    let refuse = |reason: String| VisionError::DelegateLoad {
        path: ext.path.clone(),
        reason,
    };
    if !ext.path.is_file() {
        return Err(refuse("no such file".into()));
    }
    // Checked here only to say which entry point is missing: edgefirst-tflite reports a bare
    // "dlsym failed".
    // SAFETY: the library is loaded and closed again; a delegate library has no constructors
    // beyond what loading it for real runs anyway.
    let lib = unsafe { libloading::Library::new(&ext.path) }.map_err(|e| refuse(e.to_string()))?;
    for symbol in [
        "tflite_plugin_create_delegate",
        "tflite_plugin_destroy_delegate",
    ] {
        // SAFETY: only the symbol's presence is checked; it is never called through this type.
        if unsafe { lib.get::<unsafe extern "C" fn()>(symbol.as_bytes()) }.is_err() {
            return Err(refuse(format!(
                "it does not export {symbol}, so it is not a TFLite external delegate plug-in"
            )));
        }
    }
    let opts = ext
        .options
        .iter()
        .fold(DelegateOptions::new(), |o, (k, v)| o.option(k, v));
    Delegate::load_with_options(&ext.path, &opts).map_err(|e| refuse(e.to_string()))
}

/// Map an `edgefirst_tflite` error to ours, naming the call that failed.
fn rt_err(context: &'static str) -> impl Fn(edgefirst_tflite::Error) -> VisionError {
    move |e| VisionError::Runtime {
        context,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tflite_versions_compare_by_major_and_minor() {
        assert_eq!(parse_version("2.9.0"), Some((2, 9)));
        assert_eq!(parse_version("2.17.1-rc0"), Some((2, 17)));
        assert!(parse_version("2.9.0").unwrap() < XNNPACK_ABI_SINCE);
        assert_eq!(parse_version("unknown"), None);
    }
}
