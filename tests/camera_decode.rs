//! Frames are decoded only when analysis takes them: a camera much faster than its analysis
//! rate costs its captures, not a JPEG decode each, and an unpaced file is read only as fast as
//! analysis takes its frames. Told through the real binary's camera
//! status, and through the capture itself for frames that cannot be decoded.

mod common;

use std::path::Path;
use std::time::Duration;

use common::video::{frame_with, photos_of, root, write_mjpeg};
use common::{eventually, free_port, Binary};
use facecv::camera::{
    CameraError, Capture, CaptureEvent, Frame, PixelFormat, SourceSpec, SourceState,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn camera(id: &str, path: &Path, file_fps: u32) -> String {
    format!(
        "[[cameras]]\ncamera_id = \"{id}\"\nfps = 10\nautostart = true\n\
         spec = {{ kind = \"file\", path = \"{}\", fps = {file_fps}, looped = true }}\n",
        path.display()
    )
}

fn counts(v: &Value) -> (u64, u64, u64) {
    let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
    (
        n("frames_captured"),
        n("frames_decoded"),
        n("frames_analysed"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_mjpeg_camera_decodes_only_the_frames_it_analyses() {
    let dir = tempfile::tempdir().unwrap();
    let photos = photos_of("John_Savage");
    let frames: Vec<_> = [None, Some(photos[0].as_path())]
        .iter()
        .map(|p| frame_with(*p))
        .collect();
    let clip = dir.path().join("door.mjpeg");
    write_mjpeg(&clip, &frames);
    let port = free_port();
    let config = common::write_config(
        dir.path(),
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n\n{}\n{}",
            root().join("models").display(),
            camera("unpaced", &clip, 0),
            camera("thirty", &clip, 30),
        ),
    );
    let mut bin = Binary::start(&config, port).await;
    for id in ["unpaced", "thirty"] {
        let api = bin.api.clone();
        eventually(Duration::from_secs(60), "30 frames analysed", || {
            let api = api.clone();
            async move {
                let (_, v) = api.get(&format!("/api/v1/cameras/{id}")).await;
                v["frames_analysed"].as_u64() >= Some(30)
            }
        })
        .await;
        let (_, v) = bin.api.get(&format!("/api/v1/cameras/{id}")).await;
        let (captured, decoded, analysed) = counts(&v);
        // The counters are read one after the other while the camera runs: one frame may be
        // decoded and not yet analysed, or analysed since the decodes were copied.
        assert!(
            decoded.abs_diff(analysed) <= 1,
            "{id}: {decoded} decodes for {analysed} analysed frames: {v}"
        );
        if id == "thirty" {
            // A camera at 30 fps analysed at 10: two captures in three are replaced unseen.
            assert!(
                captured >= 2 * analysed,
                "{id}: {captured} captured for {analysed} analysed: {v}"
            );
        } else {
            // An unpaced file is read as analysis takes it: one frame may wait in the slot
            // and one in the reader, but no reading ahead of analysis.
            assert!(
                captured <= analysed + 3,
                "{id}: {captured} captured for {analysed} analysed: {v}"
            );
        }
        assert_eq!(v["decode_failures"], 0, "{v}");
    }
    bin.sigterm();
}

/// A JPEG the splitter accepts (SOI, a scan, EOI) that no decoder can read: no frame header.
fn bad_jpeg() -> Vec<u8> {
    let mut j = vec![0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x04, 1, 2];
    j.extend([7u8; 64]);
    j.extend([0xFF, 0xD9]);
    j
}

#[test]
fn a_file_with_a_bad_jpeg_fails_when_analysis_decodes_it() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("bad.mjpeg");
    std::fs::write(&clip, bad_jpeg()).unwrap();
    let spec = SourceSpec::File {
        path: clip,
        fps: 0.0,
        looped: false,
    };
    let capture = Capture::start(spec, "replay");
    let mut frame = Frame::new();
    assert_eq!(capture.next(&mut frame, WAIT).unwrap(), CaptureEvent::Frame);
    assert!(
        !frame.is_decoded() && frame.rgb.is_empty(),
        "no stale pixels before decode"
    );
    let err = capture.decode(&mut frame).unwrap_err();
    assert!(
        matches!(&err, CameraError::Failed(m) if m.contains("bad JPEG")),
        "{err:?}"
    );
    assert!(matches!(capture.state(), SourceState::Failed(_)));
    assert!(matches!(
        capture.next(&mut frame, WAIT),
        Err(CameraError::Failed(_))
    ));
    let stats = capture.stats();
    assert_eq!((stats.decoded, stats.decode_failures), (0, 1));
    capture.stop();
}

#[test]
fn a_live_source_of_bad_jpegs_is_skipped_counted_and_then_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jpg");
    std::fs::write(&bad, bad_jpeg()).unwrap();
    let script = format!("while :; do cat '{}'; sleep 0.005; done", bad.display());
    let spec = SourceSpec::Pipe {
        command: vec!["sh".into(), "-c".into(), script],
        width: 64,
        height: 48,
        format: PixelFormat::Mjpeg,
    };
    let capture = Capture::start(spec, "door");
    let mut frame = Frame::new();
    let mut skipped = 0;
    let lost = loop {
        match capture.next(&mut frame, WAIT).expect("frames or a loss") {
            CaptureEvent::Frame => {
                let err = capture.decode(&mut frame).unwrap_err();
                assert!(matches!(err, CameraError::Decode(_)), "{err:?}");
                assert!(frame.rgb.is_empty() && frame.width == 0);
                skipped += 1;
            }
            CaptureEvent::SourceLost(why) => break why,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(lost.contains("30 undecodable frames in a row"), "{lost}");
    assert_eq!(skipped, 30);
    let stats = capture.stats();
    assert_eq!((stats.decoded, stats.decode_failures), (0, 30));
    capture.stop();
}

#[test]
fn decoding_is_done_once_and_gives_the_sources_picture() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("one.mjpeg");
    write_mjpeg(&clip, &[frame_with(None)]);
    let spec = SourceSpec::File {
        path: clip,
        fps: 0.0,
        looped: false,
    };
    let capture = Capture::start(spec, "replay");
    let mut frame = Frame::new();
    assert_eq!(capture.next(&mut frame, WAIT).unwrap(), CaptureEvent::Frame);
    capture.decode(&mut frame).unwrap();
    let first = frame.rgb.clone();
    capture.decode(&mut frame).unwrap();
    assert_eq!((frame.width, frame.height), (640, 480));
    assert_eq!(frame.rgb, first);
    assert_eq!(capture.stats().decoded, 1, "a second decode is free");
    capture.stop();
}
