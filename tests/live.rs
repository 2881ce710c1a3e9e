//! The console's Cameras page against the real binary, the real runtime and models: an installer
//! lists the V4L2 devices, enrols John Salley by standing him in front of the door camera ("take
//! five good shots now"), watches the camera live with his box and name drawn in, and finds that
//! viewers count against `api.max_streams`, that nothing is encoded once the last viewer leaves,
//! and that a stopped camera ends its live view and refuses new ones.
//!
//! The cameras play folders of frames made of the real photos (PNG, so that the API's detector
//! sees exactly the pixels the camera saw). Nothing here dials out: no webhook, no MQTT.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::video::{frame_with, photos_of, root};
use common::{eventually, free_port, post_form, Api, Binary};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use image::RgbImage;
use serde_json::{json, Value};

/// Five views of John Salley at the door (photos 0-2 stay unseen by the camera, for checking).
fn door_frames(dir: &Path) -> Vec<RgbImage> {
    let folder = dir.join("door");
    std::fs::create_dir_all(&folder).unwrap();
    let salley = photos_of("John_Salley");
    let frames: Vec<RgbImage> = salley[3..8].iter().map(|p| frame_with(Some(p))).collect();
    for (i, f) in frames.iter().enumerate() {
        f.save(folder.join(format!("frame_{i:03}.png"))).unwrap();
    }
    frames
}

/// An empty doorway.
fn empty_frames(dir: &Path) {
    let folder = dir.join("empty");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..3 {
        frame_with(None)
            .save(folder.join(format!("frame_{i:03}.png")))
            .unwrap();
    }
}

fn config(dir: &Path, port: u16) -> PathBuf {
    let camera = |id: &str| {
        format!(
            "[[cameras]]\ncamera_id = \"{id}\"\nfps = 5\nautostart = true\n\
             spec = {{ kind = \"file\", path = \"{}\", fps = 5, looped = true }}\n",
            dir.join(id).display()
        )
    };
    let path = common::write_config(
        dir,
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n\n{}\n{}\n{}",
            root().join("models").display(),
            camera("door"),
            camera("empty"),
            "[[cameras]]\ncamera_id = \"idle\"\nsource = \"synthetic\"\nautostart = false\n",
        ),
    );
    // One live view at a time, so that the second viewer is refused.
    let text =
        std::fs::read_to_string(&path)
            .unwrap()
            .replacen("[api]\n", "[api]\nmax_streams = 1\n", 1);
    std::fs::write(&path, text).unwrap();
    path
}

fn png(img: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A live view being read: multipart parts taken off the body as they come.
struct Live {
    body: Incoming,
    buf: BytesMut,
}

async fn open(base: &str, path: &str) -> Response<Incoming> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::get(format!("{base}{path}"))
        .body(Empty::new())
        .unwrap();
    client.request(req).await.expect("the API answers")
}

impl Live {
    async fn start(api: &Api, path: &str) -> Live {
        let resp = open(&api.base, path).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "multipart/x-mixed-replace; boundary=frame"
        );
        Live {
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }

    /// The next JPEG, or `None` once the stream has ended (with the closing boundary).
    async fn next_jpeg(&mut self) -> Option<Bytes> {
        loop {
            if let Some(jpeg) = self.take_part() {
                return Some(jpeg);
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("a part within 20 s");
            match frame {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => panic!("the live view broke: {e}"),
                None => {
                    let rest = String::from_utf8_lossy(&self.buf);
                    assert!(
                        rest.contains("--frame--"),
                        "ended without the closing line: {rest:?}"
                    );
                    return None;
                }
            }
        }
    }

    fn take_part(&mut self) -> Option<Bytes> {
        let text = &self.buf[..];
        let start = find(text, b"--frame\r\n")?;
        let head_end = start + find(&text[start..], b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&text[start..head_end]).to_ascii_lowercase();
        assert!(head.contains("content-type: image/jpeg"), "{head}");
        let len: usize = head
            .split("content-length: ")
            .nth(1)?
            .split("\r\n")
            .next()?
            .parse()
            .unwrap();
        if text.len() < head_end + len {
            return None;
        }
        let _ = self.buf.split_to(head_end);
        Some(self.buf.split_to(len).freeze())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn metric(api: &Api, name: &str) -> f64 {
    let (_, text) = api.get("/metrics").await;
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics: {text}"))
}

fn is_green(p: [u8; 3]) -> bool {
    p[1] > 150 && p[0] < 110 && p[2] < 130
}

/// The door frame `live` shows (the nearest in pixels) and the face box the API finds in it.
fn nearest<'a>(live: &RgbImage, frames: &'a [(RgbImage, [i64; 4])]) -> &'a (RgbImage, [i64; 4]) {
    let diff = |f: &RgbImage| -> u64 {
        f.pixels()
            .zip(live.pixels())
            .step_by(7)
            .map(|(a, b)| (0..3).map(|i| a[i].abs_diff(b[i]) as u64).sum::<u64>())
            .sum()
    };
    frames.iter().min_by_key(|(f, _)| diff(f)).unwrap()
}

/// The box is drawn in green just outside the face on all four sides, and the face itself is
/// left as the camera saw it.
fn assert_box_around_face(live: &RgbImage, frame: &RgbImage, bbox: [i64; 4]) {
    let [x1, y1, x2, y2] = bbox;
    let (mx, my) = ((x1 + x2) / 2, (y1 + y2) / 2);
    let px = |img: &RgbImage, x: i64, y: i64| img.get_pixel(x as u32, y as u32).0;
    // Lines are 3 px wide at 480p and drawn outside the box; JPEG blurs their edges.
    for (side, x, y) in [
        ("left", x1 - 2, my),
        ("right", x2 + 1, my),
        ("bottom", mx, y2 + 1),
        ("top", mx, y1 - 2),
    ] {
        let near = (-1..=1).any(|d| {
            let (x, y) = if side == "left" || side == "right" {
                (x + d, y)
            } else {
                (x, y + d)
            };
            is_green(px(live, x, y)) && !is_green(px(frame, x, y))
        });
        assert!(
            near,
            "no green line on the {side} of the face {bbox:?}: {:?}",
            px(live, x, y)
        );
    }
    let centre = px(live, mx, my);
    let was = px(frame, mx, my);
    assert!(
        (0..3).all(|i| centre[i].abs_diff(was[i]) < 40),
        "the face is painted over: {centre:?} was {was:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installer_enrols_at_the_door_and_watches_the_camera_live() {
    let dir = tempfile::tempdir().unwrap();
    let frames = door_frames(dir.path());
    empty_frames(dir.path());
    let port = free_port();
    let bin = Binary::start(&config(dir.path(), port), port).await;
    let api = bin.api.clone();
    for camera in ["door", "empty"] {
        let api = api.clone();
        eventually(Duration::from_secs(30), "the cameras to run", || {
            let api = api.clone();
            async move {
                let (_, v) = api.get(&format!("/api/v1/cameras/{camera}")).await;
                v["state"] == "running" && v["frames_analysed"].as_u64() > Some(0)
            }
        })
        .await;
    }

    // The devices this machine has (often none): a list all the same.
    let (code, v) = api.get("/api/v1/cameras/devices").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert!(v["devices"].is_array(), "{v}");

    // Unknown and stopped cameras.
    for path in ["live.mjpg", "snapshot.jpg"] {
        let (code, _) = api.get(&format!("/api/v1/cameras/nobody/{path}")).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, v) = api.get(&format!("/api/v1/cameras/idle/{path}")).await;
        assert_eq!(code, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["error"]["code"], "camera_not_running");
    }
    let (code, v) = api
        .post("/api/v1/cameras/idle/enrol", json!({"name": "Nobody"}))
        .await;
    assert_eq!(
        (code, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("camera_not_running"))
    );
    let (code, v) = api
        .post(
            "/api/v1/cameras/door/enrol",
            json!({"name": "X", "timeout_s": 61}),
        )
        .await;
    assert_eq!(
        (code, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("timeout_s"))
    );

    // An empty doorway gives no good shots, and says what it saw.
    let (code, v) = api
        .post(
            "/api/v1/cameras/empty/enrol",
            json!({"name": "Nobody", "shots": 3, "timeout_s": 3}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["code"], "no_good_shots", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(": 0 of the "), "{message}");
    assert!(
        !message.contains(" 0 of the 0 "),
        "frames were analysed: {message}"
    );

    // John Salley stands at the door; a second enrolment on the same camera waits its turn.
    let first = {
        let api = api.clone();
        tokio::spawn(async move {
            api.post(
                "/api/v1/cameras/door/enrol",
                json!({"name": "John Salley", "shots": 5, "timeout_s": 60,
                       "metadata": {"department": "Front desk"}}),
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, v) = api
        .post("/api/v1/cameras/door/enrol", json!({"name": "Someone"}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "enrolment_in_progress");
    let (code, v) = first.await.unwrap();
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["face_ids"].as_array().unwrap().len(), 5, "{v}");
    let picked = v["video"]["picked"].as_array().unwrap();
    assert_eq!(picked.len(), 5);
    assert!(
        picked[0]["quality"].as_f64() >= picked[4]["quality"].as_f64(),
        "{v}"
    );
    assert_eq!(v["faces"][0]["metadata"]["department"], "Front desk", "{v}");
    // Each shot keeps its aligned crop and its frame, as every enrolment does.
    for id in v["face_ids"].as_array().unwrap() {
        common::assert_pictures(&api, id.as_str().unwrap()).await;
    }

    // A photo the camera never showed is recognised as him.
    let photo = std::fs::read(&photos_of("John_Salley")[0]).unwrap();
    let (code, v) = post_form(&api, "/api/v1/faces/recognize", &[], &[("file", photo)]).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["faces"][0]["name"], "John Salley", "{v}");

    // Where the API finds his face in each door frame.
    let mut boxed = Vec::new();
    for f in frames {
        let (code, v) = post_form(&api, "/api/v1/faces/detect", &[], &[("file", png(&f))]).await;
        assert_eq!(
            (code, v["face_count"].clone()),
            (StatusCode::OK, json!(1)),
            "{v}"
        );
        let b: Vec<i64> = v["faces"][0]["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_i64().unwrap())
            .collect();
        boxed.push((f, [b[0], b[1], b[2], b[3]]));
    }

    // The live view: pictures that decode, with a green box around his face.
    let mut viewer = Live::start(&api, "/api/v1/cameras/door/live.mjpg?fps=5").await;
    for _ in 0..3 {
        let jpeg = viewer.next_jpeg().await.expect("a picture");
        let live = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
            .expect("a JPEG")
            .to_rgb8();
        assert_eq!(live.dimensions(), (640, 480));
        let (frame, bbox) = nearest(&live, &boxed);
        assert_box_around_face(&live, frame, *bbox);
    }

    // The cap: one live view at a time (max_streams = 1); a snapshot holds no place.
    let refused = open(&api.base, "/api/v1/cameras/door/live.mjpg").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "too_many_streams");
    let snapshot = open(&api.base, "/api/v1/cameras/door/snapshot.jpg").await;
    assert_eq!(snapshot.status(), StatusCode::OK);
    assert_eq!(snapshot.headers()["content-type"], "image/jpeg");
    let jpeg = snapshot.into_body().collect().await.unwrap().to_bytes();
    let snap = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg)
        .expect("the snapshot is a JPEG");
    assert_eq!((snap.width(), snap.height()), (640, 480));
    assert_eq!(
        metric(&api, "facecv_live_viewers{camera=\"door\"}").await,
        1.0
    );

    // The first viewer leaves: the second gets in.
    drop(viewer);
    let base = api.base.clone();
    eventually(Duration::from_secs(10), "the second viewer to get in", || {
        let base = base.clone();
        async move { open(&base, "/api/v1/cameras/door/live.mjpg").await.status() == StatusCode::OK }
    })
    .await;

    // Once the last viewer has left, nothing more is encoded.
    let api2 = api.clone();
    eventually(Duration::from_secs(10), "no viewer left", || {
        let api = api2.clone();
        async move { metric(&api, "facecv_live_viewers{camera=\"door\"}").await == 0.0 }
    })
    .await;
    // A picture being encoded as the viewer left may still be counted; then nothing more.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let name = "facecv_live_frames_encoded_total{camera=\"door\"}";
    let encoded = metric(&api, name).await;
    assert!(encoded >= 3.0, "{encoded}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        metric(&api, name).await,
        encoded,
        "pictures encoded with nobody watching"
    );
    assert_eq!(
        metric(&api, "facecv_live_frames_encoded_total{camera=\"empty\"}").await,
        0.0
    );

    // Stopping the camera ends its live view cleanly, and a stopped camera has none.
    let mut viewer = Live::start(&api, "/api/v1/cameras/door/live.mjpg?fps=2").await;
    viewer.next_jpeg().await.expect("a picture");
    let (code, v) = api.post("/api/v1/cameras/door/stop", json!({})).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    while viewer.next_jpeg().await.is_some() {}
    let (code, v) = api.get("/api/v1/cameras/door/live.mjpg").await;
    assert_eq!(
        (code, v["error"]["code"].clone()),
        (StatusCode::CONFLICT, json!("camera_not_running"))
    );
    // Its place under the cap came free.
    let (code, _) = api.post("/api/v1/cameras/door/start", json!({})).await;
    assert_eq!(code, StatusCode::OK);
    let mut viewer = Live::start(&api, "/api/v1/cameras/door/live.mjpg").await;
    viewer
        .next_jpeg()
        .await
        .expect("a picture after the restart");

    // The appliance stopping ends the live view cleanly too, and does not wait for the viewer.
    let stopped = tokio::task::spawn_blocking(move || {
        let mut bin = bin;
        bin.sigterm()
    });
    while viewer.next_jpeg().await.is_some() {}
    assert!(stopped.await.unwrap().success());
}
