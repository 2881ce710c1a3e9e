//! Videos made of the real photos in `tests/data/faces`: a person "walking up" to a camera is a
//! photo placed on a plain background, frame after frame. Written as an image folder, y4m or MJPEG,
//! the formats the camera module reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{imageops, Rgb, RgbImage};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The people of `tests/data/faces/johns` (one folder each), sorted by name.
pub fn johns() -> Vec<String> {
    let mut people: Vec<String> = std::fs::read_dir(root().join("tests/data/faces/johns"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    people.sort();
    people
}

/// The photos of one person of `tests/data/faces/johns`, sorted by name.
pub fn photos_of(person: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(root().join("tests/data/faces/johns").join(person))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
    files.sort();
    files
}

/// A 640x480 frame with `photo` scaled to 200x200 in the middle, as a person at a door camera.
pub fn frame_with(photo: Option<&Path>) -> RgbImage {
    scene(
        (640, 480),
        &photo
            .into_iter()
            .map(|p| (p, 200, (220, 120)))
            .collect::<Vec<_>>(),
    )
}

/// Writes a door camera's "video" as an image folder `dir`: one 640x480 PNG per scene
/// ([`frame_with`]), `None` an empty doorway. Returns `dir`.
pub fn write_door_frames(dir: &Path, scenes: &[Option<PathBuf>]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    for (n, scene) in scenes.iter().enumerate() {
        frame_with(scene.as_deref())
            .save(dir.join(format!("frame_{n:03}.png")))
            .unwrap();
    }
    dir.to_owned()
}

/// A `size` frame of mid grey with each photo scaled to `side` x `side` at its top-left corner.
pub fn scene(size: (u32, u32), photos: &[(&Path, u32, (i64, i64))]) -> RgbImage {
    let mut canvas = RgbImage::from_pixel(size.0, size.1, Rgb([118, 124, 120]));
    for (photo, side, (x, y)) in photos {
        let face = image::open(photo).unwrap().to_rgb8();
        let face = imageops::resize(&face, *side, *side, imageops::FilterType::Triangle);
        imageops::overlay(&mut canvas, &face, *x, *y);
    }
    canvas
}

/// Writes frames as a y4m file: 8-bit 4:4:4, full range (BT.601), as `ffmpeg -f yuv4mpegpipe`.
pub fn write_y4m(path: &Path, frames: &[RgbImage]) {
    let (w, h) = frames[0].dimensions();
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(
        out,
        "YUV4MPEG2 W{w} H{h} F10:1 Ip A1:1 C444 XCOLORRANGE=FULL"
    )
    .unwrap();
    for f in frames {
        assert_eq!(f.dimensions(), (w, h), "a y4m keeps one size");
        let mut planes = vec![Vec::new(), Vec::new(), Vec::new()];
        for p in f.pixels() {
            let [r, g, b] = p.0.map(f32::from);
            let y = 0.299 * r + 0.587 * g + 0.114 * b;
            let u = 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b;
            let v = 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b;
            for (plane, value) in planes.iter_mut().zip([y, u, v]) {
                plane.push(value.round().clamp(0.0, 255.0) as u8);
            }
        }
        out.write_all(b"FRAME\n").unwrap();
        for plane in planes {
            out.write_all(&plane).unwrap();
        }
    }
    out.flush().unwrap();
}

/// Writes frames as MJPEG: JPEGs one after another, as a camera's MJPEG stream saved to a file.
pub fn write_mjpeg(path: &Path, frames: &[RgbImage]) {
    let mut out = Vec::new();
    for f in frames {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(f)
            .unwrap();
    }
    std::fs::write(path, out).unwrap();
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes (0 when either is empty).
pub fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: [f64; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// A frame as PNG bytes, to send it through the API as a still.
pub fn png(frame: &RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    frame.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Where a walker is at frame `n` on a path of `(frame, x, y)` keys, straight between keys;
/// `None` before the first key and after the last (not in the scene).
pub fn on_path(keys: &[(u32, i64, i64)], n: u32) -> Option<(i64, i64)> {
    let first = keys.first()?;
    if n < first.0 || n > keys.last()?.0 {
        return None;
    }
    let i = keys.iter().rposition(|k| k.0 <= n)?;
    let (f0, x0, y0) = keys[i];
    let Some(&(f1, x1, y1)) = keys.get(i + 1) else {
        return Some((x0, y0));
    };
    let t = i64::from(n - f0);
    let span = i64::from(f1 - f0).max(1);
    Some((x0 + (x1 - x0) * t / span, y0 + (y1 - y0) * t / span))
}
