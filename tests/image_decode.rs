//! The upload decoder (`facecv::vision::decode`) against what a hostile client sends: bombs,
//! forged headers, cut uploads, and (property tests) arbitrary and mutated bytes. Whatever the
//! bytes, it never panics, never allocates past a bound, and either decodes within the bound or
//! answers with a typed error.
//!
//! Every allocation of this test binary is counted, so "never allocates past a bound" is measured,
//! not assumed; the tests take a lock so that one test's allocations are not counted in another's.

#[path = "abuse/images/bombs.rs"]
mod bombs;

use std::path::PathBuf;
use std::sync::Mutex;

use facecv::vision::decode::{decode, read_header, ImageFormat};
use facecv::vision::{ImageLimits, VisionError};
use proptest::prelude::*;

#[path = "common/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// One test at a time, so that the allocation peak is this test's.
static SERIAL: Mutex<()> = Mutex::new(());

/// Most a decode may allocate on top of what was live before it: the output (long side below
/// 2048 px, 12 MiB), a progressive JPEG's coefficients (32 MiB at most) and the decoders' rows.
const BOUND: usize = 64 << 20;

fn photo(rel: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/faces")
        .join(rel);
    std::fs::read(p).unwrap()
}

fn john() -> Vec<u8> {
    photo("johns/John_Schneider/000288_00925786.jpg")
}

/// Decodes within the default limits, checking the bound and what an answer may be.
fn decode_bounded(bytes: &[u8]) -> Result<facecv::vision::decode::Decoded, VisionError> {
    let (result, peak) = counting_alloc::peak_during(|| decode(bytes, &ImageLimits::default()));
    assert!(
        peak <= BOUND,
        "{} MiB allocated for {} bytes",
        peak >> 20,
        bytes.len()
    );
    match &result {
        Ok(d) => {
            assert_eq!(d.rgb.len(), d.width as usize * d.height as usize * 3);
            assert!(d.rgb.len() <= 16 << 20, "{}x{} decoded", d.width, d.height);
            let (w, h) = d.original;
            assert!(u64::from(w) * u64::from(h) <= ImageLimits::DEFAULT_MAX_PIXELS);
        }
        Err(
            VisionError::ImageDecode(_)
            | VisionError::ImageFormat(_)
            | VisionError::ImageTooLarge { .. },
        ) => {}
        Err(e) => panic!("not an image error: {e:?}"),
    }
    result
}

fn code(e: &VisionError) -> &'static str {
    match e {
        VisionError::ImageDecode(_) => "not_an_image",
        VisionError::ImageFormat(_) => "unsupported_image_format",
        VisionError::ImageTooLarge { .. } => "image_too_large",
        _ => "other",
    }
}

#[test]
fn bombs_are_refused_from_their_header_without_allocating() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let small = bombs::jpeg(&[128; 16 * 16 * 3], 16, 16);
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "13000² RGB PNG",
            bombs::png_zeros(13000, 13000, 2),
            "image_too_large",
        ),
        (
            "20000² grey PNG",
            bombs::png_zeros(20000, 20000, 0),
            "image_too_large",
        ),
        (
            "1x100000000 PNG",
            bombs::png_forged_header(1, 100_000_000),
            "image_too_large",
        ),
        (
            "SOF 13000²",
            bombs::jpeg_forged_size(&small, 13000, 13000),
            "image_too_large",
        ),
        (
            "SOF 65535²",
            bombs::jpeg_forged_size(&small, 65535, 65535),
            "image_too_large",
        ),
        // Within the pixel limit, but with the image data of a 16x16 JPEG behind it.
        (
            "SOF 6000x8000",
            bombs::jpeg_forged_size(&small, 6000, 8000),
            "not_an_image",
        ),
    ];
    for (name, bytes, want) in cases {
        let (result, peak) =
            counting_alloc::peak_during(|| decode(&bytes, &ImageLimits::default()));
        let Err(err) = result else {
            panic!("{name} decoded");
        };
        assert_eq!(code(&err), want, "{name}: {err}");
        // The header reader and the walk over a JPEG's segments allocate next to nothing.
        assert!(
            peak < 1 << 20,
            "{name}: {peak} bytes allocated to refuse it"
        );
        if want == "image_too_large" {
            let msg = err.to_string();
            assert!(msg.contains("api.max_image_pixels"), "{name}: {msg}");
        }
    }
    let err = decode(&bombs::png_zeros(13000, 13000, 2), &ImageLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "image is 13000x13000: 169000000 pixels, more than api.max_image_pixels = 67108864"
    );
}

#[test]
fn a_bomb_within_the_limit_is_decoded_reduced_within_the_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // 4100x4100 black: 50 MB of pixels in a 300 KB PNG, decoded into 1025x1025 (the debug build's
    // box filter is slow; the bench decodes an 8000x8000 one).
    let bomb = bombs::png_zeros(4100, 4100, 2);
    let d = decode_bounded(&bomb).unwrap();
    assert_eq!((d.width, d.height, d.original), (1025, 1025, (4100, 4100)));
    assert!(d.rgb.iter().all(|&v| v == 0));
}

#[test]
fn cut_uploads_are_not_images() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let jpeg = john();
    let png = photo("misc/astronaut.png");
    for (name, bytes) in [
        ("a third of a JPEG", bombs::cut(&jpeg, 1, 3)),
        ("all but the end marker", jpeg[..jpeg.len() - 2].to_vec()),
        ("a third of a PNG", bombs::cut(&png, 1, 3)),
        ("a PNG without IEND", png[..png.len() - 12].to_vec()),
    ] {
        let Err(err) = decode_bounded(&bytes) else {
            panic!("{name} decoded");
        };
        assert_eq!(code(&err), "not_an_image", "{name}: {err}");
        assert!(err.to_string().contains("truncated"), "{name}: {err}");
    }
    // The whole files decode, at their own size.
    assert!(decode_bounded(&jpeg).is_ok());
    assert!(decode_bounded(&png).is_ok());
}

#[test]
fn phone_photos_are_decoded_reduced_and_the_same_picture() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let small = image::load_from_memory(&john()).unwrap().to_rgb8();
    let (w, h) = small.dimensions();
    let big = bombs::phone_sized(small.as_raw(), w, h, 6000, 8000);
    let jpeg = bombs::jpeg(&big, 6000, 8000);
    let png = bombs::png(&big, 6000, 8000);
    drop(big);
    for (name, bytes, size) in [("JPEG", jpeg, (1500, 2000)), ("PNG", png, (858, 1143))] {
        let d = decode_bounded(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((d.width, d.height), size, "{name}");
        // The middle of the picture is the photo's middle, reduced.
        let px = |x: u32, y: u32| d.rgb[((y * d.width + x) * 3) as usize] as i32;
        let (sx, sy) = (w / 2, h / 2);
        let want = small.get_pixel(sx, sy)[0] as i32;
        let got = px(d.width / 2, d.height / 2);
        assert!(
            (want - got).abs() < 40,
            "{name}: centre {got}, photo {want}"
        );
    }
}

#[test]
fn the_header_reader_says_format_and_size() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let h = read_header(&john()).unwrap();
    assert_eq!(h.format, ImageFormat::Jpeg);
    let img = image::load_from_memory(&john()).unwrap();
    assert_eq!((h.width, h.height), (img.width(), img.height()));
    let h = read_header(&bombs::png_zeros(13000, 5, 0)).unwrap();
    assert_eq!((h.format, h.width, h.height), (ImageFormat::Png, 13000, 5));
}

/// Mutations of a real file: bytes overwritten, a cut, a forged size.
fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let len = base.len();
    (
        prop::collection::vec((0..len, any::<u8>()), 0..8),
        prop::option::of(0..len),
        prop::option::of((any::<u16>(), any::<u16>())),
    )
        .prop_map(move |(flips, cut, size)| {
            let mut b = base.clone();
            if let Some((w, h)) = size {
                if b.starts_with(&[0xFF, 0xD8]) {
                    b = bombs::jpeg_forged_size(&b, w, h);
                } else {
                    b[16..20].copy_from_slice(&u32::from(w).to_be_bytes());
                    b[20..24].copy_from_slice(&u32::from(h).to_be_bytes());
                }
            }
            for (i, v) in flips {
                b[i] = v;
            }
            if let Some(n) = cut {
                b.truncate(n);
            }
            b
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let _ = read_header(&bytes);
        let _ = decode_bounded(&bytes);
        let mut jpeg = vec![0xFF, 0xD8, 0xFF];
        jpeg.extend(&bytes);
        let _ = decode_bounded(&jpeg);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(&bytes);
        let _ = decode_bounded(&png);
    }

    #[test]
    fn mutated_jpegs_decode_within_the_bound_or_fail_typed(bytes in mutated(john())) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let header = read_header(&bytes);
        if let Ok(d) = decode_bounded(&bytes) {
            let h = header.expect("a decodable JPEG has a readable header");
            prop_assert_eq!(d.original, (h.width, h.height));
        }
    }

    #[test]
    fn mutated_pngs_decode_within_the_bound_or_fail_typed(
        bytes in mutated(bombs::png(&[90; 40 * 30 * 3], 40, 30))
    ) {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let header = read_header(&bytes);
        if let Ok(d) = decode_bounded(&bytes) {
            let h = header.expect("a decodable PNG has a readable header");
            prop_assert_eq!(d.original, (h.width, h.height));
        }
    }
}
