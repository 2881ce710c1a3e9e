//! Videos made of the real photos in `tests/data/faces`: a person "walking up" to a camera is a
//! photo placed on a plain background, frame after frame. Written as an image folder, y4m or MJPEG,
//! the formats the camera module reads.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{imageops, Rgb, RgbImage};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
