//! Stranger snapshots: a JPEG of the unknown face, kept on disk and named in the
//! `stranger_alert` event (`image_path`), as FaceCV saved one with each alert.
//!
//! Alerts are rare (a cooldown and an hourly cap per camera), so the encode and the write are
//! not on the per-frame path. Each camera keeps at most [`KEEP`] snapshots; the oldest go first.

use std::path::{Path, PathBuf};

use crate::camera::Frame;

/// Snapshots kept per camera.
pub const KEEP: usize = 500;

/// Crops `bbox` (with a margin) out of the frame and writes it as
/// `<dir>/<camera>/<unix ms>.jpg`; returns the path written.
pub fn save(dir: &Path, camera: &str, frame: &Frame, bbox: [i32; 4]) -> std::io::Result<PathBuf> {
    let folder = dir.join(camera);
    std::fs::create_dir_all(&folder)?;
    let (w, h) = (frame.width as i32, frame.height as i32);
    let margin = ((bbox[2] - bbox[0]).max(bbox[3] - bbox[1]) / 4).max(8);
    let x0 = (bbox[0] - margin).clamp(0, w - 1);
    let y0 = (bbox[1] - margin).clamp(0, h - 1);
    let x1 = (bbox[2] + margin).clamp(x0 + 1, w);
    let y1 = (bbox[3] + margin).clamp(y0 + 1, h);
    let (cw, ch) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let mut crop = Vec::with_capacity(cw * ch * 3);
    for y in y0 as usize..y1 as usize {
        let row = (y * frame.width as usize + x0 as usize) * 3;
        crop.extend_from_slice(&frame.rgb[row..row + cw * 3]);
    }
    let ms = (frame.timestamp.unix_timestamp_nanos() / 1_000_000) as i64;
    let path = folder.join(format!("{ms}.jpg"));
    let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 85)
        .encode(&crop, cw as u32, ch as u32, image::ExtendedColorType::Rgb8)
        .map_err(std::io::Error::other)?;
    prune(&folder)?;
    Ok(path)
}

fn prune(folder: &Path) -> std::io::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    if files.len() <= KEEP {
        return Ok(());
    }
    files.sort();
    for old in &files[..files.len() - KEEP] {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_a_jpeg_of_the_face_with_a_margin() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = Frame::default();
        frame.resize(64, 48).fill(200);
        let path = save(dir.path(), "door", &frame, [10, 10, 30, 30]).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (36, 36),
            "20 px and 8 px of margin each side"
        );
        assert!(path.starts_with(dir.path().join("door")));
        // A box at the edge is clipped to the frame.
        let p2 = save(dir.path(), "door", &frame, [50, 40, 70, 60]).unwrap();
        let img = image::open(&p2).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (22, 16),
            "clipped at the right and bottom edges"
        );
    }
}
