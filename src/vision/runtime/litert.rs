//! The LiteRT backend: LiteRT's CompiledModel C API (`LiteRt*` symbols), with every handle ours.
//!
//! Why not `edgefirst-tflite`'s `litert` wrappers: XNNPACK's thread count reaches LiteRT only as
//! an item attached to the compilation options (`cpu_options.rs`), and the crate keeps the
//! options' handle private, as it does the environment's and the model's that a compiled model
//! is made from. So this module creates and destroys those handles itself: environment, model,
//! options, compiled model and tensor buffers.
//!
//! The functions are the ones `edgefirst-tflite` resolved from the same `libLiteRt.so`
//! ([`Library::litert`], the public `LiteRtFunctions` table of `edgefirst-tflite-sys`), whose
//! signatures that crate checks at compile time against bindgen's output for the LiteRT headers
//! it vendors (v2.1.6; up to LiteRT's current `main` the headers only add functions and keep the
//! x86-64/aarch64 layout of `LiteRtRankedTensorType`). The three opaque-options functions it lacks
//! are resolved in `cpu_options.rs`. Both crates are pinned exactly in `Cargo.toml`.
//!
//! Ownership follows the C API: the compiled model reads the model, and the model reads the
//! flatbuffer bytes, for as long as they live (`litert_compiled_model.h`, `litert_model.h`), so
//! [`LiteRtSession`] drops its buffers, then the compiled model, then the model, then the bytes
//! (field order). The compilation options stay the caller's and are dropped once compiled. The
//! environment lives as long as the process, as the runtime that holds it does.

use std::ffi::{c_char, CStr};
use std::path::Path;
use std::ptr::{null, null_mut};
use std::time::{Duration, Instant};

use edgefirst_tflite::{Library, LiteRtStatusCode};
use edgefirst_tflite_sys::litert::{
    self as c, kLiteRtHwAcceleratorCpu, kLiteRtHwAcceleratorGpu, kLiteRtHwAcceleratorNpu,
    kLiteRtStatusOk, kLiteRtTensorBufferLockModeRead, kLiteRtTensorBufferLockModeWrite,
    LiteRtFunctions,
};

use super::cpu_options::OpaqueOptionsApi;
use crate::vision::config::{Accelerator, RuntimeConfig};
use crate::vision::model::ModelFile;
use crate::vision::VisionError;

/// The signature every model is run through (our models have one).
const SIGNATURE: usize = 0;

/// `kLiteRtEnvOptionTagMinLoggerSeverity` (`litert_environment_options.h`), and the severities
/// of `LiteRtLogSeverity` (`litert/c/litert_logging.h`: verbose 0, info 1, ... silent 4).
const ENV_OPTION_MIN_LOGGER_SEVERITY: u32 = 25;
const LITERT_LOG_VERBOSE: i64 = 0;
const LITERT_LOG_INFO: i64 = 1;
const LITERT_LOG_ERROR: i64 = 3;
/// `kLiteRtAnyTypeInt` (`litert/c/litert_any.h`).
const ANY_TYPE_INT: u32 = 2;

/// LiteRT's side of a loaded library: its functions, the process's environment, and how
/// `threads` reaches XNNPACK.
pub(super) struct LiteRt {
    fns: &'static LiteRtFunctions,
    /// Never destroyed: models compiled in it live until the process ends (see `Runtime::load`).
    env: c::Environment,
    /// `None` on a LiteRT without the opaque-options functions; compiling then fails, naming why.
    cpu_options: Option<OpaqueOptionsApi>,
}

// SAFETY: `env` is an opaque heap handle with no thread affinity. Through a shared `LiteRt` it
// is only handed to LiteRT calls that create models, compiled models and buffers in it, or that
// read its accelerator registry, which `LiteRtCreateEnvironment` fills before it returns; this is
// the ground on which `edgefirst-tflite` makes its own `Environment` `Send` and `Sync`, and how
// the appliance used that one before.
unsafe impl Send for LiteRt {}
// SAFETY: as for `Send`.
unsafe impl Sync for LiteRt {}

impl LiteRt {
    /// LiteRT's API in `lib` (loaded from `path`), or `None` when `lib` has only the classic API.
    pub(super) fn load(lib: &'static Library, path: &Path) -> Result<Option<LiteRt>, VisionError> {
        let Some(fns) = lib.litert() else {
            return Ok(None);
        };
        let mut env = null_mut();
        let options = [min_logger_severity(litert_log_severity())];
        // SAFETY: `LiteRtCreateEnvironment(int, const LiteRtEnvOption*, LiteRtEnvironment*)`
        // reads `options.len()` options, which live until it returns; `env` is an out-parameter.
        let status =
            unsafe { (fns.create_environment)(options.len() as i32, options.as_ptr(), &mut env) };
        check(status, "LiteRtCreateEnvironment")?;
        non_null(env, "LiteRtCreateEnvironment")?;
        Ok(Some(LiteRt {
            fns,
            env,
            cpu_options: OpaqueOptionsApi::load(path),
        }))
    }

    /// Compile `model` for the accelerator `config` asks for, falling back to the CPU, whose
    /// XNNPACK runs on `config.threads` threads; `path` names the library in errors.
    pub(super) fn compile(
        &self,
        model: &ModelFile,
        config: &RuntimeConfig,
        path: &Path,
    ) -> Result<LiteRtSession, VisionError> {
        let wanted = match config.accelerator {
            Accelerator::Cpu => kLiteRtHwAcceleratorCpu,
            Accelerator::Gpu => kLiteRtHwAcceleratorGpu,
            Accelerator::Npu => kLiteRtHwAcceleratorNpu,
        };
        if config.accelerator != Accelerator::Cpu {
            self.require(config.accelerator, wanted)?;
        }
        // Every accelerator falls back to the CPU, so XNNPACK's threads matter for all of them.
        let options = self.options(wanted | kLiteRtHwAcceleratorCpu, config.threads, path)?;
        let bytes = model.bytes.clone();
        let mut raw = null_mut();
        // SAFETY: the pointer and length describe `bytes`, which the session keeps (its heap
        // block does not move when the `Vec` does) until after the model is destroyed, as
        // `LiteRtCreateModelFromBuffer` requires; `raw` is an out-parameter.
        let status = unsafe {
            (self.fns.create_model_from_buffer)(
                self.env,
                bytes.as_ptr().cast(),
                bytes.len(),
                &mut raw,
            )
        };
        check(status, "LiteRtCreateModelFromBuffer")?;
        let model = Owned::new(raw, self.fns.destroy_model, "LiteRtCreateModelFromBuffer")?;
        let mut raw = null_mut();
        // SAFETY: environment, model and options are live; the compiled model is destroyed before
        // the model (field order of `LiteRtSession`); `raw` is an out-parameter.
        let status =
            unsafe { (self.fns.create_compiled_model)(self.env, model.raw, options.raw, &mut raw) };
        check(status, "LiteRtCreateCompiledModel")?;
        let compiled = Owned::new(
            raw,
            self.fns.destroy_compiled_model,
            "LiteRtCreateCompiledModel",
        )?;
        let (n_in, n_out) = self.signature_counts(model.raw)?;
        let inputs = (0..n_in)
            .map(|i| self.buffer(model.raw, compiled.raw, Side::Input, i))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = (0..n_out)
            .map(|i| self.buffer(model.raw, compiled.raw, Side::Output, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LiteRtSession {
            fns: self.fns,
            input_handles: inputs.iter().map(|b| b.handle.raw).collect(),
            output_handles: outputs.iter().map(|b| b.handle.raw).collect(),
            inputs,
            outputs,
            compiled,
            _model: model,
            _bytes: bytes,
        })
    }

    /// Compilation options for `hardware`, with XNNPACK's thread count attached.
    fn options(
        &self,
        hardware: c::HwAcceleratorSet,
        threads: u8,
        path: &Path,
    ) -> Result<Owned<c::Options>, VisionError> {
        let cpu_options = self
            .cpu_options
            .as_ref()
            .ok_or_else(|| VisionError::Unsupported {
                key: "vision.runtime.threads".into(),
                message: format!(
                    "{} lacks LiteRtCreateOpaqueOptions/LiteRtAddOpaqueOptions, so XNNPACK's \
                     thread count cannot be set; use LiteRT 2.x (scripts/fetch-litert.sh)",
                    path.display()
                ),
            })?;
        let mut raw = null_mut();
        // SAFETY: `LiteRtCreateOptions(LiteRtOptions*)`; `raw` is an out-parameter.
        check(
            unsafe { (self.fns.create_options)(&mut raw) },
            "LiteRtCreateOptions",
        )?;
        let options = Owned::new(raw, self.fns.destroy_options, "LiteRtCreateOptions")?;
        // SAFETY: `options` is live and ours.
        let status = unsafe { (self.fns.set_options_hardware_accelerators)(options.raw, hardware) };
        check(status, "LiteRtSetOptionsHardwareAccelerators")?;
        cpu_options.set_cpu_threads(options.raw, threads)?;
        Ok(options)
    }

    /// Fails unless an accelerator registered in the environment supports `wanted`.
    fn require(
        &self,
        requested: Accelerator,
        wanted: c::HwAcceleratorSet,
    ) -> Result<(), VisionError> {
        let mut count = 0;
        // SAFETY: the environment is live; `count` is an out-parameter.
        let status = unsafe { (self.fns.get_num_accelerators)(self.env, &mut count) };
        check(status, "LiteRtGetNumAccelerators")?;
        let mut available = Vec::new();
        for index in 0..count {
            let mut accel = null_mut();
            // SAFETY: `index` is below the count just reported; `accel` is an out-parameter.
            let status = unsafe { (self.fns.get_accelerator)(self.env, index, &mut accel) };
            check(status, "LiteRtGetAccelerator")?;
            non_null(accel, "LiteRtGetAccelerator")?;
            let mut hardware = 0;
            // SAFETY: `accel` is a live accelerator of the environment; out-parameter.
            let status =
                unsafe { (self.fns.get_accelerator_hardware_support)(accel, &mut hardware) };
            check(status, "LiteRtGetAcceleratorHardwareSupport")?;
            if hardware & wanted == wanted {
                return Ok(());
            }
            let mut name: *const c_char = null();
            // SAFETY: as above; the name is the accelerator's, NUL-terminated, and copied below
            // while the accelerator (and so the name) lives.
            let status = unsafe { (self.fns.get_accelerator_name)(accel, &mut name) };
            check(status, "LiteRtGetAcceleratorName")?;
            if !name.is_null() {
                // SAFETY: see above.
                available.push(
                    unsafe { CStr::from_ptr(name) }
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
        Err(VisionError::AcceleratorUnavailable {
            requested,
            available,
        })
    }

    /// Inputs and outputs of the model's signature.
    fn signature_counts(&self, model: c::Model) -> Result<(usize, usize), VisionError> {
        let signature = self.signature(model)?;
        let (mut inputs, mut outputs) = (0, 0);
        // SAFETY: `signature` belongs to the live `model`; out-parameters.
        let status = unsafe { (self.fns.get_num_signature_inputs)(signature, &mut inputs) };
        check(status, "LiteRtGetNumSignatureInputs")?;
        // SAFETY: as above.
        let status = unsafe { (self.fns.get_num_signature_outputs)(signature, &mut outputs) };
        check(status, "LiteRtGetNumSignatureOutputs")?;
        Ok((inputs, outputs))
    }

    fn signature(&self, model: c::Model) -> Result<c::Signature, VisionError> {
        let mut signature = null_mut();
        // SAFETY: `model` is live; the signature it writes is borrowed from it.
        let status = unsafe { (self.fns.get_model_signature)(model, SIGNATURE, &mut signature) };
        check(status, "LiteRtGetModelSignature")?;
        non_null(signature, "LiteRtGetModelSignature")
    }

    /// A host-mappable buffer for input or output `index`, of the type and placement the compiled
    /// model asks for.
    fn buffer(
        &self,
        model: c::Model,
        compiled: c::CompiledModel,
        side: Side,
        index: usize,
    ) -> Result<Buffer, VisionError> {
        let signature = self.signature(model)?;
        let mut tensor = null_mut();
        let (get_tensor, get_requirements) = match side {
            Side::Input => (
                self.fns.get_signature_input_tensor_by_index,
                self.fns.get_compiled_model_input_buffer_requirements,
            ),
            Side::Output => (
                self.fns.get_signature_output_tensor_by_index,
                self.fns.get_compiled_model_output_buffer_requirements,
            ),
        };
        // SAFETY: `signature` belongs to the live model; `tensor` is an out-parameter.
        check(
            unsafe { get_tensor(signature, index, &mut tensor) },
            "signature tensor",
        )?;
        non_null(tensor, "signature tensor")?;
        // SAFETY: `LiteRtRankedTensorType` is plain C data (an element type and a layout of
        // integers), for which all zeroes is a valid value.
        let mut ty: c::RankedTensorType = unsafe { std::mem::zeroed() };
        // SAFETY: `tensor` belongs to the live model; `ty` is an out-parameter.
        let status = unsafe { (self.fns.get_ranked_tensor_type)(tensor, &mut ty) };
        check(status, "LiteRtGetRankedTensorType")?;
        let mut requirements = null_mut();
        // SAFETY: `compiled` is live; the requirements it writes stay its own, used only below
        // while it lives.
        let status = unsafe { get_requirements(compiled, SIGNATURE, index, &mut requirements) };
        check(status, "buffer requirements")?;
        non_null(requirements, "buffer requirements")?;
        let mut raw = null_mut();
        // SAFETY: environment and requirements are live, `ty` outlives the call; out-parameter.
        let status = unsafe {
            (self.fns.create_managed_tensor_buffer_from_requirements)(
                self.env,
                &ty,
                requirements,
                &mut raw,
            )
        };
        check(status, "LiteRtCreateManagedTensorBufferFromRequirements")?;
        let handle = Owned::new(raw, self.fns.destroy_tensor_buffer, "tensor buffer")?;
        let mut size = 0;
        // SAFETY: `handle` is a live buffer; `size` is an out-parameter.
        let status = unsafe { (self.fns.get_tensor_buffer_size)(handle.raw, &mut size) };
        check(status, "LiteRtGetTensorBufferSize")?;
        Ok(Buffer { handle, size })
    }
}

#[derive(Clone, Copy)]
enum Side {
    Input,
    Output,
}

/// A compiled model with the buffers it runs on. Fields drop in order: buffers, compiled model,
/// model, bytes (see the module comment).
pub(super) struct LiteRtSession {
    fns: &'static LiteRtFunctions,
    /// The raw handles of `inputs` and `outputs`, in the arrays `LiteRtRunCompiledModel` takes.
    input_handles: Vec<c::TensorBuffer>,
    output_handles: Vec<c::TensorBuffer>,
    inputs: Vec<Buffer>,
    outputs: Vec<Buffer>,
    compiled: Owned<c::CompiledModel>,
    _model: Owned<c::Model>,
    _bytes: Vec<u8>,
}

// SAFETY: every handle is an opaque heap object with no thread affinity, owned by this session
// alone (the raw copies in `*_handles` point into `inputs`/`outputs`); the session is used by one
// thread at a time, as `run` takes `&mut self`. `edgefirst-tflite` makes its own compiled model
// and buffers `Send` on the same ground.
unsafe impl Send for LiteRtSession {}

impl LiteRtSession {
    /// The byte size of each output buffer, in the runtime's output order.
    pub(super) fn output_sizes(&self) -> Vec<usize> {
        self.outputs.iter().map(|b| b.size).collect()
    }

    /// Copy `input` in, run, copy runtime output `i` into `outputs[map[i]]`; returns the time
    /// spent in the run call alone.
    pub(super) fn run(
        &mut self,
        input: &[u8],
        outputs: &mut [Vec<u8>],
        map: &[usize],
    ) -> Result<Duration, VisionError> {
        let first = &self.inputs[0];
        fits(input.len(), first.size, "write input")?;
        self.with_host(first, kLiteRtTensorBufferLockModeWrite, |host| {
            // SAFETY: the lock mapped at least `first.size >= input.len()` bytes; `input` is
            // Rust memory and cannot overlap LiteRT's mapping.
            unsafe { std::ptr::copy_nonoverlapping(input.as_ptr(), host, input.len()) }
        })?;
        let start = Instant::now();
        // SAFETY: the compiled model is live; the two arrays hold the live buffers of its
        // signature (one per input and output, in order), none of them locked, and stay
        // untouched for the call.
        let status = unsafe {
            (self.fns.run_compiled_model)(
                self.compiled.raw,
                SIGNATURE,
                self.input_handles.len(),
                self.input_handles.as_mut_ptr(),
                self.output_handles.len(),
                self.output_handles.as_mut_ptr(),
            )
        };
        let invoke = start.elapsed();
        check(status, "LiteRtRunCompiledModel")?;
        for (buffer, &to) in self.outputs.iter().zip(map) {
            let dst = &mut outputs[to];
            fits(dst.len(), buffer.size, "read output")?;
            self.with_host(buffer, kLiteRtTensorBufferLockModeRead, |host| {
                // SAFETY: the lock mapped at least `buffer.size >= dst.len()` readable bytes;
                // `dst` is Rust memory and cannot overlap LiteRT's mapping.
                unsafe { std::ptr::copy_nonoverlapping(host, dst.as_mut_ptr(), dst.len()) }
            })?;
        }
        Ok(invoke)
    }

    /// Lock `buffer` into host memory, let `copy` use the mapping, and unlock it again.
    fn with_host(
        &self,
        buffer: &Buffer,
        mode: c::TensorBufferLockMode,
        copy: impl FnOnce(*mut u8),
    ) -> Result<(), VisionError> {
        let mut host = null_mut();
        // SAFETY: the buffer is live and not locked (locks never outlive this function).
        let status = unsafe { (self.fns.lock_tensor_buffer)(buffer.handle.raw, &mut host, mode) };
        check(status, "LiteRtLockTensorBuffer")?;
        if !host.is_null() {
            copy(host.cast());
        }
        // SAFETY: locked just above, unlocked once.
        let status = unsafe { (self.fns.unlock_tensor_buffer)(buffer.handle.raw) };
        non_null(host, "LiteRtLockTensorBuffer")?;
        check(status, "LiteRtUnlockTensorBuffer")
    }
}

/// A tensor buffer and the size LiteRT allocated for it (it may pad).
struct Buffer {
    handle: Owned<c::TensorBuffer>,
    size: usize,
}

/// A LiteRT handle we created, destroyed once when dropped.
struct Owned<T: Handle> {
    raw: T,
    destroy: unsafe extern "C" fn(T),
}

impl<T: Handle> Owned<T> {
    /// Takes `raw`, just written by the create call `call`; a null handle is an error.
    fn new(
        raw: T,
        destroy: unsafe extern "C" fn(T),
        call: &'static str,
    ) -> Result<Self, VisionError> {
        Ok(Owned {
            raw: non_null(raw, call)?,
            destroy,
        })
    }
}

impl<T: Handle> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `raw` came from the create call that `destroy` undoes, is not null, and is
        // destroyed only here, once; whatever borrows it was dropped first (field order).
        unsafe { (self.destroy)(self.raw) }
    }
}

/// LiteRT's handles are raw pointers to opaque structs.
trait Handle: Copy {
    fn is_null(self) -> bool;
}

impl<T> Handle for *mut T {
    fn is_null(self) -> bool {
        <*mut T>::is_null(self)
    }
}

/// A LiteRT status as our error, naming the call that returned it.
/// How much of LiteRT's own logging reaches stderr, following ours: its INFO and WARNING lines
/// (accelerator probing, "NPU accelerator could not be loaded", ...) are noise in every CLI run
/// and service log unless someone asked for debug output (`LOG_LEVEL=DEBUG`, or `RUST_LOG`
/// naming this module); its errors always get through. The library exports no logger API
/// (`LiteRtSetMinLoggerSeverity` is internal), so the environment option is the one way in.
/// TFLite's own one-line "Created TensorFlow Lite XNNPACK delegate" notice is not LiteRT's logger
/// and is not covered by it.
fn litert_log_severity() -> i64 {
    if tracing::enabled!(tracing::Level::TRACE) {
        LITERT_LOG_VERBOSE
    } else if tracing::enabled!(tracing::Level::DEBUG) {
        LITERT_LOG_INFO
    } else {
        LITERT_LOG_ERROR
    }
}

/// The environment option that sets LiteRT's logger to `severity`.
fn min_logger_severity(severity: i64) -> c::EnvOption {
    // SAFETY: `LiteRtEnvOption` is plain C data (an enum tag and a tagged union of numbers and
    // pointers) for which all zeroes is a valid value (tag 0, type "none").
    let mut option: c::EnvOption = unsafe { std::mem::zeroed() };
    option.tag = ENV_OPTION_MIN_LOGGER_SEVERITY;
    option.value.type_ = ANY_TYPE_INT;
    option.value.__bindgen_anon_1.int_value = severity;
    option
}

fn check(status: c::Status, call: &'static str) -> Result<(), VisionError> {
    if status == kLiteRtStatusOk {
        return Ok(());
    }
    Err(VisionError::Runtime {
        context: call,
        message: format!("LiteRT status: {}", LiteRtStatusCode(status)),
    })
}

fn non_null<T: Handle>(raw: T, call: &'static str) -> Result<T, VisionError> {
    if raw.is_null() {
        return Err(VisionError::Runtime {
            context: call,
            message: "returned a null handle".into(),
        });
    }
    Ok(raw)
}

fn fits(len: usize, size: usize, context: &'static str) -> Result<(), VisionError> {
    if len > size {
        return Err(VisionError::Runtime {
            context,
            message: format!("{len} bytes do not fit the runtime's buffer of {size}"),
        });
    }
    Ok(())
}
