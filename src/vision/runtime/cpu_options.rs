//! XNNPACK's thread count on LiteRT's CompiledModel path.
//!
//! LiteRT (2.x) reads CPU settings from an "opaque options" item attached to the compilation
//! options: identifier `xnnpack`, payload a NUL-terminated TOML text (`num_threads = 4`), which its
//! CPU accelerator parses when it creates the XNNPACK delegate. Without that item XNNPACK runs on
//! one thread, whatever `vision.runtime.threads` says. The helpers that build the item
//! (`LrtCreateCpuOptions` and friends) live in LiteRT's C++ SDK, not in `libLiteRt.so`, but the
//! library exports the generic `LiteRtCreateOpaqueOptions` / `LiteRtAddOpaqueOptions`, so we build
//! the item ourselves and attach it to the options `litert.rs` creates. `edgefirst-tflite-sys`'s
//! function table lacks these three functions, so they are resolved here, from the library the
//! runtime already loaded. The vision tests count XNNPACK's worker threads to prove the count
//! arrives.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::Path;

use edgefirst_tflite_sys::litert as c;

use crate::vision::VisionError;

/// The identifier LiteRT's CPU accelerator looks its options up by.
const CPU_OPTIONS_ID: &std::ffi::CStr = c"xnnpack";

// The C declarations, from `litert/c/litert_opaque_options.h` and `litert/c/litert_options.h`
// (identical from LiteRT v2.1.6 to its current `main`); `LiteRtOpaqueOptions` is a pointer to an
// opaque struct, `LiteRtStatus` a C enum (an int, 0 for ok):
//
//   LiteRtStatus LiteRtCreateOpaqueOptions(const char* payload_identifier, void* payload_data,
//       void (*payload_destructor)(void* payload_data), LiteRtOpaqueOptions* options);
//   void LiteRtDestroyOpaqueOptions(LiteRtOpaqueOptions options);
//   LiteRtStatus LiteRtAddOpaqueOptions(LiteRtOptions options,
//       LiteRtOpaqueOptions opaque_options);  // takes ownership of `opaque_options`
type PayloadDeleter = unsafe extern "C" fn(*mut c_void);
type CreateOpaque = unsafe extern "C" fn(
    *const c_char,
    *mut c_void,
    Option<PayloadDeleter>,
    *mut *mut c_void,
) -> c_int;
type AddOpaque = unsafe extern "C" fn(c::Options, *mut c_void) -> c_int;
type DestroyOpaque = unsafe extern "C" fn(*mut c_void);

/// The three opaque-options entry points of a loaded `libLiteRt.so`.
pub(super) struct OpaqueOptionsApi {
    create: CreateOpaque,
    add: AddOpaque,
    destroy: DestroyOpaque,
    /// Keeps the symbols above mapped (the runtime is never unloaded anyway).
    _lib: libloading::Library,
}

impl OpaqueOptionsApi {
    /// Resolve the entry points from the library at `path`, already loaded by the runtime (this
    /// only takes another reference to it). `None` when the library lacks them.
    pub(super) fn load(path: &Path) -> Option<Self> {
        // SAFETY: the library is already loaded and initialised by `edgefirst_tflite::Library`;
        // opening it again only bumps its reference count.
        let lib = unsafe { libloading::Library::new(path) }.ok()?;
        // SAFETY: the types above are those of the C declarations quoted with them.
        unsafe {
            let create = *lib
                .get::<CreateOpaque>(b"LiteRtCreateOpaqueOptions\0")
                .ok()?;
            let add = *lib.get::<AddOpaque>(b"LiteRtAddOpaqueOptions\0").ok()?;
            let destroy = *lib
                .get::<DestroyOpaque>(b"LiteRtDestroyOpaqueOptions\0")
                .ok()?;
            Some(OpaqueOptionsApi {
                create,
                add,
                destroy,
                _lib: lib,
            })
        }
    }

    /// Attach `num_threads = threads` for the CPU accelerator to `options`, a live
    /// `LiteRtOptions` the caller owns (and destroys, with the item, after compiling).
    pub(super) fn set_cpu_threads(
        &self,
        options: c::Options,
        threads: u8,
    ) -> Result<(), VisionError> {
        let payload = CString::new(format!("num_threads = {threads}\n"))
            .expect("no NUL in a formatted number")
            .into_raw();
        let mut opaque: *mut c_void = std::ptr::null_mut();
        // SAFETY: the identifier is a static C string; the payload is ours and handed over with
        // its deleter, which LiteRT calls once when the options are destroyed.
        let status = unsafe {
            (self.create)(
                CPU_OPTIONS_ID.as_ptr(),
                payload.cast(),
                Some(free_payload),
                &mut opaque,
            )
        };
        if status != 0 || opaque.is_null() {
            // SAFETY: LiteRT did not take the payload; it is still ours to free.
            unsafe { free_payload(payload.cast()) };
            return Err(opaque_err("LiteRtCreateOpaqueOptions", status));
        }
        // SAFETY: `options` is a live LiteRtOptions (the caller's); on success the options own
        // the item (and free it with themselves), on failure we still do.
        let status = unsafe { (self.add)(options, opaque) };
        if status != 0 {
            // SAFETY: not attached, so still ours.
            unsafe { (self.destroy)(opaque) };
            return Err(opaque_err("LiteRtAddOpaqueOptions", status));
        }
        Ok(())
    }
}

/// Frees a payload made by `CString::into_raw` above.
unsafe extern "C" fn free_payload(payload: *mut c_void) {
    if !payload.is_null() {
        // SAFETY: only ever called with the pointer `set_cpu_threads` made by `into_raw`.
        drop(unsafe { CString::from_raw(payload.cast()) });
    }
}

fn opaque_err(call: &'static str, status: c_int) -> VisionError {
    VisionError::Runtime {
        context: "vision.runtime.threads",
        message: format!("{call} failed with LiteRT status {status}"),
    }
}
