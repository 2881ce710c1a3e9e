//! Makes the demo's camera footage and gallery from the test photos, for `scripts/demo.sh`.
//!
//!     cargo run --release --example demo-frames -- OUT
//!
//! writes `OUT/people/<name>/*.jpg` (three photos each of three people, enrolled before the
//! appliance starts) and `OUT/frames/frame_NNN.jpg`, a door camera's view that `config/demo.toml`
//! loops: each person walks up (their other photos, on a plain background, as the end-to-end test
//! does), then the doorway is empty, then a stranger (never enrolled) lingers. So a loop of about
//! 15 s at 4 fps shows recognitions and a stranger alert. Everything comes from `tests/data/faces`
//! and stays in the checkout: nothing of it is built into a release or an image.

#[path = "../tests/common/video.rs"]
#[allow(dead_code)]
mod video;

use std::path::{Path, PathBuf};

/// Enrolled from their first three photos; the camera shows the others.
const ENROLLED: [&str; 3] = ["John_Salley", "John_Savage", "John_Schneider"];
/// Never enrolled: the camera's stranger.
const STRANGER: &str = "John_Simm";
/// Photos per person that go into the gallery.
const ENROL_PHOTOS: usize = 3;
/// Frames a person stays in view, and frames of empty doorway after them.
const IN_VIEW: usize = 8;
const EMPTY: usize = 4;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: demo-frames OUT")?;
    let frames = write_demo(&out)?;
    println!(
        "demo-frames: {frames} frames in {}, {} people to enrol in {}",
        out.join("frames").display(),
        ENROLLED.len(),
        out.join("people").display()
    );
    Ok(())
}

/// Writes `out/people/` and `out/frames/` afresh; returns the number of frames. `tests/demo.rs`
/// runs the demo from the same files.
pub fn write_demo(out: &Path) -> Result<usize, Box<dyn std::error::Error>> {
    let people = out.join("people");
    let frames = out.join("frames");
    for dir in [&people, &frames] {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
    }
    for name in ENROLLED {
        let dir = people.join(name);
        std::fs::create_dir_all(&dir)?;
        for photo in video::photos_of(name).iter().take(ENROL_PHOTOS) {
            std::fs::copy(
                photo,
                dir.join(photo.file_name().ok_or("photo without a name")?),
            )?;
        }
    }
    let mut scenes: Vec<Option<PathBuf>> = Vec::new();
    let walk_up = |scenes: &mut Vec<Option<PathBuf>>, photos: &[PathBuf]| {
        scenes.extend((0..IN_VIEW).map(|i| Some(photos[i % photos.len()].clone())));
        scenes.extend(std::iter::repeat_n(None, EMPTY));
    };
    for (i, name) in ENROLLED.iter().enumerate() {
        walk_up(&mut scenes, &video::photos_of(name)[ENROL_PHOTOS..]);
        if i == 0 {
            walk_up(&mut scenes, &video::photos_of(STRANGER));
        }
    }
    for (n, scene) in scenes.iter().enumerate() {
        save(
            &video::frame_with(scene.as_deref()),
            &frames.join(format!("frame_{n:03}.jpg")),
        )?;
    }
    Ok(scenes.len())
}

fn save(frame: &image::RgbImage, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    frame.save(path)?;
    Ok(())
}
