//! The runtime settings do what the config says: `vision.runtime.threads` reaches XNNPACK on
//! LiteRT and the interpreter's thread pools on the classic TFLite C API, and `vision.runtime.external_delegate` loads a real
//! delegate plug-in by path, with its options, without changing what the models compute.
//!
//! Real parts only: LiteRT's `libLiteRt.so` (`scripts/fetch-litert.sh`), TFLite 2.9's
//! `libtensorflowlite_c.so` and headers (`scripts/fetch-tflite-c.sh`), the shipped models, and a
//! delegate built here with the C compiler from `tests/data/delegate/probe_delegate.c`.
//!
//! Threads are counted, not timed: a thread started by the runtime takes the name of the thread
//! that started it, and the test harness names each test's thread after the test, so the workers
//! this test's models start are the tasks of the process that carry this thread's name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use facecv::vision::{
    Embedding, ExternalDelegate, Face, FaceEngine, VisionConfig, VisionError, MAX_FACES,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn lib_dir() -> PathBuf {
    root().join("lib").join(std::env::consts::ARCH)
}

/// The classic library, or `None` (with a loud note) on a machine that has not fetched it. CI
/// fetches it (scripts/test.sh), so there its absence is a failure, not a skip.
fn classic_library() -> Option<PathBuf> {
    let path = lib_dir().join("libtensorflowlite_c.so");
    if path.is_file() {
        return Some(path);
    }
    let note = format!(
        "{} is missing: run scripts/fetch-tflite-c.sh to test the classic TFLite API",
        path.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{note}");
    eprintln!("\n*** SKIPPED: {note} ***\n");
    None
}

fn config(library: &Path, threads: u8, embedder: &str) -> VisionConfig {
    let mut c = VisionConfig {
        models_dir: root().join("models"),
        ..VisionConfig::default()
    };
    c.runtime.library = Some(library.to_path_buf());
    c.runtime.threads = threads;
    c.embedder.model = Some(embedder.into());
    c
}

fn engine(c: VisionConfig) -> FaceEngine {
    FaceEngine::new(c).unwrap_or_else(|e| panic!("engine: {e}"))
}

const F32_EMBEDDER: &str = "mobilefacenet_expo_f32.tflite";
const INT8_EMBEDDER: &str = "mobilefacenet_expo_int8.tflite";

/// Tasks of this process named like the calling thread (the caller included).
fn threads_named_like_me() -> usize {
    let me = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| *comm == me)
        .count()
}

/// The faces of the test portrait, as the engine sees them.
fn analyse(eng: &mut FaceEngine) -> heapless::Vec<Face, MAX_FACES> {
    let bytes = std::fs::read(root().join("tests/data/faces/misc/astronaut.png")).unwrap();
    let (rgb, w, h) = facecv::vision::decode_image(&bytes, &Default::default()).unwrap();
    let mut faces = heapless::Vec::new();
    eng.analyze(&rgb, w, h, &mut faces)
        .unwrap_or_else(|e| panic!("analyze: {e}"));
    assert_eq!(faces.len(), 1, "one face in the portrait");
    faces
}

fn embedding(faces: &[Face]) -> &Embedding {
    faces[0]
        .embedding
        .as_ref()
        .expect("the portrait's face is embedded")
}

/// Workers the engine's two models (detector, embedder) start under `config`, counted after
/// compiling and after one frame (some runtimes start their pools lazily).
fn workers_started(config: VisionConfig) -> usize {
    let before = threads_named_like_me();
    let mut eng = engine(config);
    analyse(&mut eng);
    threads_named_like_me() - before
}

#[test]
fn litert_threads_reach_xnnpack() {
    let lib = lib_dir().join("libLiteRt.so");
    let one = workers_started(config(&lib, 1, F32_EMBEDDER));
    let four = workers_started(config(&lib, 4, F32_EMBEDDER));
    println!("LiteRT: threads=1 started {one} workers, threads=4 started {four}");
    // XNNPACK's pool runs on the caller plus threads-1 workers, one pool per model.
    assert_eq!(one, 0);
    assert_eq!(four, 2 * 3);
}

#[test]
fn classic_threads_reach_the_interpreter() {
    let Some(lib) = classic_library() else { return };
    let one = workers_started(config(&lib, 1, INT8_EMBEDDER));
    let four = workers_started(config(&lib, 4, INT8_EMBEDDER));
    println!("classic: threads=1 started {one} workers, threads=4 started {four}");
    // TFLite 2.9 runs on its built-in kernels (see vision/runtime/classic.rs on XNNPACK's ABI),
    // whose thread pools also run on the caller plus threads-1 workers, at least one pool per
    // model.
    assert_eq!(one, 0);
    assert!(four >= 2 * 3, "{four}");
}

#[test]
fn classic_and_litert_see_the_same_face() {
    let Some(classic) = classic_library() else {
        return;
    };
    // The float embedder is one TFLite 2.9's XNNPACK refuses: it runs on TFLite's own kernels.
    let a = analyse(&mut engine(config(&classic, 2, F32_EMBEDDER)));
    let b = analyse(&mut engine(config(
        &lib_dir().join("libLiteRt.so"),
        2,
        F32_EMBEDDER,
    )));
    for (x, y) in a[0].bbox.iter().zip(b[0].bbox) {
        assert!((x - y).abs() < 2.0, "{:?} vs {:?}", a[0].bbox, b[0].bbox);
    }
    // Not bit-equal: the two detectors' int8 kernels round differently, which moves the aligned
    // crop by a fraction of a pixel. The same person by a wide margin (the match threshold is
    // 0.55), which a runtime that mis-ran a model would not give.
    let cos = embedding(&a).cosine(embedding(&b));
    println!("classic vs LiteRT embedding cosine: {cos}");
    assert!(cos > 0.95, "{cos}");
}

/// Compile C `source` into a shared library in `dir`, with the fetched TFLite headers.
fn build_so(dir: &Path, name: &str, source: &Path) -> PathBuf {
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-I"])
        .arg(lib_dir().join("include"))
        .arg("-o")
        .arg(&out)
        .arg(source)
        .status()
        .unwrap_or_else(|e| panic!("{cc}: {e}"));
    assert!(status.success(), "{cc} failed on {}", source.display());
    out
}

fn probe_delegate(dir: &Path) -> PathBuf {
    build_so(
        dir,
        "libprobe_delegate.so",
        &root().join("tests/data/delegate/probe_delegate.c"),
    )
}

fn with_delegate(mut c: VisionConfig, path: &Path, options: &[(&str, &str)]) -> VisionConfig {
    c.runtime.external_delegate = Some(ExternalDelegate {
        path: path.to_path_buf(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    });
    c
}

#[test]
fn an_external_delegate_is_loaded_with_its_options_and_changes_nothing() {
    let Some(lib) = classic_library() else { return };
    let dir = tempfile::tempdir().unwrap();
    let so = probe_delegate(dir.path());
    let log = dir.path().join("probe.log");
    let log_opt = log.to_str().unwrap();

    let plain = analyse(&mut engine(config(&lib, 2, INT8_EMBEDDER)));
    let mut eng = engine(with_delegate(
        config(&lib, 2, INT8_EMBEDDER),
        &so,
        &[("log", log_opt), ("mode", "probe")],
    ));
    let delegated = analyse(&mut eng);
    drop(eng);

    // The delegate claimed no node, so TFLite's built-in kernels ran the models (XNNPACK ran
    // them in `plain`): the same face, the same person, up to the kernels' int8 rounding.
    for (x, y) in plain[0].bbox.iter().zip(delegated[0].bbox) {
        assert!(
            (x - y).abs() < 2.0,
            "{:?} vs {:?}",
            plain[0].bbox,
            delegated[0].bbox
        );
    }
    let cos = embedding(&plain).cosine(embedding(&delegated));
    println!("with and without the delegate, embedding cosine: {cos}");
    assert!(cos > 0.95, "{cos}");

    let text = std::fs::read_to_string(&log).expect("the delegate wrote its log");
    println!("{text}");
    let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    // One delegate per model: the detector's and the embedder's.
    assert_eq!(count(&format!("option log={log_opt}")), 2, "{text}");
    assert_eq!(count("option mode=probe"), 2, "{text}");
    assert_eq!(count("created"), 2, "{text}");
    assert_eq!(count("destroyed"), 2, "{text}");
    let prepared: Vec<usize> = text
        .lines()
        .filter_map(|l| l.strip_prefix("prepare nodes="))
        .map(|n| n.parse().unwrap())
        .collect();
    assert_eq!(prepared.len(), 2, "{text}");
    assert!(prepared.iter().all(|&n| n > 10), "{prepared:?}");
}

/// The error for a delegate that cannot be used names the file and the config key.
fn assert_delegate_error(err: VisionError, path: &Path, why: &str) {
    let msg = err.to_string();
    assert!(matches!(err, VisionError::DelegateLoad { .. }), "{err:?}");
    assert!(
        msg.contains("vision.runtime.external_delegate.path"),
        "{msg}"
    );
    assert!(msg.contains(path.to_str().unwrap()), "{msg}");
    assert!(msg.contains(why), "{msg}");
}

#[test]
fn an_unusable_external_delegate_is_refused_by_name() {
    let Some(lib) = classic_library() else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = || config(&lib, 1, INT8_EMBEDDER);

    let missing = dir.path().join("libnot_there.so");
    let err = FaceEngine::new(with_delegate(base(), &missing, &[])).unwrap_err();
    assert_delegate_error(err, &missing, "no such file");

    let plain_c = dir.path().join("plain.c");
    std::fs::write(&plain_c, "int not_a_delegate(void) { return 1; }\n").unwrap();
    let plain = build_so(dir.path(), "libplain.so", &plain_c);
    let err = FaceEngine::new(with_delegate(base(), &plain, &[])).unwrap_err();
    assert_delegate_error(err, &plain, "does not export tflite_plugin_create_delegate");

    let so = probe_delegate(dir.path());
    let log = dir.path().join("probe.log");
    let log_opt = log.to_str().unwrap();
    let err = FaceEngine::new(with_delegate(
        base(),
        &so,
        &[("log", log_opt), ("fail", "create")],
    ))
    .unwrap_err();
    assert_delegate_error(err, &so, "null");
    assert!(std::fs::read_to_string(&log)
        .unwrap()
        .contains("create refused"));

    let err = FaceEngine::new(with_delegate(
        base(),
        &so,
        &[("log", log_opt), ("fail", "prepare")],
    ))
    .unwrap_err();
    assert_delegate_error(err, &so, "could not be built with it");
}
