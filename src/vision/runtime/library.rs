//! Where the TFLite runtime library is: the config's path, `FACECV_LITERT_LIB`, or a search.
//!
//! Only finding the file lives here; loading it is [`super::Runtime::load`]. An explicit path is
//! used as given, so a typo is reported rather than papered over by a library found elsewhere.

use std::path::{Path, PathBuf};

use crate::vision::VisionError;

/// Environment variable that names the runtime library, checked after the config's own path.
pub const LIBRARY_ENV: &str = "FACECV_LITERT_LIB";

/// File names tried in each folder, LiteRT first.
const LIBRARY_NAMES: &[&str] = &["libLiteRt.so", "libtensorflowlite_c.so"];

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
    fn the_search_path_starts_beside_the_executable_and_ends_in_site_packages() {
        let dirs = search_path();
        let exe_dir = std::env::current_exe().unwrap();
        assert_eq!(dirs[0], exe_dir.parent().unwrap());
        assert!(dirs
            .iter()
            .any(|d| d.ends_with(Path::new("lib").join(std::env::consts::ARCH))));
    }
}
