//! What idle and slow clients and live streams cost the API, and whether `/health` still answers:
//! the figures behind the limits in `src/api/server.rs` and `api.max_streams`.
//!
//! `cargo bench --bench connections` starts the real binary (built with the bench profile) on a
//! loopback port and prints:
//! - the RSS of one more vision engine in this process (what each ad-hoc stream's camera loads);
//! - the binary's RSS idle, per idle connection (300 of them), and per ad-hoc stream (a camera on
//!   `source=synthetic`) up to `max_streams`, and after the streams have ended;
//! - `/health` latency (fresh connection each time) with 300 idle connections, 64 clients that
//!   declared a body and sent one byte, and every stream place taken; then with 700 idle
//!   connections, past the 512 limit.
//!
//! Synthetic cameras and no webhooks: the binary dials nothing.

#[path = "../tests/common/procfs.rs"]
mod procfs;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use facecv::vision::{FaceEngine, VisionConfig};

const MAX_STREAMS: usize = 4;
const STREAM: &str = "/api/v1/face_recognition_insightface/recognize/webcam/stream";

fn main() {
    raise_fd_limit(4096);
    engine_memory();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("facecv.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\nmax_streams = {MAX_STREAMS}\n\n[storage]\ndir = \"{}\"\n",
            dir.path().join("store").display()
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
    let result = std::panic::catch_unwind(|| siege(port, child.id()));
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

fn siege(port: u16, pid: u32) {
    wait_for_health(port);
    std::thread::sleep(Duration::from_secs(1));
    let idle_rss = rss_kib(pid);
    println!("binary idle: {:.1} MB RSS", idle_rss as f64 / 1024.0);

    let idle: Vec<TcpStream> = (0..300).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let with_idle = rss_kib(pid);
    println!(
        "300 idle connections: +{:.1} MB RSS, {:.1} KiB each",
        (with_idle - idle_rss) as f64 / 1024.0,
        (with_idle - idle_rss) as f64 / 300.0
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(500));

    let mut streams = Vec::new();
    let mut last = rss_kib(pid);
    for i in 0..MAX_STREAMS {
        streams.push(open_stream(
            port,
            &format!("camera_id=bench{i}&source=synthetic&fps=10"),
        ));
        std::thread::sleep(Duration::from_secs(2));
        let now = rss_kib(pid);
        println!(
            "ad-hoc stream {}: +{:.1} MB RSS (total {:.1} MB)",
            i + 1,
            (now - last) as f64 / 1024.0,
            now as f64 / 1024.0
        );
        last = now;
    }

    let idle: Vec<TcpStream> = (0..300).map(|_| connect(port)).collect();
    let slow: Vec<TcpStream> = (0..64).map(|_| slow_body(port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let refused = request(port, &format!("{STREAM}?camera_id=extra&source=synthetic"));
    println!(
        "one stream past the cap: {}",
        refused.lines().next().unwrap_or("")
    );
    report(
        "/health with 300 idle, 64 slow-body clients and 4 of 4 streams",
        port,
    );
    drop((idle, slow));

    drop(streams);
    std::thread::sleep(Duration::from_secs(3));
    println!(
        "after the streams ended: {:.1} MB RSS (their engines freed and trimmed)",
        rss_kib(pid) as f64 / 1024.0
    );

    let idle: Vec<TcpStream> = (0..700).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(500));
    report("/health with 700 idle connections (limit 512)", port);
    drop(idle);
}

/// What one more vision engine costs: an ad-hoc stream's camera loads its own.
fn engine_memory() {
    let before = rss_kib(std::process::id());
    let mut engines = Vec::new();
    for n in 1..=3 {
        let t = Instant::now();
        engines.push(FaceEngine::new(VisionConfig::default()).expect("the vision engine loads"));
        let now = rss_kib(std::process::id());
        println!(
            "vision engines in this process: {n}, +{:.1} MB RSS over none, loaded in {:.0} ms",
            (now - before) as f64 / 1024.0,
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}

fn report(what: &str, port: u16) {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            let answer = request(port, "/health");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            t.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: median {:.1} ms, max {:.1} ms (20 requests, a new connection each)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port)).expect("connect")
}

fn request(port: u16, path: &str) -> String {
    let mut s = connect(port);
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn slow_body(port: u16) -> TcpStream {
    let mut s = connect(port);
    s.write_all(
        b"POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
    )
    .unwrap();
    s
}

fn open_stream(port: u16, query: &str) -> TcpStream {
    let mut s = connect(port);
    write!(
        s,
        "GET {STREAM}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("data: ") {
        let n = s.read(&mut buf).expect("the stream sends frames");
        assert!(
            n > 0,
            "the stream ended: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    s
}

fn wait_for_health(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && request(port, "/health").starts_with("HTTP/1.1 200")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("facecv did not answer /health within 30 s");
}

fn rss_kib(pid: u32) -> i64 {
    procfs::memory(procfs::Proc::Pid(pid)).rss_kib as i64
}

fn raise_fd_limit(wanted: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < wanted {
            lim.rlim_cur = wanted.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
