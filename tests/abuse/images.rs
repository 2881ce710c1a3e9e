//! Memory is bounded whatever the upload: image bombs, forged headers and cut uploads sent to the
//! real binary's face routes are refused from their header with a clear 4xx, the process's peak
//! RSS (`VmHWM`) stays near idle, and a real phone-sized photo still enrols and is recognised.

mod bombs;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use http::StatusCode;

use crate::common::{self, Binary};

fn photo(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/faces")
        .join(rel);
    std::fs::read(p).unwrap()
}

fn schneider(n: usize) -> Vec<u8> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces/johns/John_Schneider");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::read(&files[n]).unwrap()
}

/// Peak resident memory of a process so far, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

async fn start() -> (tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = common::write_config(dir.path(), port, "");
    let facecv = Binary::start(&config, port).await;
    (dir, facecv)
}

#[tokio::test]
async fn image_bombs_are_refused_and_peak_memory_stays_near_idle() {
    // Everything is built before the appliance starts: it drops idle keep-alive connections,
    // and building a bomb takes a while in a debug build.
    let small = bombs::jpeg(&[128; 16 * 16 * 3], 16, 16);
    let john = schneider(1);
    let png = photo("misc/astronaut.png");
    let too_large = (StatusCode::UNPROCESSABLE_ENTITY, "image_too_large");
    let not_an_image = (StatusCode::UNPROCESSABLE_ENTITY, "not_an_image");
    let cases = [
        ("13000² PNG", bombs::png_zeros(13000, 13000, 2), too_large),
        (
            "20000² grey PNG",
            bombs::png_zeros(20000, 20000, 0),
            too_large,
        ),
        (
            "JPEG SOF 13000²",
            bombs::jpeg_forged_size(&small, 13000, 13000),
            too_large,
        ),
        (
            "JPEG SOF 65535²",
            bombs::jpeg_forged_size(&small, 65535, 65535),
            too_large,
        ),
        (
            "JPEG SOF 6000x8000",
            bombs::jpeg_forged_size(&small, 6000, 8000),
            not_an_image,
        ),
        (
            "PNG IHDR 1x100000000",
            bombs::png_forged_header(1, 100_000_000),
            too_large,
        ),
        ("a third of a JPEG", bombs::cut(&john, 1, 3), not_an_image),
        ("a third of a PNG", bombs::cut(&png, 1, 3), not_an_image),
    ];
    let (_dir, facecv) = start().await;
    let api = &facecv.api;
    let pid = facecv.child.id();
    // Warm up: the API's engine (runtime and models) is made on first use.
    let (code, v) = common::post_form(
        api,
        "/api/v1/insightface/register",
        &[("name", "John Schneider")],
        &[("file", schneider(0))],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let idle = vm_hwm_kib(pid);

    for (name, bytes, (status, code)) in cases {
        for route in ["recognize", "detect", "register"] {
            let started = Instant::now();
            let (got, v) = common::post_form(
                api,
                &format!("/api/v1/insightface/{route}"),
                &[("name", "Bomb")],
                &[("file", bytes.clone())],
            )
            .await;
            assert_eq!(
                (got, v["error"]["code"].as_str()),
                (status, Some(code)),
                "{name} on {route}: {v}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name} on {route} took {:?}",
                started.elapsed()
            );
            if code == "image_too_large" {
                let msg = v["error"]["message"].as_str().unwrap();
                assert!(msg.contains("api.max_image_pixels"), "{name}: {msg}");
            }
        }
    }
    let (code, v) = api.get("/api/v1/faces?name=Bomb").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["total"], 0,
        "nothing was enrolled from a bomb or a cut photo: {v}"
    );
    let peak = vm_hwm_kib(pid);
    println!(
        "VmHWM: {} MiB after warm-up, {} MiB after the bombs (+{} KiB)",
        idle / 1024,
        peak / 1024,
        peak - idle
    );
    assert!(
        peak - idle < 50 * 1024,
        "peak RSS grew by {} MiB",
        (peak - idle) / 1024
    );

    // The engine is free for everyone else.
    let (code, v) = common::post_form(
        api,
        "/api/v1/insightface/recognize",
        &[],
        &[("file", schneider(2))],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v[0]["name"], "John Schneider", "{v}");
}

#[tokio::test]
async fn a_phone_sized_photo_enrols_and_is_recognised() {
    let phone = |n: usize| {
        let img = image::load_from_memory(&schneider(n)).unwrap().to_rgb8();
        let (w, h) = img.dimensions();
        bombs::phone_sized(img.as_raw(), w, h, 6000, 8000)
    };
    // Enrol from a 48 MP JPEG and recognise a 48 MP PNG (both built before the appliance starts:
    // it drops idle keep-alive connections), after a warm-up on an ordinary photo.
    let jpeg = bombs::jpeg(&phone(0), 6000, 8000);
    let png = bombs::png(&phone(1), 6000, 8000);
    println!(
        "48 MP JPEG: {} KiB, PNG: {} KiB",
        jpeg.len() / 1024,
        png.len() / 1024
    );
    let (_dir, facecv) = start().await;
    let api = &facecv.api;
    let pid = facecv.child.id();
    let (code, v) = common::post_form(
        api,
        "/api/v1/insightface/detect",
        &[],
        &[("file", schneider(3))],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let idle = vm_hwm_kib(pid);
    let (code, v) = common::post_form(
        api,
        "/api/v1/insightface/register",
        &[("name", "John Schneider")],
        &[("file", jpeg)],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) =
        common::post_form(api, "/api/v1/insightface/recognize", &[], &[("file", png)]).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v[0]["name"], "John Schneider", "{v}");
    let bbox = v[0]["bbox"].as_array().unwrap();
    let width = bbox[2].as_i64().unwrap() - bbox[0].as_i64().unwrap();
    assert!(width > 100, "the face is found at the reduced scale: {v}");
    let peak = vm_hwm_kib(pid);
    println!(
        "VmHWM: {} MiB after warm-up, {} MiB after two 48 MP photos",
        idle / 1024,
        peak / 1024
    );
    assert!(
        peak - idle < 100 * 1024,
        "peak RSS grew by {} MiB",
        (peak - idle) / 1024
    );
}
