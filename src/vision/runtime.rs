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
//!   options (`cpu_options.rs`); the GPU and NPU settings below fall back to it too.
//! - Classic API: the interpreter runs on `threads` threads. XNNPACK is used only on TFLite >= 2.17,
//!   whose XNNPACK options struct is the one `edgefirst-tflite` declares; older libraries (the
//!   fetched 2.9) run on TFLite's built-in kernels, because with them the crate passes garbage
//!   flags to XNNPACK (see `Runtime::xnnpack_abi_matches`).
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
//! and kept in a process-wide table (the memory is a few MB, once).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use edgefirst_tflite::{litert, Delegate, DelegateOptions, Interpreter, Library};

use super::config::{Accelerator, ExternalDelegate, RuntimeConfig};
use super::cpu_options::OpaqueOptionsApi;
use super::model::{ModelFile, ModelInfo};
use super::VisionError;

/// Environment variable that names the runtime library, checked after the config's own path.
pub const LIBRARY_ENV: &str = "FACECV_LITERT_LIB";

/// File names tried in each folder, LiteRT first.
const LIBRARY_NAMES: &[&str] = &["libLiteRt.so", "libtensorflowlite_c.so"];

/// Which of the two C APIs a loaded library is driven through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    LiteRt,
    Classic,
}

/// A loaded runtime library, shared by every model of the process.
pub struct Runtime {
    lib: &'static Library,
    env: Option<litert::Environment<'static>>,
    /// How `threads` reaches LiteRT's XNNPACK; `None` on a classic library.
    cpu_options: Option<OpaqueOptionsApi>,
    path: PathBuf,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.path)
            .field("litert", &self.env.is_some())
            .field("classic", &self.has_classic())
            .finish()
    }
}

/// Where the library is looked for, in order, when neither the config nor [`LIBRARY_ENV`] names
/// it: beside the executable, the repository's `lib/<arch>/` (a dev checkout), the standard library
/// folders, then the `ai_edge_litert/` folder of a pip install.
pub fn search_path() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.clone());
        dirs.push(exe_dir.join("../lib"));
    }
    let arch = std::env::consts::ARCH;
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("lib").join(arch));
    dirs.push(PathBuf::from("lib").join(arch));
    let triplet = format!("/usr/lib/{arch}-linux-gnu");
    for d in ["/usr/local/lib", &triplet, "/usr/lib", "/lib"] {
        dirs.push(PathBuf::from(d));
    }
    dirs.extend(
        site_packages()
            .into_iter()
            .map(|d| d.join("ai_edge_litert")),
    );
    dirs
}

/// `site-packages`/`dist-packages` folders of the usual Python installs (venv, user, system).
fn site_packages() -> Vec<PathBuf> {
    let mut prefixes: Vec<PathBuf> = Vec::new();
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV") {
        prefixes.push(PathBuf::from(venv).join("lib"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        prefixes.push(PathBuf::from(home).join(".local/lib"));
    }
    prefixes.push("/usr/local/lib".into());
    prefixes.push("/usr/lib".into());
    let mut out = Vec::new();
    for prefix in prefixes {
        let Ok(entries) = std::fs::read_dir(&prefix) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with("python3") {
                out.push(entry.path().join("site-packages"));
                out.push(entry.path().join("dist-packages"));
            }
        }
    }
    out
}

/// Resolve the library file: the config's path, then [`LIBRARY_ENV`], then [`search_path`].
/// A path given explicitly is used as is (no fallback), so a typo is reported, not papered over.
pub fn locate_library(explicit: Option<&Path>) -> Result<PathBuf, VisionError> {
    let from_env = std::env::var_os(LIBRARY_ENV).map(PathBuf::from);
    if let Some(path) = explicit.or(from_env.as_deref()) {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(VisionError::RuntimeNotFound {
                searched: vec![path.to_path_buf()],
            })
        };
    }
    let dirs = search_path();
    dirs.iter()
        .flat_map(|d| LIBRARY_NAMES.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
        .ok_or(VisionError::RuntimeNotFound { searched: dirs })
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
        let env = if lib.has_litert() {
            Some(litert::Environment::new(lib).map_err(rt_err("LiteRtCreateEnvironment"))?)
        } else {
            None
        };
        let cpu_options = env
            .as_ref()
            .and_then(|_| OpaqueOptionsApi::load(&canonical));
        let rt = Runtime {
            lib,
            env,
            cpu_options,
            path: canonical,
        };
        if rt.env.is_none() && !rt.has_classic() {
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
    pub fn has_classic(&self) -> bool {
        let sys = self.lib.as_sys();
        sys.TfLiteModelCreate.is_ok()
            && sys.TfLiteInterpreterCreate.is_ok()
            && sys.TfLiteInterpreterInvoke.is_ok()
    }

    /// The API a model would be compiled with under `config`: an external delegate needs the
    /// classic API; otherwise LiteRT when the library has it.
    pub fn api_for(&self, config: &RuntimeConfig) -> Result<Api, VisionError> {
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
        Ok(if self.env.is_some() {
            Api::LiteRt
        } else {
            Api::Classic
        })
    }

    /// Compile `model` for the accelerator `config` asks for.
    pub fn session(
        &'static self,
        model: &ModelFile,
        config: &RuntimeConfig,
    ) -> Result<Session, VisionError> {
        let backend = match self.api_for(config)? {
            Api::LiteRt => Backend::LiteRt(self.compile_litert(model, config)?),
            Api::Classic => Backend::Classic(self.compile_classic(model, config)?),
        };
        let info = model.info.clone();
        let input = vec![0u8; info.inputs[0].byte_size()];
        let outputs = info
            .outputs
            .iter()
            .map(|t| vec![0u8; t.byte_size()])
            .collect();
        let mut session = Session {
            backend,
            input,
            outputs,
            out_map: Vec::new(),
            info,
            last_invoke: Duration::ZERO,
        };
        session.out_map = session.match_outputs()?;
        Ok(session)
    }

    fn compile_litert(
        &'static self,
        model: &ModelFile,
        config: &RuntimeConfig,
    ) -> Result<LiteRtCell, VisionError> {
        let env = self
            .env
            .as_ref()
            .expect("LiteRT API implies an environment");
        let wanted = match config.accelerator {
            Accelerator::Cpu => litert::HwAccelerators::CPU,
            Accelerator::Gpu => litert::HwAccelerators::GPU,
            Accelerator::Npu => litert::HwAccelerators::NPU,
        };
        if config.accelerator != Accelerator::Cpu {
            let available = litert::accelerators(env).map_err(rt_err("LiteRtGetAccelerator"))?;
            if !available.iter().any(|a| a.hardware.contains(wanted)) {
                return Err(VisionError::AcceleratorUnavailable {
                    requested: config.accelerator,
                    available: available.iter().map(|a| a.name.clone()).collect(),
                });
            }
        }
        let options = litert::Options::new(self.lib)
            .and_then(|o| o.hardware_accelerators(wanted | litert::HwAccelerators::CPU))
            .map_err(rt_err("LiteRtCreateOptions"))?;
        // Every accelerator falls back to the CPU, so XNNPACK's threads matter for all of them.
        self.cpu_options
            .as_ref()
            .ok_or_else(|| VisionError::Unsupported {
                key: "vision.runtime.threads".into(),
                message: format!(
                    "{} lacks LiteRtCreateOpaqueOptions/LiteRtAddOpaqueOptions, so XNNPACK's \
                     thread count cannot be set; use LiteRT 2.x (scripts/fetch-litert.sh)",
                    self.path.display()
                ),
            })?
            .set_cpu_threads(&options, config.threads)?;
        let owner = litert::Model::from_buffer(env, model.bytes.clone())
            .map_err(rt_err("LiteRtCreateModelFromBuffer"))?;
        LiteRtCell::try_new(owner, |m| {
            let compiled = litert::CompiledModel::create(env, m, &options)
                .map_err(rt_err("LiteRtCreateCompiledModel"))?;
            let n_in = m.num_inputs(0).map_err(rt_err("signature inputs"))?;
            let n_out = m.num_outputs(0).map_err(rt_err("signature outputs"))?;
            let inputs = (0..n_in)
                .map(|i| compiled.create_input_buffer(0, i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(rt_err("input buffer"))?;
            let outputs = (0..n_out)
                .map(|i| compiled.create_output_buffer(0, i))
                .collect::<Result<Vec<_>, _>>()
                .map_err(rt_err("output buffer"))?;
            Ok(Compiled {
                model: compiled,
                inputs,
                outputs,
            })
        })
    }

    fn compile_classic(
        &'static self,
        model: &ModelFile,
        config: &RuntimeConfig,
    ) -> Result<ClassicSession, VisionError> {
        if !self.has_classic() {
            return Err(VisionError::RuntimeLoad {
                path: self.path.clone(),
                reason: "the classic TFLite C API is missing".into(),
            });
        }
        let threads = i32::from(config.threads.max(1));
        let tfl_model = edgefirst_tflite::Model::from_bytes(self.lib, model.bytes.clone())
            .map_err(rt_err("TfLiteModelCreate"))?;
        let build = |delegate: Option<Delegate>| {
            let builder = Interpreter::builder(self.lib)
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
            Some(ext) => {
                build(Some(load_delegate(ext)?)).map_err(|e| VisionError::DelegateLoad {
                    path: ext.path.clone(),
                    reason: format!("the interpreter could not be built with it ({e})"),
                })?
            }
            None if self.xnnpack_abi_matches() => {
                let xnnpack =
                    Delegate::xnnpack(self.lib, threads).map_err(rt_err("XNNPACK delegate"))?;
                // XNNPACK can still refuse a model; TFLite's own kernels, on the same thread
                // count, then run it.
                build(Some(xnnpack)).or_else(|first| {
                    let interp = build(None).map_err(|_| first)?;
                    tracing::warn!(
                        library = %self.path.display(),
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
}

/// TFLite 2.17 is the first release whose `TfLiteXNNPackDelegateOptions` has the fields that
/// `edgefirst-tflite` 0.10 declares (it ends in `weight_cache_file_path`).
const XNNPACK_ABI_SINCE: (u32, u32) = (2, 17);

impl Runtime {
    /// Whether `Delegate::xnnpack` may be called on this classic library. Older TFLite returns a
    /// smaller options struct by value, in registers rather than through the caller's buffer, so
    /// the crate would pass stack garbage as flags and weights cache: measured with TFLite 2.9
    /// (npm `tfjs-tflite-node`), whose XNNPACK then failed to build its runtime in most
    /// processes. Such a library runs on its built-in kernels, which take `threads` as well.
    fn xnnpack_abi_matches(&self) -> bool {
        let sys = self.lib.as_sys();
        if sys.TfLiteVersion.is_err() {
            return false;
        }
        // SAFETY: `TfLiteVersion` takes nothing and returns a static NUL-terminated string.
        let version = unsafe { std::ffi::CStr::from_ptr(sys.TfLiteVersion()) };
        parse_version(&version.to_string_lossy()).is_some_and(|v| v >= XNNPACK_ABI_SINCE)
    }
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

/// A LiteRT compiled model with the host buffers it runs on. The runtime reads the model on every
/// inference, so the model is the owner and the compiled model borrows it (`self_cell`).
struct Compiled<'a> {
    model: litert::CompiledModel<'a>,
    inputs: Vec<litert::TensorBuffer<'a>>,
    outputs: Vec<litert::TensorBuffer<'a>>,
}

self_cell::self_cell!(
    struct LiteRtCell {
        owner: litert::Model<'static>,
        #[not_covariant]
        dependent: Compiled,
    }
);

/// A classic interpreter. `edgefirst_tflite::Model` owns the flatbuffer the interpreter's model
/// points into, so it is kept alive beside it and dropped after it (field order).
struct ClassicSession {
    interp: Interpreter<'static>,
    _model: edgefirst_tflite::Model<'static>,
}

enum Backend {
    LiteRt(LiteRtCell),
    Classic(ClassicSession),
}

/// One compiled model with reusable host buffers: write [`Session::input_mut`], call
/// [`Session::run`], read [`Session::output`]. After construction nothing here allocates.
pub struct Session {
    backend: Backend,
    input: Vec<u8>,
    /// In the model file's output order (`info.outputs`).
    outputs: Vec<Vec<u8>>,
    /// Backend output `i` lands in `outputs[out_map[i]]`.
    out_map: Vec<usize>,
    info: ModelInfo,
    /// How long the last [`Session::run`] spent in the runtime's invoke call alone.
    last_invoke: Duration,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let api = match self.backend {
            Backend::LiteRt(_) => Api::LiteRt,
            Backend::Classic(_) => Api::Classic,
        };
        f.debug_struct("Session")
            .field("api", &api)
            .field("model", &self.info.describe())
            .finish()
    }
}

impl Session {
    /// The tensors the model file declares.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The raw bytes of input 0, to be filled before [`Session::run`].
    pub fn input_mut(&mut self) -> &mut [u8] {
        &mut self.input
    }

    /// The raw bytes of output `index` (model file order) after [`Session::run`].
    pub fn output(&self, index: usize) -> &[u8] {
        &self.outputs[index]
    }

    /// Time the last [`Session::run`] spent inside the runtime's invoke call (the network
    /// itself), without copying the input in and the outputs out.
    pub fn last_invoke(&self) -> Duration {
        self.last_invoke
    }

    /// Run the model on the current input.
    pub fn run(&mut self) -> Result<(), VisionError> {
        let (input, outputs, map) = (&self.input, &mut self.outputs, &self.out_map);
        let last_invoke = &mut self.last_invoke;
        match &mut self.backend {
            Backend::LiteRt(cell) => cell.with_dependent_mut(|_, c| {
                c.inputs[0]
                    .write_bytes(input)
                    .map_err(rt_err("write input"))?;
                let start = Instant::now();
                let ran = c.model.run_default(&mut c.inputs, &mut c.outputs);
                *last_invoke = start.elapsed();
                ran.map_err(rt_err("LiteRtRunCompiledModel"))?;
                for (i, buf) in c.outputs.iter_mut().enumerate() {
                    buf.read_bytes_into(&mut outputs[map[i]])
                        .map_err(rt_err("read output"))?;
                }
                Ok(())
            }),
            Backend::Classic(s) => {
                s.interp.inputs_mut().map_err(rt_err("inputs"))?[0]
                    .copy_from_bytes(input)
                    .map_err(rt_err("write input"))?;
                let start = Instant::now();
                let ran = s.interp.invoke();
                *last_invoke = start.elapsed();
                ran.map_err(rt_err("TfLiteInterpreterInvoke"))?;
                let tensors = s.interp.outputs().map_err(rt_err("outputs"))?;
                for (i, t) in tensors.iter().enumerate() {
                    let bytes = t.as_bytes().map_err(rt_err("read output"))?;
                    let dst = &mut outputs[map[i]];
                    let n = dst.len().min(bytes.len());
                    dst[..n].copy_from_slice(&bytes[..n]);
                }
                Ok(())
            }
        }
    }

    /// LiteRT orders outputs by signature (alphabetically by name), not as the subgraph lists
    /// them; match each runtime output to the file's by size, which differs for our models.
    fn match_outputs(&mut self) -> Result<Vec<usize>, VisionError> {
        let sizes: Vec<usize> = match &mut self.backend {
            Backend::LiteRt(cell) => {
                cell.with_dependent_mut(|_, c| c.outputs.iter().map(|b| b.size()).collect())
            }
            Backend::Classic(s) => return Ok((0..s.interp.output_count()).collect()),
        };
        let mut taken = vec![false; self.info.outputs.len()];
        let mut map = Vec::with_capacity(sizes.len());
        for size in sizes {
            let found = (0..taken.len())
                .find(|&j| !taken[j] && self.info.outputs[j].byte_size() == size)
                .ok_or_else(|| VisionError::Runtime {
                    context: "output matching",
                    message: format!(
                        "runtime output of {size} bytes matches no output of the model file ({})",
                        self.info.describe()
                    ),
                })?;
            taken[found] = true;
            map.push(found);
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_that_is_missing_is_reported_with_the_fix() {
        let err = locate_library(Some(Path::new("/nonexistent/libLiteRt.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/libLiteRt.so"), "{msg}");
        assert!(msg.contains("scripts/fetch-litert.sh"), "{msg}");
    }

    #[test]
    fn tflite_versions_compare_by_major_and_minor() {
        assert_eq!(parse_version("2.9.0"), Some((2, 9)));
        assert_eq!(parse_version("2.17.1-rc0"), Some((2, 17)));
        assert!(parse_version("2.9.0").unwrap() < XNNPACK_ABI_SINCE);
        assert_eq!(parse_version("unknown"), None);
    }

    #[test]
    fn the_search_path_starts_beside_the_executable_and_ends_in_site_packages() {
        let dirs = search_path();
        let exe_dir = std::env::current_exe().unwrap();
        assert_eq!(dirs[0], exe_dir.parent().unwrap());
        assert!(dirs
            .iter()
            .any(|d| d.ends_with(Path::new("lib").join(std::env::consts::ARCH))));
    }
}
