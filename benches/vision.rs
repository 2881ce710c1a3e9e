//! Vision benchmark: `cargo bench --bench vision`.
//!
//! Runs the real [`FaceEngine`] (LiteRT from `lib/<arch>/`, the models in `models/`) on two
//! 640x480 frames composed from the test photos (`tests/data/faces/johns`: one face, and five
//! faces 110..130 px wide on a grey canvas), on one CPU, and prints:
//! 1. per-stage times (convert, detect, align, embed, match against a gallery of 100 enrolled
//!    embeddings), with the runtime's invoke call timed alone inside detect and embed;
//! 2. frames per second on one core, and the share of a frame spent outside model invoke;
//! 3. the process's RSS with the models loaded and after the frames;
//! 4. the same models, frames and work through Python's `ai-edge-litert` Interpreter
//!    (`benches/vision_py.py`, `num_threads=1`, pinned to the same CPU), twice: pre-processing with
//!    numpy, and with OpenCV as FaceCV itself does (`--preproc opencv`: cv2.resize, cv2.warpAffine;
//!    `pip install opencv-python-headless==4.10.0.84`); and Rust fps / Python fps against each,
//!    with and without pre-processing.
//!
//! One CPU: the main thread is pinned with `sched_setaffinity` before the runtime is loaded, so
//! every thread LiteRT/XNNPACK creates later inherits that one-CPU mask. The per-thread CPU time
//! printed at the end shows which threads did the work.
//!
//! A plain `fn main` (no criterion): the figures are end-to-end and printed once.

#[path = "../tests/common/procfs.rs"]
mod procfs;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use facecv::vision::{Face, FaceEngine, Gallery, StageTimings, VisionConfig, MAX_FACES};
use image::imageops::{self, FilterType};
use image::{Rgb, RgbImage};
use serde_json::Value;

/// Frames measured per case, after `WARMUP` unmeasured ones (the Python side uses the same).
const ITERS: usize = 100;
const WARMUP: usize = 5;
const WIDTH: u32 = 640;
const HEIGHT: u32 = 480;
/// Enrolled embeddings the faces are matched against.
const GALLERY: usize = 100;
const TARGET_OUTSIDE_INVOKE: f64 = 10.0;
const TARGET_RSS_MB: f64 = 64.0;
const TARGET_SPEEDUP: f64 = 1.5;
/// Where the five faces go: (x, y, side) on the 640x480 canvas; the one-face frame uses the
/// third. No two overlap, and each keeps a grey margin (BlazeFace needs context around a face).
const PLACES: [(u32, u32, u32); 5] = [
    (40, 50, 110),
    (250, 40, 125),
    (455, 55, 120),
    (130, 290, 130),
    (390, 300, 115),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() -> Result<()> {
    let started = Instant::now();
    let load = procfs::load_average().map_or("?".into(), |l| format!("{l:.2}"));
    let cpu = pin_to_one_cpu()?;
    let threads_before = thread_names();

    // The people: each John's last photo goes into the frames, the other ten (and their mirror
    // images) into the gallery, so matching is a real recognition and not a lookup of itself.
    let people = people()?;
    let probes: Vec<(&str, &RgbImage)> = people
        .iter()
        .map(|(name, photos)| (name.as_str(), photos.last().expect("photos")))
        .collect();
    let one = compose(&probes[2..3], &PLACES[2..3]);
    let five = compose(&probes, &PLACES);
    let rss_start = memory();

    let mut config = VisionConfig {
        models_dir: root().join("models"),
        ..VisionConfig::default()
    };
    config.runtime.threads = 1; // one XNNPACK thread: the bench compares one core with one core
    let t = Instant::now();
    let mut engine = FaceEngine::new(config.clone()).context("loading the vision engine")?;
    let load_time = t.elapsed();
    let rss_loaded = memory();
    let threads_loaded = thread_names();
    let mut faces = heapless::Vec::<Face, MAX_FACES>::new();
    engine.analyze(&five.rgb, WIDTH, HEIGHT, &mut faces)?;
    let rss_first = memory();
    let threads_first = thread_names();

    let mut gallery: Gallery<String> = engine.new_gallery();
    'enrol: for mirror in [false, true] {
        for (name, photos) in &people {
            for img in &photos[..photos.len() - 1] {
                if gallery.len() == GALLERY {
                    break 'enrol;
                }
                let img = if mirror {
                    imageops::flip_horizontal(img)
                } else {
                    img.clone()
                };
                let e = engine
                    .embed_single_rgb(img.as_raw(), img.width(), img.height())
                    .with_context(|| format!("enrolling a photo of {name}"))?;
                gallery.enrol(name.clone(), e)?;
            }
        }
    }
    let rss_enrolled = memory();

    let cpu_before = thread_cpu();
    let r1 = measure(&mut engine, &gallery, &one)?;
    let rss_100 = memory();
    let r5 = measure(&mut engine, &gallery, &five)?;
    let rss_end = memory();
    let cpu_after = thread_cpu();
    let rust_time = started.elapsed();

    let py_started = Instant::now();
    let python = ["numpy", "opencv"].map(|pre| (pre, run_python(cpu, &[&one, &five], pre)));
    let py_time = py_started.elapsed();

    // ---- report ----
    println!(
        "FaceCV Edge vision benchmark (cargo bench --bench vision, {} build)",
        if cfg!(debug_assertions) {
            "DEBUG: figures meaningless"
        } else {
            "optimized"
        }
    );
    println!(
        "CPU: {} | {} cores online | bench pinned to CPU {cpu} | 640x480 RGB frames | {ITERS} frames per case after {WARMUP} warm-up",
        cpu_model(),
        num_cpus()
    );
    println!(
        "load average at start: {load} (1/5/15 min; other processes on this machine compete for CPU {cpu}: see CPU / wall)"
    );
    println!(
        "runtime: {} (CPU accelerator: XNNPACK), loaded with both models in {:.0} ms",
        engine.runtime_path().display(),
        ms(load_time)
    );
    println!(
        "models: detector {} | embedder {} ({}-d) | gallery {} enrolled embeddings (10 photos x 5 people + mirror images)",
        file_name(&config.detector_model()),
        file_name(&config.embedder_model()),
        engine.embedding_dim(),
        gallery.len()
    );
    println!();
    println!(
        "{:<32} {:>17}  {:>17}",
        "Rust, per frame (mean)", "1 face", "5 faces"
    );
    row("faces found / expected", &r1.found(1), &r5.found(5));
    row(
        "identified as the right John",
        &r1.identified(),
        &r5.identified(),
    );
    row_ms("convert (letterbox 192)", r1.t.convert, r5.t.convert);
    row_ms("detect (invoke+decode+NMS)", r1.t.detect, r5.t.detect);
    row_ms(
        "  of which detector invoke",
        r1.t.detect_invoke,
        r5.t.detect_invoke,
    );
    row_ms("align (all faces)", r1.t.align, r5.t.align);
    row_ms("embed (all faces)", r1.t.embed, r5.t.embed);
    row_ms(
        "  of which embedder invoke",
        r1.t.embed_invoke,
        r5.t.embed_invoke,
    );
    row(
        &format!("match vs {} (all faces)", gallery.len()),
        &format!("{:.1} us", us(r1.matching)),
        &format!("{:.1} us", us(r5.matching)),
    );
    row_ms("frame total (wall)", r1.frame, r5.frame);
    row(
        "frame median / p95",
        &format!("{:.2} / {:.2} ms", r1.median_ms, r1.p95_ms),
        &format!("{:.2} / {:.2} ms", r5.median_ms, r5.p95_ms),
    );
    row(
        "fps, 1 core (mean / median)",
        &format!("{:.1} / {:.1}", r1.fps(), 1e3 / r1.median_ms),
        &format!("{:.1} / {:.1}", r5.fps(), 1e3 / r5.median_ms),
    );
    row(
        "CPU time per frame",
        &format!("{:.2} ms", r1.cpu_ms),
        &format!("{:.2} ms", r5.cpu_ms),
    );
    row(
        "fps on a core of our own (CPU)",
        &format!("{:.1}", 1e3 / r1.cpu_ms),
        &format!("{:.1}", 1e3 / r5.cpu_ms),
    );
    row(
        &format!("outside invoke (<= {TARGET_OUTSIDE_INVOKE:.0}%)"),
        &pct_verdict(r1.outside_invoke_pct(), TARGET_OUTSIDE_INVOKE),
        &pct_verdict(r5.outside_invoke_pct(), TARGET_OUTSIDE_INVOKE),
    );
    row(
        "process CPU / wall",
        &format!("{:.2}", r1.cpu_over_wall),
        &format!("{:.2}", r5.cpu_over_wall),
    );
    row(
        "main thread CPU / wall",
        &format!("{:.2}", r1.main_over_wall),
        &format!("{:.2}", r5.main_over_wall),
    );
    row(
        "context switches vol/invol",
        &format!("{}/{}", r1.switches.0, r1.switches.1),
        &format!("{}/{}", r5.switches.0, r5.switches.1),
    );

    println!();
    println!(
        "{:<32} {:>9}  {:>9}",
        "Memory (this process)", "VmRSS", "VmHWM"
    );
    mem_row("photos + frames, no engine", rss_start);
    mem_row("engine + both models loaded", rss_loaded);
    mem_row("+ first 5-face frame", rss_first);
    mem_row("+ gallery enrolled", rss_enrolled);
    mem_row(&format!("after {ITERS} 1-face frames"), rss_100);
    mem_row(&format!("after {ITERS} 5-face frames too"), rss_end);
    println!(
        "RSS target <= {TARGET_RSS_MB:.0} MB with models loaded: {} (VmHWM of the whole bench \
         process, its photos, frames and gallery included)",
        verdict(rss_end.1 <= TARGET_RSS_MB, &format!("{:.1} MB", rss_end.1))
    );

    println!();
    println!(
        "Threads: {} before the engine, {} after loading it, {} after the first frame: {}",
        threads_before.len(),
        threads_loaded.len(),
        threads_first.len(),
        summarize_names(&thread_names())
    );
    if thread_names().len() == threads_before.len() {
        println!(
            "LiteRT/XNNPACK started no thread of its own: every invoke ran on the bench's pinned thread."
        );
    } else {
        println!(
            "LiteRT/XNNPACK started threads: they inherited the one-CPU mask, so they share CPU {cpu}."
        );
    }
    println!("CPU time per thread during the measured frames (all pinned to CPU {cpu}):");
    for (tid, name, ticks) in &cpu_after {
        let before = cpu_before
            .iter()
            .find(|(t, _, _)| t == tid)
            .map_or(0, |c| c.2);
        let spent = ticks.saturating_sub(before);
        if spent > 0 {
            println!("  {tid:>8} {name:<16} {:>8.0} ms", ticks_ms(spent));
        }
    }

    println!();
    for (pre, py) in python {
        match py {
            Ok(py) => report_python(&py, &r1, &r5)?,
            Err(e) => println!("Python ({pre}) comparison skipped: {e:#}"),
        }
        println!();
    }
    println!();
    println!(
        "Run time: Rust {:.1} s (enrolment included), Python {:.1} s",
        rust_time.as_secs_f64(),
        py_time.as_secs_f64()
    );
    Ok(())
}

/// One frame case measured over `ITERS` frames.
struct Run {
    /// Mean per-stage times.
    t: StageTimings,
    matching: Duration,
    frame: Duration,
    median_ms: f64,
    p95_ms: f64,
    /// Median over frames of the detector + embedder invoke time.
    invoke_median_ms: f64,
    /// Process CPU time per frame.
    cpu_ms: f64,
    faces: usize,
    right: usize,
    cpu_over_wall: f64,
    main_over_wall: f64,
    switches: (i64, i64),
}

impl Run {
    fn fps(&self) -> f64 {
        1.0 / self.frame.as_secs_f64()
    }
    fn invoke(&self) -> Duration {
        self.t.detect_invoke + self.t.embed_invoke
    }
    fn outside_invoke_pct(&self) -> f64 {
        100.0 * (1.0 - self.invoke().as_secs_f64() / self.frame.as_secs_f64())
    }
    fn found(&self, expected: usize) -> String {
        let mark = if self.faces == expected {
            ""
        } else {
            " MISMATCH"
        };
        format!("{} / {expected}{mark}", self.faces)
    }
    fn identified(&self) -> String {
        format!("{} / {}", self.right, self.faces)
    }
}

/// A composed frame and who is where in it.
struct Frame {
    rgb: Vec<u8>,
    /// (name, x1, y1, x2, y2) of each pasted photo.
    people: Vec<(String, [f32; 4])>,
}

/// Analyse `frame` `WARMUP + ITERS` times, matching every embedded face against `gallery`.
fn measure(engine: &mut FaceEngine, gallery: &Gallery<String>, frame: &Frame) -> Result<Run> {
    let mut faces = heapless::Vec::<Face, MAX_FACES>::new();
    let mut frames = Vec::with_capacity(ITERS);
    let mut invokes = Vec::with_capacity(ITERS);
    let mut sum = StageTimings::default();
    let mut matching = Duration::ZERO;
    let mut right = 0;
    let (mut wall, mut usage) = (Instant::now(), Usage::now());
    for i in 0..WARMUP + ITERS {
        if i == WARMUP {
            (wall, usage) = (Instant::now(), Usage::now());
        }
        let start = Instant::now();
        engine.analyze(&frame.rgb, WIDTH, HEIGHT, &mut faces)?;
        let analysed = Instant::now();
        right = 0;
        for face in &faces {
            if let Some(m) = face.embedding.as_ref().and_then(|e| gallery.identify(e)) {
                right += usize::from(is_at(&frame.people, m.id, face.bbox));
            }
        }
        let end = Instant::now();
        if i >= WARMUP {
            let t = engine.timings();
            sum.convert += t.convert;
            sum.detect += t.detect;
            sum.detect_invoke += t.detect_invoke;
            sum.align += t.align;
            sum.embed += t.embed;
            sum.embed_invoke += t.embed_invoke;
            sum.embedded += t.embedded;
            matching += end - analysed;
            frames.push(end - start);
            invokes.push(ms(t.detect_invoke + t.embed_invoke));
        }
    }
    let wall = wall.elapsed().as_secs_f64();
    let used = Usage::now().since(&usage);
    let n = ITERS as u32;
    let mut sorted: Vec<f64> = frames.iter().map(|d| ms(*d)).collect();
    sorted.sort_by(f64::total_cmp);
    invokes.sort_by(f64::total_cmp);
    Ok(Run {
        t: StageTimings {
            convert: sum.convert / n,
            detect: sum.detect / n,
            detect_invoke: sum.detect_invoke / n,
            align: sum.align / n,
            embed: sum.embed / n,
            embed_invoke: sum.embed_invoke / n,
            faces: faces.len(),
            embedded: sum.embedded / ITERS,
        },
        matching: matching / n,
        frame: frames.iter().sum::<Duration>() / n,
        median_ms: sorted[ITERS / 2],
        p95_ms: sorted[ITERS * 95 / 100],
        invoke_median_ms: invokes[ITERS / 2],
        cpu_ms: used.process_cpu * 1e3 / ITERS as f64,
        faces: faces.len(),
        right,
        cpu_over_wall: used.process_cpu / wall,
        main_over_wall: used.thread_cpu / wall,
        switches: used.switches,
    })
}

/// Whether the face at `bbox` lies on the photo of `name`.
fn is_at(people: &[(String, [f32; 4])], name: &str, bbox: [f32; 4]) -> bool {
    let (cx, cy) = ((bbox[0] + bbox[2]) / 2.0, (bbox[1] + bbox[3]) / 2.0);
    people
        .iter()
        .any(|(n, r)| n == name && cx > r[0] && cx < r[2] && cy > r[1] && cy < r[3])
}

/// Each John's photos, sorted by file name, decoded.
fn people() -> Result<Vec<(String, Vec<RgbImage>)>> {
    let dir = root().join("tests/data/faces/johns");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    dirs.sort();
    let mut out = Vec::new();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.sort();
        let photos = files
            .iter()
            .map(|f| Ok(image::open(f)?.into_rgb8()))
            .collect::<Result<Vec<_>>>()?;
        out.push((file_name(&d), photos));
    }
    if out.len() < PLACES.len() {
        bail!("need {} people in {}", PLACES.len(), dir.display());
    }
    Ok(out)
}

/// Paste each photo, scaled to its place's side, onto a mid-grey 640x480 canvas.
fn compose(photos: &[(&str, &RgbImage)], places: &[(u32, u32, u32)]) -> Frame {
    let mut canvas = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([128, 128, 128]));
    let mut people = Vec::new();
    for ((name, photo), &(x, y, side)) in photos.iter().zip(places) {
        let scaled = imageops::resize(*photo, side, side, FilterType::Triangle);
        imageops::replace(&mut canvas, &scaled, i64::from(x), i64::from(y));
        let r = [x, y, x + side, y + side].map(|v| v as f32);
        people.push((name.to_string(), r));
    }
    Frame {
        rgb: canvas.into_raw(),
        people,
    }
}

/// Pin this thread (and so every thread it creates from now on) to the last CPU it may use.
fn pin_to_one_cpu() -> Result<usize> {
    // SAFETY: cpu_set_t is plain data; the calls get its exact size and valid pointers.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        if libc::sched_getaffinity(0, size, &mut set) != 0 {
            bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
        }
        let cpu = (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .context("no CPU in the affinity mask")?;
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size, &set) != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
        Ok(cpu)
    }
}

/// CPU seconds of the process and of this thread, and context switches of the process.
struct Usage {
    process_cpu: f64,
    thread_cpu: f64,
    switches: (i64, i64),
}

impl Usage {
    fn now() -> Usage {
        let get = |who| {
            // SAFETY: getrusage fills the zeroed struct it is given.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            unsafe { libc::getrusage(who, &mut ru) };
            ru
        };
        let secs = |ru: &libc::rusage| {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
            tv(ru.ru_utime) + tv(ru.ru_stime)
        };
        let (p, t) = (get(libc::RUSAGE_SELF), get(libc::RUSAGE_THREAD));
        Usage {
            process_cpu: secs(&p),
            thread_cpu: secs(&t),
            switches: (p.ru_nvcsw, p.ru_nivcsw),
        }
    }

    fn since(&self, before: &Usage) -> Usage {
        Usage {
            process_cpu: self.process_cpu - before.process_cpu,
            thread_cpu: self.thread_cpu - before.thread_cpu,
            switches: (
                self.switches.0 - before.switches.0,
                self.switches.1 - before.switches.1,
            ),
        }
    }
}

/// (VmRSS, VmHWM) of this process in MB.
fn memory() -> (f64, f64) {
    let m = procfs::memory(procfs::Proc::Me);
    (m.rss_kib as f64 / 1024.0, m.hwm_kib as f64 / 1024.0)
}

/// (tid, name, utime + stime in clock ticks) of every thread of this process.
fn thread_cpu() -> Vec<(u32, String, u64)> {
    procfs::threads(procfs::Proc::Me)
        .into_iter()
        .map(|t| (t.tid, t.name, t.ticks))
        .collect()
}

fn thread_names() -> Vec<String> {
    thread_cpu().into_iter().map(|(_, name, _)| name).collect()
}

/// "vision-abc, 2 x foo" style summary of thread names.
fn summarize_names(names: &[String]) -> String {
    let mut uniq: Vec<(String, usize)> = Vec::new();
    for n in names {
        match uniq.iter_mut().find(|(u, _)| u == n) {
            Some((_, c)) => *c += 1,
            None => uniq.push((n.clone(), 1)),
        }
    }
    uniq.iter()
        .map(|(n, c)| {
            if *c > 1 {
                format!("{c} x {n}")
            } else {
                n.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ticks_ms(ticks: u64) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    ticks as f64 * 1000.0 / hz as f64
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn num_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as usize
}

/// Run `benches/vision_py.py` on the same frames, pinned to the same CPU, and parse its JSON.
/// `preproc` is `numpy` or `opencv` (FaceCV's own cv2.resize and cv2.warpAffine).
fn run_python(cpu: usize, frames: &[&Frame], preproc: &str) -> Result<Value> {
    let (import, install) = match preproc {
        "opencv" => (
            "import numpy, cv2, ai_edge_litert.interpreter",
            "pip install ai-edge-litert==2.3.0 numpy opencv-python-headless==4.10.0.84",
        ),
        _ => (
            "import numpy, ai_edge_litert.interpreter",
            "pip install ai-edge-litert==2.3.0 numpy",
        ),
    };
    let check = Command::new("python3").args(["-c", import]).output();
    match check {
        Err(e) => bail!("python3 not found ({e}); install Python 3.11 and then: {install}"),
        Ok(o) if !o.status.success() => {
            bail!(
            "python3 cannot import what the {preproc} variant needs ({}); install with: {install}",
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("").trim()
        )
        }
        Ok(_) => {}
    }
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new("python3");
    cmd.current_dir(root())
        .arg(root().join("benches/vision_py.py"))
        .args([
            "--iters",
            &ITERS.to_string(),
            "--warmup",
            &WARMUP.to_string(),
        ])
        .args(["--gallery", &GALLERY.to_string(), "--threads", "1"])
        .args(["--cpu", &cpu.to_string()])
        .args(["--preproc", preproc]);
    for (i, f) in frames.iter().enumerate() {
        let path = dir.path().join(format!("frame{i}.rgb"));
        std::fs::write(&path, &f.rgb)?;
        cmd.arg("--frame")
            .arg(format!("{}:{WIDTH}:{HEIGHT}", path.display()));
    }
    let out = cmd.output().context("running benches/vision_py.py")?;
    if !out.status.success() {
        bail!(
            "benches/vision_py.py failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(json).with_context(|| format!("parsing vision_py.py output: {json}"))
}

fn report_python(py: &Value, r1: &Run, r5: &Run) -> Result<()> {
    let results = py["results"].as_array().context("no results")?;
    let [p1, p5] = results.as_slice() else {
        bail!("expected two results from vision_py.py");
    };
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let stage = |v: &Value, k: &str| v["stages_ms"][k].as_f64().unwrap_or(f64::NAN);
    let preproc = match py["opencv"].as_str() {
        Some(v) => format!("OpenCV {v} pre-processing"),
        None => "numpy pre-processing".to_string(),
    };
    println!(
        "Python {} + numpy {} + ai-edge-litert {}, {preproc}: Interpreter(num_threads={}), pinned to CPU {}, same frames and models",
        py["python"].as_str().unwrap_or("?"),
        py["numpy"].as_str().unwrap_or("?"),
        py["litert"].as_str().unwrap_or("?"),
        py["num_threads"],
        py["affinity"].as_array().map(|a| a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")).unwrap_or_default(),
    );
    println!(
        "{:<32} {:>17}  {:>17}",
        format!(
            "Python ({}), per frame (mean)",
            py["preproc"].as_str().unwrap_or("?")
        ),
        "1 face",
        "5 faces"
    );
    let found = |v: &Value, rust: &Run| {
        let n = f(v, "faces") as usize;
        let e = f(v, "embedded_per_frame");
        let mark = if n == rust.faces && e == rust.t.embedded as f64 {
            ""
        } else {
            " MISMATCH"
        };
        format!("{n} ({e:.0} embedded){mark}")
    };
    row("faces found (embedded)", &found(p1, r1), &found(p5, r5));
    for (label, key) in [
        ("convert (letterbox)", "convert"),
        ("detect (invoke+decode+NMS)", "detect"),
    ] {
        row_f(label, stage(p1, key), stage(p5, key), "ms");
    }
    row_f(
        "  of which detector invoke",
        f(p1, "detect_invoke_ms"),
        f(p5, "detect_invoke_ms"),
        "ms",
    );
    row_f("align (warp)", stage(p1, "align"), stage(p5, "align"), "ms");
    row_f(
        "embed (all faces)",
        stage(p1, "embed"),
        stage(p5, "embed"),
        "ms",
    );
    row_f(
        "  of which embedder invoke",
        f(p1, "embed_invoke_ms"),
        f(p5, "embed_invoke_ms"),
        "ms",
    );
    row(
        "match (numpy, all faces)",
        &format!("{:.1} us", stage(p1, "match") * 1e3),
        &format!("{:.1} us", stage(p5, "match") * 1e3),
    );
    row_f(
        "frame total (wall)",
        f(p1, "frame_ms"),
        f(p5, "frame_ms"),
        "ms",
    );
    let spread = |v: &Value| {
        format!(
            "{:.2} / {:.2} ms",
            f(v, "frame_ms_median"),
            f(v, "frame_ms_p95")
        )
    };
    row("frame median / p95", &spread(p1), &spread(p5));
    let fps = |v: &Value| {
        format!(
            "{:.1} / {:.1}",
            1e3 / f(v, "frame_ms"),
            1e3 / f(v, "frame_ms_median")
        )
    };
    row("fps, 1 core (mean / median)", &fps(p1), &fps(p5));
    row_f("CPU time per frame", f(p1, "cpu_ms"), f(p5, "cpu_ms"), "ms");
    row(
        "fps on a core of our own (CPU)",
        &format!("{:.1}", 1e3 / f(p1, "cpu_ms")),
        &format!("{:.1}", 1e3 / f(p5, "cpu_ms")),
    );
    let outside = |v: &Value| 100.0 * (1.0 - f(v, "invoke_ms") / f(v, "frame_ms"));
    row(
        "outside invoke",
        &format!("{:.1}%", outside(p1)),
        &format!("{:.1}%", outside(p5)),
    );
    row(
        "process CPU / wall",
        &format!("{:.2}", f(p1, "cpu_over_wall")),
        &format!("{:.2}", f(p5, "cpu_over_wall")),
    );
    let kb = |k: &str| py[k].as_f64().unwrap_or(f64::NAN) / 1024.0;
    println!(
        "Python process: {} threads; VmRSS {:.1} MB with both models loaded, {:.1} MB at the end, VmHWM {:.1} MB",
        py["threads"],
        kb("rss_loaded_kb"),
        kb("rss_end_kb"),
        kb("hwm_kb")
    );
    println!();
    println!(
        "{:<32} {:>17}  {:>17}",
        format!("Rust fps / Python fps (>= {TARGET_SPEEDUP:.1}x)"),
        "1 face",
        "5 faces"
    );
    // Python time / Rust time per frame = Rust fps / Python fps.
    let ratio = |py: f64, rust: f64| {
        let r = py / rust;
        verdict(r >= TARGET_SPEEDUP, &format!("{r:.2}x"))
    };
    row(
        "whole frame, mean wall",
        &ratio(f(p1, "frame_ms"), ms(r1.frame)),
        &ratio(f(p5, "frame_ms"), ms(r5.frame)),
    );
    row(
        "whole frame, median wall",
        &ratio(f(p1, "frame_ms_median"), r1.median_ms),
        &ratio(f(p5, "frame_ms_median"), r5.median_ms),
    );
    row(
        "whole frame, CPU time",
        &ratio(f(p1, "cpu_ms"), r1.cpu_ms),
        &ratio(f(p5, "cpu_ms"), r5.cpu_ms),
    );
    row(
        "invoke only, median",
        &ratio(f(p1, "invoke_ms_median"), r1.invoke_median_ms),
        &ratio(f(p5, "invoke_ms_median"), r5.invoke_median_ms),
    );
    row(
        "  Rust / Python invoke ms",
        &format!(
            "{:.2} / {:.2}",
            r1.invoke_median_ms,
            f(p1, "invoke_ms_median")
        ),
        &format!(
            "{:.2} / {:.2}",
            r5.invoke_median_ms,
            f(p5, "invoke_ms_median")
        ),
    );
    Ok(())
}

fn row(label: &str, a: &str, b: &str) {
    println!("  {label:<30} {a:>17}  {b:>17}");
}

fn row_ms(label: &str, a: Duration, b: Duration) {
    row(
        label,
        &format!("{:.2} ms", ms(a)),
        &format!("{:.2} ms", ms(b)),
    );
}

fn row_f(label: &str, a: f64, b: f64, unit: &str) {
    row(label, &format!("{a:.2} {unit}"), &format!("{b:.2} {unit}"));
}

fn mem_row(label: &str, (rss, hwm): (f64, f64)) {
    println!("  {label:<30} {rss:>6.1} MB  {hwm:>6.1} MB");
}

fn pct_verdict(pct: f64, target: f64) -> String {
    verdict(pct <= target, &format!("{pct:.1}%"))
}

fn verdict(ok: bool, value: &str) -> String {
    if ok {
        format!("{value} ok")
    } else {
        format!("{value} MISS")
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
