//! Cameras, told as the installer meets them: recordings replay with the right pixels, a camera
//! command that dies says why, a missing camera is retried without hanging the appliance, and a
//! slow detector always sees the newest frame. All test media is generated here, in a temp dir.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use facecv::camera::{
    open, parse_source, Backoff, CameraError, Capture, CaptureEvent, Frame, PixelFormat,
    SourceSpec, SourceState, SyntheticSource,
};
use facecv::shutdown::Shutdown;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
/// The same primaries in BT.601 limited-range YUV, as cameras and `ffmpeg` write them.
const YUV: [[u8; 3]; 3] = [[81, 90, 240], [145, 54, 34], [41, 240, 110]];
const WAIT: Duration = Duration::from_secs(10);

fn close(got: [u8; 3], want: [u8; 3], tolerance: i16) -> bool {
    got.iter()
        .zip(want)
        .all(|(g, w)| (i16::from(*g) - i16::from(w)).abs() <= tolerance)
}

#[track_caller]
fn assert_colour(frame: &Frame, x: u32, y: u32, want: [u8; 3], tolerance: i16) {
    let got = frame.pixel(x, y);
    assert!(
        close(got, want, tolerance),
        "pixel ({x},{y}) of frame {} is {got:?}, want {want:?}",
        frame.seq
    );
}

/// Frame `i` shows three vertical stripes: red, green, blue, rotated left by `i`.
fn stripe(i: usize, x: usize, width: usize) -> usize {
    (x * 3 / width + i) % 3
}

/// A minimal YUV4MPEG2 writer: the header, then per frame `FRAME` and the Y, U, V planes.
fn write_y4m(path: &Path, (w, h): (usize, usize), chroma: &str, frames: usize) {
    let (cw, ch) = if chroma.starts_with("420") {
        (w.div_ceil(2), h.div_ceil(2))
    } else {
        (w, h)
    };
    let mut out = format!("YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C{chroma}\n").into_bytes();
    for i in 0..frames {
        out.extend(b"FRAME\n");
        for (plane, (pw, ph)) in [(w, h), (cw, ch), (cw, ch)].into_iter().enumerate() {
            for _ in 0..ph {
                out.extend((0..pw).map(|x| YUV[stripe(i, x * w / pw, w)][plane]));
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

fn rgb_image(w: usize, h: usize, i: usize) -> Vec<u8> {
    let colours = [RED, GREEN, BLUE];
    (0..h)
        .flat_map(|_| (0..w).flat_map(move |x| colours[stripe(i, x, w)]))
        .collect()
}

fn jpeg(w: usize, h: usize, i: usize, progressive: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut out, 95);
    enc.set_progressive(progressive);
    enc.set_restart_interval(2);
    // An APP1 segment holding FF D8 .. FF D9, as an EXIF thumbnail does: the splitter must skip it.
    enc.add_app_segment(1, b"Exif\0\0\xFF\xD8\xFF\xD9").unwrap();
    let data = rgb_image(w, h, i);
    enc.encode(&data, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

fn write_png(path: &Path, w: u32, h: u32, colour: png::ColorType, data: &[u8]) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w, h);
    enc.set_color(colour);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(data).unwrap();
}

/// Reads frames until the source ends, checking each frame's stripes.
fn read_all(spec: &SourceSpec, limit: usize) -> (Vec<Frame>, Option<CameraError>) {
    let mut source = open(spec, Shutdown::new()).unwrap_or_else(|e| panic!("open {spec:?}: {e}"));
    let mut frames = Vec::new();
    while frames.len() < limit {
        let mut frame = Frame::new();
        match source.next_frame(&mut frame).and_then(|()| frame.decode()) {
            Ok(_) => frames.push(frame),
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}

#[track_caller]
fn assert_stripes(frame: &Frame, i: usize, tolerance: i16) {
    let colours = [RED, GREEN, BLUE];
    let (w, h) = (frame.width, frame.height);
    for third in 0..3u32 {
        let x = w * third / 3 + w / 6;
        assert_colour(
            frame,
            x,
            h / 2,
            colours[stripe(i, x as usize, w as usize)],
            tolerance,
        );
    }
}

fn file(path: &Path, looped: bool) -> SourceSpec {
    SourceSpec::File {
        path: path.into(),
        fps: 0.0,
        looped,
    }
}

#[test]
fn a_y4m_recording_replays_with_its_colours_in_every_chroma_layout() {
    let dir = tempfile::tempdir().unwrap();
    for chroma in ["420jpeg", "420mpeg2", "420paldv", "420", "444"] {
        let path = dir.path().join(format!("clip-{chroma}.y4m"));
        write_y4m(&path, (48, 32), chroma, 3);
        let (frames, end) = read_all(&file(&path, false), 10);
        assert_eq!(frames.len(), 3, "{chroma}");
        assert!(matches!(end, Some(CameraError::Ended)), "{chroma}: {end:?}");
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                (f.width, f.height, f.rgb.len()),
                (48, 32, 48 * 32 * 3),
                "{chroma}"
            );
            assert_eq!(f.seq, i as u64 + 1);
            assert_stripes(f, i, 4);
        }
    }
}

#[test]
fn a_looped_recording_starts_again_and_never_ends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loop.y4m");
    write_y4m(&path, (30, 20), "420jpeg", 3);
    let (frames, end) = read_all(&file(&path, true), 8);
    assert!(end.is_none(), "{end:?}");
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    for (n, f) in frames.iter().enumerate() {
        assert_stripes(f, n % 3, 4);
    }
}

#[test]
fn a_broken_y4m_header_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deep.y4m");
    std::fs::write(&path, b"YUV4MPEG2 W16 H16 C420p10\nFRAME\n").unwrap();
    let err = open(&file(&path, false), Shutdown::new())
        .err()
        .expect("a 10-bit y4m is refused");
    assert!(
        err.to_string().contains("C420p10 is not supported"),
        "{err}"
    );
}

#[test]
fn an_mjpeg_recording_splits_into_frames_of_their_own_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.mjpeg");
    let mut data = b"junk before the first frame".to_vec();
    data.extend(jpeg(48, 32, 0, false));
    data.extend(jpeg(48, 32, 1, true));
    data.extend(jpeg(96, 64, 2, false));
    std::fs::write(&path, &data).unwrap();

    let (frames, end) = read_all(&file(&path, false), 10);
    assert!(matches!(end, Some(CameraError::Ended)), "{end:?}");
    let sizes: Vec<(u32, u32)> = frames.iter().map(|f| (f.width, f.height)).collect();
    assert_eq!(sizes, [(48, 32), (48, 32), (96, 64)]);
    for (i, f) in frames.iter().enumerate() {
        assert_stripes(f, i, 12);
    }
    let (looped, _) = read_all(&file(&path, true), 7);
    assert_eq!((looped.len(), looped[6].width), (7, 48));
}

#[test]
fn a_folder_of_images_plays_in_name_order_each_at_its_size() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("frame_01.jpg"), jpeg(48, 32, 0, false)).unwrap();
    write_png(
        &d.join("frame_02.png"),
        30,
        20,
        png::ColorType::Rgb,
        &rgb_image(30, 20, 1),
    );
    let rgba: Vec<u8> = rgb_image(24, 16, 2)
        .chunks(3)
        .flat_map(|p| [p[0], p[1], p[2], 128])
        .collect();
    write_png(&d.join("frame_03.PNG"), 24, 16, png::ColorType::Rgba, &rgba);
    write_png(
        &d.join("frame_04.png"),
        20,
        10,
        png::ColorType::Grayscale,
        &[77; 200],
    );
    std::fs::write(d.join("notes.txt"), "not an image").unwrap();

    let (frames, end) = read_all(&file(d, false), 10);
    assert!(matches!(end, Some(CameraError::Ended)), "{end:?}");
    let sizes: Vec<(u32, u32)> = frames.iter().map(|f| (f.width, f.height)).collect();
    assert_eq!(sizes, [(48, 32), (30, 20), (24, 16), (20, 10)]);
    for (i, f) in frames.iter().take(3).enumerate() {
        assert_stripes(f, i, if i == 0 { 12 } else { 0 });
    }
    assert_colour(&frames[3], 5, 5, [77, 77, 77], 0);

    let (looped, end) = read_all(&file(d, true), 9);
    assert!(end.is_none());
    assert_eq!(
        (looped[8].width, looped[8].height),
        (48, 32),
        "the 9th frame is the 1st image again"
    );
}

#[test]
fn an_empty_folder_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(&file(dir.path(), true), Shutdown::new())
        .err()
        .expect("nothing to play");
    assert!(
        err.to_string().contains("no .jpg, .jpeg or .png images"),
        "{err}"
    );
}

fn pipe(command: &[&str], w: u32, h: u32, format: PixelFormat) -> SourceSpec {
    SourceSpec::Pipe {
        command: command.iter().map(|s| s.to_string()).collect(),
        width: w,
        height: h,
        format,
    }
}

/// Raw I420 frames with the stripes, the way `rpicam-vid --codec yuv420` writes them.
fn raw_i420(w: usize, h: usize, frames: usize) -> Vec<u8> {
    let dir_y4m = tempfile::NamedTempFile::new().unwrap();
    write_y4m(dir_y4m.path(), (w, h), "420", frames);
    let data = std::fs::read(dir_y4m.path()).unwrap();
    let header = data.iter().position(|&b| b == b'\n').unwrap() + 1;
    let frame_len = w * h * 3 / 2;
    data[header..]
        .chunks(6 + frame_len)
        .flat_map(|f| f[6..].to_vec())
        .collect()
}

#[test]
fn a_camera_command_delivers_frames_and_its_death_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frames.i420");
    std::fs::write(&raw, raw_i420(32, 16, 2)).unwrap();
    let script = "cat \"$1\"; echo 'mmal: camera not detected' >&2; exit 3";
    let spec = pipe(
        &["sh", "-c", script, "sh", raw.to_str().unwrap()],
        32,
        16,
        PixelFormat::I420,
    );

    let (frames, end) = read_all(&spec, 10);
    assert_eq!(frames.len(), 2);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!((f.width, f.height), (32, 16));
        assert_stripes(f, i, 4);
    }
    let err = end.expect("the command exited");
    let msg = err.to_string();
    assert!(matches!(err, CameraError::Lost(_)), "{err:?}");
    assert!(
        msg.contains("`sh` exited") && msg.contains("exit status: 3"),
        "{msg}"
    );
    assert!(msg.contains("mmal: camera not detected"), "{msg}");
}

#[test]
fn a_command_that_dies_mid_frame_or_sends_mjpeg_is_handled() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("half.rgb");
    std::fs::write(&raw, vec![0u8; 16 * 16 * 3 + 100]).unwrap();
    let spec = pipe(&["cat", raw.to_str().unwrap()], 16, 16, PixelFormat::Rgb24);
    let (frames, end) = read_all(&spec, 10);
    assert_eq!(frames.len(), 1);
    let msg = end.unwrap().to_string();
    assert!(
        msg.contains("mid-frame (100 of 768 bytes)") && msg.contains("no stderr output"),
        "{msg}"
    );

    let mjpeg = dir.path().join("cam.mjpeg");
    std::fs::write(
        &mjpeg,
        [jpeg(48, 32, 0, false), jpeg(48, 32, 1, false)].concat(),
    )
    .unwrap();
    let spec = pipe(
        &["cat", mjpeg.to_str().unwrap()],
        48,
        32,
        PixelFormat::Mjpeg,
    );
    let (frames, _) = read_all(&spec, 10);
    assert_eq!(frames.len(), 2);
    assert_stripes(&frames[1], 1, 12);
}

#[test]
fn a_camera_command_that_does_not_exist_is_a_clear_error() {
    let spec = pipe(
        &["facecv-no-such-camera-tool", "-o", "-"],
        64,
        48,
        PixelFormat::Rgb24,
    );
    let err = open(&spec, Shutdown::new()).err().expect("no such program");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot start `facecv-no-such-camera-tool`"),
        "{msg}"
    );
    assert!(msg.contains("is it installed and on PATH?"), "{msg}");
    assert!(!err.is_transient());

    let capture = Capture::start(spec, "door");
    let mut frame = Frame::new();
    let got = capture.next(&mut frame, WAIT);
    assert!(
        matches!(got, Err(CameraError::Failed(ref m)) if m.contains("installed")),
        "{got:?}"
    );
    assert!(matches!(capture.state(), SourceState::Failed(_)));
    capture.stop();
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` is gone (or a zombie waiting for init to reap it).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z')),
    }
}

#[test]
fn stopping_a_capture_kills_the_whole_camera_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("helper.pid");
    // A helper in the background, as GStreamer or a shell wrapper leaves behind.
    let script = "sleep 300 & echo $! > \"$1\"; exec cat /dev/zero";
    let spec = pipe(
        &["sh", "-c", script, "sh", pid_file.to_str().unwrap()],
        32,
        32,
        PixelFormat::Rgb24,
    );
    let capture = Capture::start(spec, "csi");
    let mut frame = Frame::new();
    assert_eq!(capture.next(&mut frame, WAIT).unwrap(), CaptureEvent::Frame);
    capture.decode(&mut frame).unwrap();
    assert_eq!((frame.width, frame.height), (32, 32));
    let helper: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(!process_gone(helper));
    capture.stop();
    wait_until("the helper process dies", || process_gone(helper));
}

/// What the camera manager does: the capture runs under the camera's `Shutdown`, and cancelling
/// that (the camera stopped, or the whole appliance) ends a blocked read by killing the command.
#[test]
fn cancelling_its_camera_stops_a_capture_blocked_on_a_silent_command() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("cmd.pid");
    // One frame, then silence: the capture thread blocks in `read` on the pipe.
    let script = "echo $$ > \"$1\"; head -c 3072 /dev/zero; exec sleep 300";
    let spec = pipe(
        &["sh", "-c", script, "sh", pid_file.to_str().unwrap()],
        32,
        32,
        PixelFormat::Rgb24,
    );
    let appliance = Shutdown::new();
    let camera = appliance.child_token();
    let capture = Capture::start_with(spec, "csi", Backoff::default(), &camera);
    let mut frame = Frame::new();
    assert_eq!(capture.next(&mut frame, WAIT).unwrap(), CaptureEvent::Frame);
    let command: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    appliance.cancel();
    assert!(matches!(
        capture.next(&mut frame, WAIT),
        Err(CameraError::Stopped)
    ));
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    wait_until("the command dies", || process_gone(command));
    capture.stop();
}

#[test]
fn a_camera_command_that_keeps_dying_is_restarted_and_reported_lost() {
    let spec = pipe(
        &["sh", "-c", "echo 'no camera on CSI port' >&2; exit 1"],
        32,
        32,
        PixelFormat::Rgb24,
    );
    let backoff = Backoff {
        min: Duration::from_millis(20),
        max: Duration::from_millis(100),
        ..Backoff::default()
    };
    let capture = Capture::start_with(spec, "csi", backoff, &Shutdown::new());
    let mut frame = Frame::new();
    match capture.next(&mut frame, WAIT) {
        Ok(CaptureEvent::SourceLost(why)) => {
            assert!(why.contains("no camera on CSI port"), "{why}")
        }
        other => panic!("expected SourceLost, got {other:?}"),
    }
    wait_until("three restarts", || capture.stats().reconnects >= 3);
    assert!(matches!(capture.state(), SourceState::Lost(ref m) if m.contains("exit status: 1")));
    // Still lost: no second SourceLost event, no frame.
    let again = capture.next(&mut frame, Duration::from_millis(100));
    assert!(matches!(again, Err(CameraError::Timeout(_))), "{again:?}");
    capture.stop();
}

/// A command that sends two frames and dies, four times, then streams: each wait before it is
/// reopened is twice the last (a reset on every first frame would keep it at `min`), its stats say
/// it flaps, and once it has streamed for `healthy_after` it is steady: flaps forgotten.
#[test]
fn a_flapping_command_backs_off_until_it_runs_healthily() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let frame = 32 * 32 * 3;
    let script = format!(
        "n=$(cat {runs} 2>/dev/null || echo 0); echo $((n+1)) > {runs}; \
         if [ $n -lt 4 ]; then head -c {two} /dev/zero; exit 3; fi; \
         while :; do head -c {frame} /dev/zero; sleep 0.02; done",
        runs = runs.display(),
        two = 2 * frame,
    );
    let spec = pipe(&["sh", "-c", &script], 32, 32, PixelFormat::Rgb24);
    let backoff = Backoff {
        min: Duration::from_millis(50),
        max: Duration::from_secs(10),
        healthy_after: Duration::from_millis(500),
    };
    let capture = Capture::start_with(spec, "flappy", backoff, &Shutdown::new());
    let mut frame_buf = Frame::new();
    let (mut lost_at, mut gaps, mut losses) = (None, Vec::new(), 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "no steady source within 30 s");
        match capture.next(&mut frame_buf, WAIT) {
            Ok(CaptureEvent::Frame) => {}
            Ok(CaptureEvent::SourceLost(why)) => {
                assert!(why.contains("exit status: 3"), "{why}");
                losses += 1;
                let stats = capture.stats();
                // (A consumer that lags may see the flap before the second loss's event.)
                assert!(stats.flapping || losses < 2, "{stats:?}");
                assert!(stats.next_retry.is_some(), "{stats:?}");
                assert_eq!(stats.last_error.as_deref(), Some(why.as_str()));
                lost_at = Some(Instant::now());
            }
            Ok(CaptureEvent::SourceRestored) => {
                gaps.push(lost_at.take().expect("a loss first").elapsed());
                assert!(capture.stats().restarts >= gaps.len() as u64);
            }
            Ok(CaptureEvent::SourceSteady) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(losses, 4);
    for (k, gap) in gaps.iter().enumerate() {
        // At least the doubled wait less its jitter: 50 ms x 2^k x 0.8.
        let floor = Duration::from_millis(40) * 2u32.pow(k as u32);
        assert!(
            *gap >= floor,
            "wait {k} was {gap:?}, below {floor:?}: {gaps:?}"
        );
    }
    let stats = capture.stats();
    assert_eq!(
        (
            stats.restarts,
            stats.flapping,
            stats.last_error,
            stats.next_retry
        ),
        (0, false, None, None)
    );
    capture.stop();
}

#[test]
fn a_recording_that_ends_ends_the_capture_after_its_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("short.y4m");
    write_y4m(&path, (32, 16), "420jpeg", 3);
    let capture = Capture::start(file(&path, false), "replay");
    let mut frame = Frame::new();
    let mut seen = Vec::new();
    let end = loop {
        match capture.next(&mut frame, WAIT) {
            Ok(CaptureEvent::Frame) => seen.push(frame.seq),
            other => break other,
        }
    };
    assert!(matches!(end, Err(CameraError::Ended)), "{end:?}");
    assert_eq!(
        seen.last(),
        Some(&3),
        "the last frame is never dropped: {seen:?}"
    );
    assert_stripes(&frame, 2, 4);
    let stats = capture.stats();
    assert_eq!(
        (stats.captured, stats.state.clone()),
        (3, SourceState::Ended)
    );
    assert_eq!(stats.dropped, 3 - seen.len() as u64);
    assert!(matches!(
        capture.next(&mut frame, WAIT),
        Err(CameraError::Ended)
    ));
    capture.stop();
}

#[test]
fn a_slow_consumer_always_gets_the_newest_frame_and_the_rest_are_dropped() {
    let spec = SourceSpec::Synthetic {
        width: 64,
        height: 48,
        fps: 0.0,
    };
    let capture = Capture::start(spec, "soak");
    let mut frame = Frame::new();
    let mut expected = Frame::new();
    let (mut last, mut gaps) = (0u64, 0);
    for _ in 0..20 {
        let captured_before = capture.stats().captured;
        assert_eq!(capture.next(&mut frame, WAIT).unwrap(), CaptureEvent::Frame);
        assert!(frame.seq > last, "seq {} after {last}", frame.seq);
        assert!(
            frame.seq >= captured_before,
            "got {} though {captured_before} existed",
            frame.seq
        );
        gaps += usize::from(frame.seq > last + 1);
        last = frame.seq;
        // The pixels belong to that very frame: no torn or mixed-up buffers.
        expected.resize(64, 48);
        SyntheticSource::draw(frame.seq - 1, &mut expected);
        assert!(
            frame.rgb == expected.rgb,
            "frame {} does not hold its own pixels",
            frame.seq
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = capture.stats();
    assert!(gaps > 0 && stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.state, SourceState::Running);
    capture.stop();
}

#[cfg(feature = "v4l2")]
#[test]
fn a_missing_camera_is_a_clear_error_and_is_retried_with_backoff() {
    let spec = parse_source("/dev/video99", 15.0).unwrap();
    let err = open(&spec, Shutdown::new())
        .err()
        .expect("no /dev/video99 here");
    let msg = err.to_string();
    assert!(
        msg.contains("cannot open /dev/video99") && msg.contains("no such device"),
        "{msg}"
    );
    assert!(err.is_transient());

    let backoff = Backoff {
        min: Duration::from_millis(20),
        max: Duration::from_millis(80),
        ..Backoff::default()
    };
    let capture = Capture::start_with(spec, "door", backoff, &Shutdown::new());
    let mut frame = Frame::new();
    match capture.next(&mut frame, WAIT) {
        Ok(CaptureEvent::SourceLost(why)) => assert!(why.contains("/dev/video99"), "{why}"),
        other => panic!("expected SourceLost, got {other:?}"),
    }
    wait_until("reconnect attempts", || capture.stats().reconnects >= 4);
    assert!(matches!(capture.state(), SourceState::Lost(_)));
    capture.stop();
}

#[test]
fn stopping_a_capture_in_back_off_does_not_wait_for_the_back_off() {
    // A 30 s back-off: stop must interrupt it. (This would hang the test run if it did not.)
    let spec = pipe(&["sh", "-c", "exit 1"], 32, 32, PixelFormat::Rgb24);
    let backoff = Backoff {
        min: Duration::from_secs(30),
        max: Duration::from_secs(30),
        ..Backoff::default()
    };
    let capture = Capture::start_with(spec, "csi", backoff, &Shutdown::new());
    let mut frame = Frame::new();
    assert!(matches!(
        capture.next(&mut frame, WAIT),
        Ok(CaptureEvent::SourceLost(_))
    ));
    capture.stop();
}

#[test]
fn facecv_source_strings_keep_working() {
    let v4l2 = |dev: &str| SourceSpec::V4l2 {
        device: dev.into(),
        width: 640,
        height: 480,
        fps: 15.0,
        format: None,
    };
    assert_eq!(parse_source("0", 15.0).unwrap(), v4l2("/dev/video0"));
    assert_eq!(parse_source(" 2 ", 15.0).unwrap(), v4l2("/dev/video2"));
    assert_eq!(
        parse_source("/dev/video1", 15.0).unwrap(),
        v4l2("/dev/video1")
    );
    assert_eq!(
        parse_source("synthetic", 5.0).unwrap(),
        SourceSpec::Synthetic {
            width: 640,
            height: 480,
            fps: 5.0
        }
    );

    let SourceSpec::Pipe {
        command,
        format,
        width,
        height,
    } = parse_source("rtsp://user:pw@cam.local:554/stream1", 10.0).unwrap()
    else {
        panic!("rtsp is a pipe");
    };
    assert_eq!(
        (command[0].as_str(), format, width, height),
        ("ffmpeg", PixelFormat::Rgb24, 640, 480)
    );
    let line = command.join(" ");
    assert!(
        line.contains("-rtsp_transport tcp -i rtsp://user:pw@cam.local:554/stream1"),
        "{line}"
    );
    assert!(line.ends_with("-f rawvideo -pix_fmt rgb24 -"), "{line}");
    let SourceSpec::Pipe { command, .. } = parse_source("https://cam/video.mjpg", 10.0).unwrap()
    else {
        panic!("http is a pipe");
    };
    assert!(!command.contains(&"-rtsp_transport".to_string()));

    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.y4m");
    write_y4m(&clip, (16, 16), "420", 1);
    for path in [clip.as_path(), dir.path()] {
        let want = SourceSpec::File {
            path: PathBuf::from(path),
            fps: 10.0,
            looped: false,
        };
        assert_eq!(parse_source(path.to_str().unwrap(), 10.0).unwrap(), want);
    }
    let err = parse_source("/nope/clip.mp4", 10.0)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("source \"/nope/clip.mp4\" is not a camera index"),
        "{err}"
    );
}
