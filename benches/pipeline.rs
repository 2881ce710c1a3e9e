//! What the camera path costs per analysed frame as more people stand in view, how soon a face is
//! named, and what decoding frames that are never analysed costs: the figures issue 13 is judged
//! by (5 enrolled faces at most 1.5x the CPU of one).
//!
//! `cargo bench --bench pipeline` starts the real binary (bench profile), enrols five Johns of
//! `tests/data/faces/johns` over the API (photos 0-2 each) and, one after another, adds a camera
//! playing a looped file of their held-out photos (640x480, people standing and drifting a pixel
//! a frame), analysed at 10 fps:
//! - y4m with 0, 1 and 5 enrolled faces;
//! - MJPEG with 1 face, the file unpaced and paced at 30 fps (frames the camera replaces before
//!   analysis still cost their decode unless the camera decodes only what it analyses).
//!
//! For each it waits until every face is named (or 15 s), then measures the process's CPU
//! (utime + stime from `/proc/<pid>/stat`) over a window divided by the camera's
//! `frames_analysed` delta, and reads the camera's `face_recognized` events from the event log:
//! how many per person, and `metadata.tracks[].frames` of the first (frames from the face's
//! appearance to its naming; `-` where the binary does not say).
//!
//! Comparable figures: the binary runs on one CPU (affinity set in the child before exec, so
//! every thread it creates inherits it) with `vision.runtime.threads = 1`. Nothing is dialled:
//! no webhook, no MQTT. `-- --seconds N` sets the window (default 12; whole run about 75 s).

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/common/video.rs"]
mod video;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use image::RgbImage;
use serde_json::{json, Value};

/// The rate every camera is analysed at.
const FPS: u32 = 10;
/// Frames of each looped file: 4 s, long enough that the loop's seam is rare.
const LOOP_FRAMES: i64 = 40;
const PEOPLE: [&str; 5] = [
    "John_Salley",
    "John_Savage",
    "John_Schneider",
    "John_Shimkus",
    "John_Simm",
];
/// The goal: 5 enrolled faces cost at most this many times one.
const GOAL_RATIO: f64 = 1.5;

struct Scenario {
    name: &'static str,
    file: PathBuf,
    /// The file source's pace (0: unpaced).
    source_fps: u32,
    faces: usize,
}

struct Row {
    name: &'static str,
    analysed_per_s: f64,
    cpu_ms_per_frame: f64,
    recognized: BTreeMap<String, usize>,
    first_frames: BTreeMap<String, Option<u64>>,
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse().expect("--seconds N"))
        .unwrap_or(12);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let scenarios = write_videos(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("facecv.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\nmedia_dir = \"{}\"\n\n[storage]\ndir = \"{}\"\n\n\
             [vision]\nmodels_dir = \"{}\"\n\n[vision.runtime]\nthreads = 1\n",
            dir.path().display(),
            dir.path().join("store").display(),
            video::root().join("models").display(),
        ),
    )
    .expect("write the config");
    let cpu = last_allowed_cpu();
    let mut command = Command::new(env!("CARGO_BIN_EXE_facecv"));
    command
        .args(["serve", "--config"])
        .arg(&config)
        .env("LOG_LEVEL", "WARNING")
        .stdout(Stdio::null());
    // SAFETY: runs in the forked child before exec and calls only sched_setaffinity, a plain
    // system call (async-signal-safe), on a mask built before the fork.
    unsafe {
        command.pre_exec(move || pin_to(cpu));
    }
    let mut child = command.spawn().expect("start facecv");
    let pid = child.id();
    let result = std::panic::catch_unwind(|| run(port, pid, cpu, seconds, &scenarios));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn run(port: u16, pid: u32, cpu: usize, seconds: u64, scenarios: &[Scenario]) {
    wait_for_health(port);
    for person in PEOPLE {
        enrol(port, person);
    }
    let mut rows = Vec::new();
    for s in scenarios {
        rows.push(measure(port, pid, seconds, s));
    }
    print_table(cpu, seconds, &rows);
}

/// The looped files of every scenario, in `dir` (the binary's `api.media_dir`).
fn write_videos(dir: &Path) -> Vec<Scenario> {
    let held_out = |person: &str| video::photos_of(person)[5].clone();
    // A standing person drifts: right a pixel a frame for half the loop, then back, so the loop
    // closes without a jump.
    let drift = |n: i64| {
        if n < LOOP_FRAMES / 2 {
            n
        } else {
            LOOP_FRAMES - n
        }
    };
    let one: Vec<(PathBuf, u32, (i64, i64), i64)> = vec![(held_out(PEOPLE[0]), 170, (235, 150), 1)];
    let five: Vec<(PathBuf, u32, (i64, i64), i64)> = [
        (20, 40, 1),
        (240, 40, -1),
        (460, 40, 1),
        (130, 270, -1),
        (350, 270, 1),
    ]
    .iter()
    .zip(PEOPLE)
    .map(|(&(x, y, dir), p)| (held_out(p), 140, (x + 10, y), dir))
    .collect();
    let frames = |people: &[(PathBuf, u32, (i64, i64), i64)]| -> Vec<RgbImage> {
        (0..LOOP_FRAMES)
            .map(|n| {
                let placed: Vec<(&Path, u32, (i64, i64))> = people
                    .iter()
                    .map(|(p, side, (x, y), d)| (p.as_path(), *side, (x + d * drift(n), *y)))
                    .collect();
                video::scene((640, 480), &placed)
            })
            .collect()
    };
    let (none, one, five) = (frames(&[]), frames(&one), frames(&five));
    let write_y4m = |name: &str, f: &[RgbImage]| {
        let path = dir.join(name);
        video::write_y4m(&path, f);
        path
    };
    let mjpeg = dir.join("one.mjpeg");
    video::write_mjpeg(&mjpeg, &one);
    let scenario = |name, file: &PathBuf, source_fps, faces| Scenario {
        name,
        file: file.clone(),
        source_fps,
        faces,
    };
    let (y0, y1, y5) = (
        write_y4m("none.y4m", &none),
        write_y4m("one.y4m", &one),
        write_y4m("five.y4m", &five),
    );
    vec![
        scenario("y4m, 0 faces", &y0, FPS, 0),
        scenario("y4m, 1 enrolled face", &y1, FPS, 1),
        scenario("y4m, 5 enrolled faces", &y5, FPS, 5),
        scenario("MJPEG 1 face, unpaced", &mjpeg, 0, 1),
        scenario("MJPEG 1 face, 30 fps", &mjpeg, 30, 1),
    ]
}

/// Enrols photos 0-2 of `person` (the videos show photo 5).
fn enrol(port: u16, person: &str) {
    let boundary = "facecv-bench-boundary";
    let mut body = Vec::new();
    let name = person.replace('_', " ");
    write!(
        body,
        "--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
    )
    .unwrap();
    for photo in &video::photos_of(person)[..3] {
        write!(
            body,
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        )
        .unwrap();
        body.extend(std::fs::read(photo).expect("a test photo"));
        body.extend(b"\r\n");
    }
    write!(body, "--{boundary}--\r\n").unwrap();
    let (code, answer) = request(
        port,
        "POST",
        "/api/v1/insightface/register",
        &format!("multipart/form-data; boundary={boundary}"),
        &body,
    );
    assert_eq!(code, 200, "enrolling {person}: {answer}");
}

fn measure(port: u16, pid: u32, seconds: u64, s: &Scenario) -> Row {
    let camera = "bench";
    let (code, answer) = request_json(
        port,
        "POST",
        "/api/v1/cameras",
        &json!({"camera_id": camera, "fps": FPS,
                "spec": {"kind": "file", "path": s.file, "fps": s.source_fps, "looped": true}}),
    );
    assert_eq!(code, 200, "adding the camera for {}: {answer}", s.name);
    // Warm up: the models are loaded, every face is named (or 15 s have passed).
    let since = last_seq(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while analysed(port, camera) < 20
        || (recognized(port, camera, since).0.len() < s.faces && Instant::now() < deadline)
    {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "{}: the camera did not analyse 20 frames",
            s.name
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (cpu0, analysed0, t0) = (
        procfs::cpu_total(procfs::Proc::Pid(pid)),
        analysed(port, camera),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, analysed1, wall) = (
        procfs::cpu_total(procfs::Proc::Pid(pid)),
        analysed(port, camera),
        t0.elapsed(),
    );
    let (recognized, first_frames) = recognized(port, camera, since);
    let (code, answer) = request(
        port,
        "DELETE",
        &format!("/api/v1/cameras/{camera}"),
        "",
        b"",
    );
    assert_eq!(code, 200, "removing the camera: {answer}");
    let frames = analysed1.saturating_sub(analysed0).max(1);
    Row {
        name: s.name,
        analysed_per_s: (analysed1 - analysed0) as f64 / wall.as_secs_f64(),
        cpu_ms_per_frame: (cpu1 - cpu0) as f64 * 1000.0 / ticks_per_second() / frames as f64,
        recognized,
        first_frames,
    }
}

/// Per person named by `camera` after `since`: how many `face_recognized` named them, and
/// `metadata.tracks[].frames` of the first that did.
fn recognized(
    port: u16,
    camera: &str,
    since: i64,
) -> (BTreeMap<String, usize>, BTreeMap<String, Option<u64>>) {
    let (mut counts, mut first) = (BTreeMap::new(), BTreeMap::new());
    for event in events_after(port, since, "face_recognized") {
        if event["camera_id"] != camera {
            continue;
        }
        let faces = event["data"]["recognized_faces"].as_array().cloned();
        let tracks = event["metadata"]["tracks"].as_array().cloned();
        for (i, face) in faces.unwrap_or_default().iter().enumerate() {
            let name = face["name"].as_str().unwrap_or("?").to_owned();
            *counts.entry(name.clone()).or_insert(0) += 1;
            let frames = tracks.as_ref().and_then(|t| t.get(i)?["frames"].as_u64());
            first.entry(name).or_insert(frames);
        }
    }
    (counts, first)
}

fn events_after(port: u16, since: i64, event_type: &str) -> Vec<Value> {
    let path = format!("/api/v1/events?after_seq={since}&limit=1000&event_type={event_type}");
    let (code, body) = request(port, "GET", &path, "", b"");
    assert_eq!(code, 200, "{path}: {body}");
    let page: Value = serde_json::from_str(&body).expect("an event page");
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["event"].clone())
        .collect()
}

fn last_seq(port: u16) -> i64 {
    let (_, body) = request(port, "GET", "/api/v1/events?order=desc&limit=1", "", b"");
    let page: Value = serde_json::from_str(&body).unwrap_or_default();
    page["events"][0]["seq"].as_i64().unwrap_or(0)
}

fn print_table(cpu: usize, seconds: u64, rows: &[Row]) {
    println!(
        "\nmachine: {} ({} CPUs); facecv pinned to CPU {cpu}, vision.runtime.threads = 1; \
         analysed at {FPS} fps; window {seconds} s; load average {:.2}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        procfs::load_average().unwrap_or(0.0)
    );
    println!(
        "{:<24} {:>10} {:>13}  face_recognized per person (frames from appearance to the first)",
        "scenario", "analysed/s", "CPU ms/frame"
    );
    for r in rows {
        let people: Vec<String> = r
            .recognized
            .iter()
            .map(|(name, n)| {
                let frames = r.first_frames[name].map_or("-".to_owned(), |f| f.to_string());
                format!("{name} {n} ({frames})")
            })
            .collect();
        println!(
            "{:<24} {:>10.1} {:>13.1}  {}",
            r.name,
            r.analysed_per_s,
            r.cpu_ms_per_frame,
            if people.is_empty() {
                "-".to_owned()
            } else {
                people.join(", ")
            }
        );
    }
    let by = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| r.cpu_ms_per_frame)
    };
    if let (Some(one), Some(five)) = (by("y4m, 1 enrolled face"), by("y4m, 5 enrolled faces")) {
        let ratio = five / one;
        println!(
            "5 faces / 1 face: {ratio:.2}x (goal <= {GOAL_RATIO}x: {})",
            if ratio <= GOAL_RATIO {
                "met"
            } else {
                "NOT met"
            }
        );
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name")?.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// The highest-numbered CPU this process may run on: the binary is pinned there.
fn last_allowed_cpu() -> usize {
    // SAFETY: `set` is a plain bit mask sched_getaffinity fills; its size is passed with it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        let size = std::mem::size_of::<libc::cpu_set_t>();
        assert_eq!(
            libc::sched_getaffinity(0, size, &mut set),
            0,
            "sched_getaffinity: {}",
            std::io::Error::last_os_error()
        );
        (0..libc::CPU_SETSIZE as usize)
            .rev()
            .find(|&c| libc::CPU_ISSET(c, &set))
            .expect("a CPU in the affinity mask")
    }
}

fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `set` is a plain bit mask on the stack; its size is passed with it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn analysed(port: u16, camera: &str) -> u64 {
    let (_, body) = request(port, "GET", &format!("/api/v1/cameras/{camera}"), "", b"");
    serde_json::from_str::<Value>(&body).unwrap_or_default()["frames_analysed"]
        .as_u64()
        .unwrap_or(0)
}

fn request_json(port: u16, method: &str, path: &str, body: &Value) -> (u16, String) {
    request(
        port,
        method,
        path,
        "application/json",
        body.to_string().as_bytes(),
    )
}

/// One request on a fresh connection: the status and the body (de-chunked).
fn request(port: u16, method: &str, path: &str, content_type: &str, body: &[u8]) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, rest)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (
        code,
        if chunked {
            dechunk(rest)
        } else {
            rest.to_owned()
        },
    )
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while request(port, "GET", "/health", "", b"").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "facecv did not answer /health within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
