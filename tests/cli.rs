//! The `facecv` command line as a newcomer first meets it: the real binary, run from a folder
//! outside the checkout, with the real runtime and models. Its answer must not be buried under
//! LiteRT's own logging, and it must find the models as the installed binary does, or say where
//! it looked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn photo() -> PathBuf {
    root().join("tests/data/faces/misc/biden.jpg")
}

/// `facecv ARGS` run in `cwd`, with `LOG_LEVEL` as given and no other logging variable.
fn facecv(cwd: &Path, log_level: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_facecv"));
    cmd.current_dir(cwd)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOG_LEVEL")
        .env_remove("FACECV_CONFIG");
    if let Some(level) = log_level {
        cmd.env("LOG_LEVEL", level);
    }
    cmd.output().expect("running facecv")
}

/// Lines of LiteRT's logger: `INFO: [environment.cc:36] Creating LiteRT environment ...`.
fn litert_log_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| {
            ["INFO: [", "WARNING: [", "VERBOSE: ["]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect()
}

#[test]
fn detect_from_another_folder_finds_the_models_and_keeps_litert_quiet() {
    let elsewhere = tempfile::tempdir().unwrap();
    let photo = photo();
    let out = facecv(elsewhere.path(), None, &["detect", photo.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("face(s)"), "{stdout}");
    let noise = litert_log_lines(&stderr);
    assert!(
        noise.is_empty(),
        "LiteRT's INFO/WARNING logging at the default level:\n{}",
        noise.join("\n")
    );
}

#[test]
fn log_level_debug_lets_litert_logging_through() {
    let elsewhere = tempfile::tempdir().unwrap();
    let photo = photo();
    let out = facecv(
        elsewhere.path(),
        Some("DEBUG"),
        &["detect", photo.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Creating LiteRT environment"),
        "LOG_LEVEL=DEBUG should show LiteRT's own logging:\n{stderr}"
    );
}

#[test]
fn a_model_that_is_not_found_is_reported_once_with_where_it_was_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("facecv.toml");
    std::fs::write(&config, "[vision]\nmodels_dir = \"no-such-folder\"\n").unwrap();
    let photo = photo();
    let out = facecv(
        dir.path(),
        None,
        &[
            "detect",
            photo.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("cannot read model no-such-folder/blazeface_full_int8.tflite"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause once:\n{stderr}"
    );
    let cwd = dir.path().canonicalize().unwrap();
    assert!(
        stderr.contains(&format!("working directory {}", cwd.display()))
            || stderr.contains(&format!("working directory {}", dir.path().display())),
        "{stderr}"
    );
    // Where the default `vision.models_dir` searches, ending with this checkout's models.
    assert!(
        stderr.contains(&root().join("models").display().to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("/usr/share/facecv/models"), "{stderr}");
}
