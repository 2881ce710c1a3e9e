//! The TFLite runtime: find the shared library, load it once, and compile models into [`Session`]s.
//!
//! We never link TFLite: `edgefirst-tflite` opens it at run time, so one binary runs with LiteRT's
//! `libLiteRt.so` (the PyPI `ai-edge-litert` wheel, fetched by `scripts/fetch-litert.sh`) or with a
//! classic `libtensorflowlite_c.so`. The two expose different APIs:
//!
//! - **LiteRT** (`LiteRt*` symbols): the CompiledModel API with its own CPU (XNNPACK), GPU and NPU
//!   accelerators. This is what `libLiteRt.so` offers; it exports no classic `TfLite*` C API.
//! - **Classic** (`TfLite*` symbols): the Interpreter API with delegates, the only way to reach an
//!   external delegate `.so` (Edge TPU, i.MX8 VX, vendor NPUs, Arm NN). `scripts/fetch-tflite-c.sh`
//!   fetches one (TFLite 2.9.0's `libtensorflowlite_c.so`, from npm's `tfjs-tflite-node`); point
//!   `vision.runtime.library` at it.
//!
//! Accelerators by config (`vision.runtime`):
//!
//! - `cpu` (default): LiteRT's XNNPACK accelerator on `threads` threads, passed as LiteRT's CPU
//!   options (`cpu_options.rs`, on compilation options `litert.rs` owns); the GPU and NPU
//!   settings below fall back to it too.
//! - Classic API: the interpreter runs on `threads` threads. XNNPACK is used only on TFLite >= 2.17,
//!   whose XNNPACK options struct is the one `edgefirst-tflite` declares; older libraries (the
//!   fetched 2.9) run on TFLite's built-in kernels, because with them the crate passes garbage
//!   flags to XNNPACK (see `classic::xnnpack_abi_matches`).
//! - `external_delegate`: loaded by path with `tflite_plugin_create_delegate(keys, values)`; it takes
//!   the nodes it supports, TFLite's built-in kernels run the rest on `threads`. Any failure (no
//!   file, not a plug-in, create or prepare failing) is [`VisionError::DelegateLoad`], naming the
//!   file and `vision.runtime.external_delegate.path`.
//! - `gpu`: LiteRT's GPU accelerator, a separate library it `dlopen`s by name
//!   (`libLiteRtWebGpuAccelerator.so`: `WITH_GPU=1 scripts/fetch-litert.sh`, and its folder on
//!   `LD_LIBRARY_PATH`); it draws through Vulkan, so it also needs `libvulkan1` and a GPU driver.
//!   Without the library the engine refuses to start ([`VisionError::AcceleratorUnavailable`]);
//!   without a GPU, compiling the model fails ([`VisionError::Runtime`]). Untested here: no GPU.
//! - `npu`: LiteRT's NPU dispatch (vendor plug-ins), refused the same way when none is registered.
//!
//! A loaded library is never unloaded: it holds thread pools and accelerator registrations for the
//! life of the process, and every model borrows from it. So each distinct library is loaded once
//! and kept in a process-wide table (the memory is a few MB, once).//!
//! The files: `library.rs` finds the library, this one loads it and picks the API, `litert.rs`
//! and `classic.rs` compile and run a model through each, and `session.rs` is the one interface
//! the detector and embedder see.

mod classic;
mod cpu_options;
mod library;
mod litert;
mod session;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use edgefirst_tflite::Library;

use super::config::RuntimeConfig;
use super::model::ModelFile;
use super::VisionError;
use library::locate_library;
use litert::LiteRt;
use session::Backend;
pub use session::Session;

/// Which of the two C APIs a loaded library is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    LiteRt,
    Classic,
}

/// A loaded runtime library, shared by every model of the process.
pub struct Runtime {
    lib: &'static Library,
    /// LiteRT's API, when the library has it.
    litert: Option<LiteRt>,
    path: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("litert", &self.litert.is_some())
            .field("classic", &self.has_classic())
            .finish()
    }
}

impl Runtime {
    /// Load the runtime named by `config` (or found by [`locate_library`]), once per process.
    pub fn load(config: &RuntimeConfig) -> Result<&'static Runtime, VisionError> {
        static LOADED: OnceLock<Mutex<Vec<&'static Runtime>>> = OnceLock::new();
        let path = locate_library(config.library.as_deref())?;
        let canonical = std::fs::canonicalize(&path).unwrap_or(path);
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = loaded.iter().find(|rt| rt.path == canonical) {
            return Ok(rt);
        }
        let lib = Library::from_path(&canonical).map_err(|e| VisionError::RuntimeLoad {
            path: canonical.clone(),
            reason: e.to_string(),
        })?;
        let lib: &'static Library = Box::leak(Box::new(lib));
        let rt = Runtime {
            lib,
            litert: LiteRt::load(lib, &canonical)?,
            path: canonical,
        };
        if rt.litert.is_none() && !rt.has_classic() {
            return Err(VisionError::RuntimeLoad {
                path: rt.path,
                reason: "exports neither the LiteRT (LiteRt*) nor the TFLite C API (TfLite*): \
                         not a TFLite runtime"
                    .into(),
            });
        }
        let rt: &'static Runtime = Box::leak(Box::new(rt));
        loaded.push(rt);
        Ok(rt)
    }

    /// The library file this runtime was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the classic Interpreter C API is there (needed for external delegates).
    fn has_classic(&self) -> bool {
        classic::available(self.lib)
    }

    /// The API a model would be compiled with under `config`: an external delegate needs the
    /// classic API; otherwise LiteRT when the library has it.
    fn api_for(&self, config: &RuntimeConfig) -> Result<Api, VisionError> {
        if let Some(delegate) = &config.external_delegate {
            if !self.has_classic() {
                return Err(VisionError::Unsupported {
                    key: "vision.runtime.external_delegate".into(),
                    message: format!(
                        "external delegate {} needs the classic TFLite C API \
                         (libtensorflowlite_c.so), but {} exports only LiteRT: set \
                         vision.runtime.library to a libtensorflowlite_c.so",
                        delegate.path.display(),
                        self.path.display()
                    ),
                });
            }
            return Ok(Api::Classic);
        }
        Ok(if self.litert.is_some() {
            Api::LiteRt
        } else {
            Api::Classic
        })
    }

    /// Compile `model` for the accelerator `config` asks for.
    pub fn session(
        &self,
        model: &ModelFile,
        config: &RuntimeConfig,
    ) -> Result<Session, VisionError> {
        let backend = match (self.api_for(config)?, &self.litert) {
            (Api::LiteRt, Some(litert)) => {
                Backend::LiteRt(litert.compile(model, config, &self.path)?)
            }
            (Api::LiteRt, None) => unreachable!("api_for picks LiteRT only where it is loaded"),
            (Api::Classic, _) => {
                Backend::Classic(classic::compile(self.lib, &self.path, model, config)?)
            }
        };
        Session::new(backend, model.info.clone())
    }
}
