//! Raw frames from a command's stdout: how CSI cameras (`rpicam-vid`, GStreamer's `nvarguscamerasrc`)
//! and network streams (`ffmpeg`) reach us without linking their libraries.
//!
//! The command runs in its own process group so that stopping kills all of it, `sh -c` wrappers and
//! their children included; an orphaned `ffmpeg` would hold the camera and the network stream. Its
//! stderr is kept (the last lines) because when a camera command dies, that is where it says why.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::mjpeg::read_jpeg;
use super::{lock, CameraError, Frame, PixelFormat, Source};
use crate::shutdown::Shutdown;

/// Lines of the command's stderr kept for the error report.
const STDERR_LINES: usize = 12;
/// Longest stderr line kept; `ffmpeg` can print very long ones.
const STDERR_LINE_CHARS: usize = 300;

/// A running command whose stdout carries frames of a size and format fixed by the config.
pub struct PipeSource {
    program: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_thread: Option<JoinHandle<()>>,
    width: u32,
    height: u32,
    format: PixelFormat,
    /// Bytes in one raw frame (0 for MJPEG, whose frames vary).
    frame_len: usize,
    seq: u64,
    /// Kills the command's process group when cancelled, which ends a blocked read.
    stop: Shutdown,
    reaped: bool,
}

impl PipeSource {
    /// Starts `command` (program and arguments, no shell), killed when `stop` is cancelled. A
    /// program that does not exist fails here with a message saying so.
    pub fn spawn(
        command: &[String],
        width: u32,
        height: u32,
        format: PixelFormat,
        stop: Shutdown,
    ) -> Result<Self, CameraError> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| CameraError::invalid("source.command", "must name a program"))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|source| CameraError::Spawn {
                program: program.clone(),
                hint: spawn_hint(&source),
                source,
            })?;
        stop.kill_on_cancel(child.id() as libc::pid_t);
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_thread = {
            let (tail, program) = (stderr_tail.clone(), program.clone());
            std::thread::Builder::new()
                .name("pipe-stderr".into())
                .spawn(move || collect_stderr(stderr, &tail, &program))
                .ok()
        };
        let frame_len = format.frame_len(width, height).unwrap_or(0);
        tracing::info!(command = %command.join(" "), %format, width, height, "pipe source started");
        Ok(PipeSource {
            program: program.clone(),
            child,
            // Big enough for one whole raw frame per read at 640x480, so reads are few and large.
            stdout: BufReader::with_capacity(1 << 20, stdout),
            stderr_tail,
            stderr_thread,
            width,
            height,
            format,
            frame_len,
            seq: 0,
            stop,
            reaped: false,
        })
    }

    /// Turns the end of the command's output into an error that says how it ended and what it
    /// printed last. Kills the process group first: if the command only closed stdout, it is of no
    /// use any more, and a process that already exited is a zombie whose group id is still ours.
    fn exited(&mut self, what: &str) -> CameraError {
        if self.stop.is_cancelled() {
            return CameraError::Stopped;
        }
        self.kill_group();
        let status = match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("unknown status ({e})"),
        };
        self.reaped = true;
        // Let the stderr reader drain what the command printed just before it died.
        if let Some(t) = self.stderr_thread.take() {
            let deadline = Instant::now() + Duration::from_millis(500);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let tail: Vec<String> = lock(&self.stderr_tail).iter().cloned().collect();
        let stderr = if tail.is_empty() {
            "no stderr output".to_string()
        } else {
            format!("stderr: {}", tail.join(" | "))
        };
        CameraError::Lost(format!("`{}` {what} ({status}); {stderr}", self.program))
    }

    fn kill_group(&self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals the process group this source created; it still exists (unreaped).
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        // Before the caller reaps it: a cancel after that must not signal a reused group id.
        self.stop.forget_process_group();
    }
}

fn spawn_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::NotFound => " (is it installed and on PATH?)",
        io::ErrorKind::PermissionDenied => " (is it executable?)",
        _ => "",
    }
}

fn collect_stderr(stderr: impl Read, tail: &Mutex<VecDeque<String>>, program: &str) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        tracing::debug!(program, "{text}");
        let mut tail = lock(tail);
        if tail.len() == STDERR_LINES {
            tail.pop_front();
        }
        tail.push_back(text.chars().take(STDERR_LINE_CHARS).collect());
    }
}

/// Reads until `buf` is full or the stream ends; returns how many bytes came.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

impl Source for PipeSource {
    fn next_frame(&mut self, frame: &mut Frame) -> Result<(), CameraError> {
        if self.stop.is_cancelled() {
            return Err(CameraError::Stopped);
        }
        if self.reaped {
            return Err(CameraError::Lost(format!(
                "`{}` is not running",
                self.program
            )));
        }
        // Read straight into the frame and converted only if analysis takes it.
        let raw = frame.set_encoded(self.format, self.width, self.height, 0);
        if self.format == PixelFormat::Mjpeg {
            match read_jpeg(&mut self.stdout, raw) {
                Ok(true) => {}
                Ok(false) => return Err(self.exited("exited")),
                Err(e) => return Err(self.exited(&format!("broke off mid-frame: {e}"))),
            }
        } else {
            raw.resize(self.frame_len, 0);
            match read_full(&mut self.stdout, raw) {
                Ok(n) if n == self.frame_len => {}
                Ok(0) => return Err(self.exited("exited")),
                Ok(n) => {
                    let what = format!("exited mid-frame ({n} of {} bytes)", self.frame_len);
                    return Err(self.exited(&what));
                }
                Err(e) => return Err(self.exited(&format!("output failed: {e}"))),
            }
        }
        self.seq += 1;
        frame.stamp(self.seq);
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "pipe `{}` {} {}x{}",
            self.program, self.format, self.width, self.height
        )
    }
}

impl Drop for PipeSource {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}
