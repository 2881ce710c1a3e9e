//! What the console's live view costs: the CPU the appliance uses with 0, 1 and 3 viewers
//! reading `live.mjpg` from one camera, and the size of its pictures.
//!
//! `cargo bench --bench live` starts the real binary (built with the bench profile) with one
//! camera playing a loop of the test photos at a door (640x480 PNG frames, 10 fps, a face in
//! every frame), waits until it analyses, then for each number of viewers measures the process's
//! CPU time (utime + stime from `/proc`) over a fixed window and prints CPU ms per second of wall
//! time, the pictures encoded per second (`facecv_live_frames_encoded_total`) and their mean size.
//! Viewers ask for `?fps=10`, the most a viewer may ask for. `-- --seconds N` sets the window
//! (default 15). Nothing is dialled: no webhook, no MQTT.

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[allow(dead_code)]
#[path = "../tests/common/video.rs"]
mod video;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FPS: u32 = 10;

fn main() {
    let seconds: u64 = std::env::args()
        .skip_while(|a| a != "--seconds")
        .nth(1)
        .map(|s| s.parse().expect("--seconds N"))
        .unwrap_or(15);
    let dir = tempfile::tempdir().expect("a temporary folder");
    let scenes: Vec<_> = video::photos_of("John_Salley")
        .into_iter()
        .take(8)
        .map(Some)
        .collect();
    let frames = video::write_door_frames(&dir.path().join("door"), &scenes);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("facecv.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\nmax_streams = 8\n\n[storage]\ndir = \"{}\"\n\n\
             [vision]\nmodels_dir = \"{}\"\n\n[[cameras]]\ncamera_id = \"door\"\nfps = {FPS}\n\
             autostart = true\nspec = {{ kind = \"file\", path = \"{}\", fps = {FPS}, looped = true }}\n",
            dir.path().join("store").display(),
            video::root().join("models").display(),
            frames.display(),
        ),
    )
    .expect("write the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("LOG_LEVEL", "WARNING")
        .stdout(Stdio::null())
        .spawn()
        .expect("start facecv");
    let result = std::panic::catch_unwind(|| measure(port, child.id(), seconds));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn measure(port: u16, pid: u32, seconds: u64) {
    wait_for_health(port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(port, "facecv_live_frames_encoded_total{camera=\"door\"}").is_none()
        || !request(port, "/api/v1/cameras/door").contains("\"frames_analysed\":")
        || analysed(port) < 20
    {
        assert!(
            Instant::now() < deadline,
            "the camera did not analyse 20 frames within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    println!(
        "camera: 640x480 PNG frames of a face at the door, analysed at {FPS} fps; viewers at \
         ?fps={FPS}; window {seconds} s; load average {:.2}",
        procfs::load_average().unwrap_or(0.0)
    );
    let mut base = None;
    for viewers in [0, 1, 3] {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Stats::default());
        let readers: Vec<_> = (0..viewers)
            .map(|_| {
                let (stop, stats) = (stop.clone(), stats.clone());
                std::thread::spawn(move || watch(port, &stop, &stats))
            })
            .collect();
        // Let the viewers connect and the first pictures flow before the window opens.
        std::thread::sleep(Duration::from_secs(2));
        let encoded = || metric(port, "facecv_live_frames_encoded_total{camera=\"door\"}").unwrap();
        let (cpu0, enc0, analysed0, t0) = (
            procfs::cpu_total(procfs::Proc::Pid(pid)),
            encoded(),
            analysed(port),
            Instant::now(),
        );
        let (bytes0, parts0) = stats.read();
        std::thread::sleep(Duration::from_secs(seconds));
        let (cpu1, enc1, analysed1, wall) = (
            procfs::cpu_total(procfs::Proc::Pid(pid)),
            encoded(),
            analysed(port),
            t0.elapsed(),
        );
        let (bytes1, parts1) = stats.read();
        stop.store(true, Ordering::Release);
        for r in readers {
            r.join().expect("a viewer");
        }
        let ticks = ticks_per_second();
        let cpu_ms_per_s = (cpu1 - cpu0) as f64 * 1000.0 / ticks / wall.as_secs_f64();
        let over = base.map_or(String::new(), |b: f64| {
            format!(" ({:+.0} over no viewer)", cpu_ms_per_s - b)
        });
        base.get_or_insert(cpu_ms_per_s);
        let per_s = |n: f64| n / wall.as_secs_f64();
        let parts = parts1 - parts0;
        let jpeg = if parts > 0 {
            format!(
                ", mean JPEG {:.1} KiB",
                (bytes1 - bytes0) as f64 / parts as f64 / 1024.0
            )
        } else {
            String::new()
        };
        println!(
            "{viewers} viewer(s): {cpu_ms_per_s:.0} CPU ms/s{over}; frames analysed {:.1}/s, \
             pictures encoded {:.1}/s, delivered {:.1}/s to all viewers{jpeg}",
            per_s((analysed1 - analysed0) as f64),
            per_s(enc1 - enc0),
            per_s(parts as f64),
        );
        // Viewers gone: the encoding stops.
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[derive(Default)]
struct Stats {
    jpeg_bytes: AtomicU64,
    parts: AtomicU64,
}

impl Stats {
    fn read(&self) -> (u64, u64) {
        (
            self.jpeg_bytes.load(Ordering::Acquire),
            self.parts.load(Ordering::Acquire),
        )
    }
}

/// Reads `live.mjpg` until told to stop, counting the parts and the sizes their headers give.
fn watch(port: u16, stop: &AtomicBool, stats: &Stats) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    write!(
        s,
        "GET /api/v1/cameras/door/live.mjpg?fps={FPS} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut carry = String::new();
    while !stop.load(Ordering::Acquire) {
        let n = match s.read(&mut buf) {
            Ok(0) => panic!("the live view ended"),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => panic!("the live view broke: {e}"),
        };
        // Part headers are ASCII; the JPEG bytes between them are not looked at.
        carry.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(i) = carry.find("Content-Length: ") {
            let rest = &carry[i + 16..];
            let Some(end) = rest.find("\r\n") else { break };
            if let Ok(len) = rest[..end].parse::<u64>() {
                stats.jpeg_bytes.fetch_add(len, Ordering::AcqRel);
                stats.parts.fetch_add(1, Ordering::AcqRel);
            }
            carry.drain(..i + 16 + end);
        }
        if carry.len() > 64 {
            carry.drain(..carry.len() - 64);
        }
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

fn analysed(port: u16) -> u64 {
    let body = request(port, "/api/v1/cameras/door");
    body.split("\"frames_analysed\":")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
        .unwrap_or(0)
}

fn metric(port: u16, name: &str) -> Option<f64> {
    request(port, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// One GET on a fresh connection; the whole answer, head and body.
fn request(port: u16, path: &str) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    );
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !request(port, "/health").starts_with("HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "facecv did not answer /health within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
