//! What decoding an upload costs: time and peak heap for the bombs of issue 9 (refused from their
//! header) and for 48 MP phone photos (decoded at a reduced scale), plus the process's peak RSS.
//! Every allocation is counted by a wrapper around the system allocator.
//!
//! `cargo bench --bench images`

#[path = "../tests/abuse/images/bombs.rs"]
mod bombs;

use std::time::Instant;

use facecv::vision::decode::decode;
use facecv::vision::{ImageLimits, VisionError};

#[path = "../tests/common/counting_alloc.rs"]
mod counting_alloc;
#[path = "../tests/common/procfs.rs"]
mod procfs;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

fn vm_hwm_kib() -> u64 {
    procfs::memory(procfs::Proc::Me).hwm_kib
}

fn main() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let photo =
        std::fs::read(root.join("tests/data/faces/johns/John_Schneider/000288_00925786.jpg"))
            .expect("the test photo");
    let small = image::load_from_memory(&photo).unwrap().to_rgb8();
    let (w, h) = small.dimensions();
    let big = bombs::phone_sized(small.as_raw(), w, h, 6000, 8000);
    let tiny = bombs::jpeg(&[128; 16 * 16 * 3], 16, 16);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "PNG 13000x13000 RGB bomb",
            bombs::png_zeros(13000, 13000, 2),
        ),
        (
            "PNG 20000x20000 grey bomb",
            bombs::png_zeros(20000, 20000, 0),
        ),
        (
            "PNG IHDR 1x100000000",
            bombs::png_forged_header(1, 100_000_000),
        ),
        (
            "JPEG SOF 13000x13000",
            bombs::jpeg_forged_size(&tiny, 13000, 13000),
        ),
        (
            "JPEG SOF 65535x65535",
            bombs::jpeg_forged_size(&tiny, 65535, 65535),
        ),
        (
            "JPEG SOF 6000x8000, 16x16 data",
            bombs::jpeg_forged_size(&tiny, 6000, 8000),
        ),
        ("JPEG cut at a third", bombs::cut(&photo, 1, 3)),
        (
            "PNG 8000x8000 black (in limit)",
            bombs::png_zeros(8000, 8000, 2),
        ),
        ("JPEG 6000x8000 phone photo", bombs::jpeg(&big, 6000, 8000)),
        ("PNG 6000x8000 phone photo", bombs::png(&big, 6000, 8000)),
        ("JPEG 150x150 test photo", photo.clone()),
    ];
    drop(big);
    let base_rss = vm_hwm_kib();
    println!(
        "{:<34} {:>9} {:>10} {:>11} {:>14}",
        "input", "KiB in", "ms", "peak heap", "result"
    );
    let limits = ImageLimits::default();
    for (name, bytes) in &cases {
        let mut best = f64::MAX;
        let mut peak = 0;
        let mut result = String::new();
        for _ in 0..3 {
            let t = Instant::now();
            let (r, used) = counting_alloc::peak_during(|| decode(bytes, &limits));
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
            peak = peak.max(used);
            result = match r {
                Ok(d) => format!("{}x{}", d.width, d.height),
                Err(VisionError::ImageTooLarge { .. }) => "image_too_large".into(),
                Err(VisionError::ImageDecode(_)) => "not_an_image".into(),
                Err(e) => format!("{e}"),
            };
        }
        println!(
            "{name:<34} {:>9} {best:>10.2} {:>8.1} MiB {result:>16}",
            bytes.len() / 1024,
            peak as f64 / (1 << 20) as f64
        );
    }
    println!(
        "process VmHWM: {} MiB before the decodes (the test inputs built), {} MiB after",
        base_rss / 1024,
        vm_hwm_kib() / 1024
    );
}
