//! The one-shot commands for the bench and for installers: `facecv detect`, `facecv recognize`,
//! `facecv enroll --dir`. They use the same engine, store and gallery as the appliance.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::pipeline::SharedGallery;
use crate::store::Store;
use crate::vision::{decode_image, pad_image, Detection, FaceEngine, MAX_FACES};

fn engine(config: &Config) -> anyhow::Result<FaceEngine> {
    FaceEngine::new(config.vision.clone()).context("loading the vision models")
}

fn read_image(path: &Path) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    decode_image(&bytes).with_context(|| format!("decoding {}", path.display()))
}

/// Detects faces, padding a tight crop once if nothing is found (BlazeFace needs surroundings);
/// boxes are given in the original image's pixels.
fn detect_all(
    engine: &mut FaceEngine,
    rgb: &[u8],
    w: u32,
    h: u32,
) -> anyhow::Result<Vec<Detection>> {
    let mut found: heapless::Vec<Detection, MAX_FACES> = heapless::Vec::new();
    engine.detect(rgb, w, h, &mut found)?;
    if !found.is_empty() {
        return Ok(found.to_vec());
    }
    let padded = pad_image(rgb, w, h, engine.config().enrol.pad);
    engine.detect(&padded.rgb, padded.width, padded.height, &mut found)?;
    let (ox, oy) = (padded.offset.0 as f32, padded.offset.1 as f32);
    Ok(found
        .iter()
        .map(|d| {
            let mut d = *d;
            d.bbox = [
                d.bbox[0] - ox,
                d.bbox[1] - oy,
                d.bbox[2] - ox,
                d.bbox[3] - oy,
            ];
            for k in &mut d.keypoints {
                k[0] -= ox;
                k[1] -= oy;
            }
            d
        })
        .collect())
}

pub fn detect(config: &Config, image: &Path, as_json: bool) -> anyhow::Result<()> {
    let mut engine = engine(config)?;
    let (rgb, w, h) = read_image(image)?;
    let faces = detect_all(&mut engine, &rgb, w, h)?;
    let list: Vec<Value> = faces
        .iter()
        .map(|d| json!({"bbox": d.bbox.map(|v| v.round() as i32), "confidence": d.score, "landmarks": d.keypoints}))
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"image": image, "width": w, "height": h, "face_count": list.len(), "faces": list})
        );
    } else {
        println!("{}: {} face(s)", image.display(), faces.len());
        for d in &faces {
            println!(
                "  box {:?} confidence {:.3}",
                d.bbox.map(|v| v.round() as i32),
                d.score
            );
        }
    }
    Ok(())
}

pub fn recognize(config: &Config, image: &Path, as_json: bool) -> anyhow::Result<()> {
    let store = Store::open(&config.storage, Arc::default()).context("opening the store")?;
    let gallery = SharedGallery::load(
        &store,
        &crate::app::embedder_id(&config.vision),
        config.vision.match_threshold(),
    )?;
    let mut engine = engine(config)?;
    let (rgb, w, h) = read_image(image)?;
    let mut faces = heapless::Vec::new();
    engine.analyze_still(&rgb, w, h, &mut faces)?;
    let g = gallery.read();
    let list: Vec<Value> = faces
        .iter()
        .map(|f| {
            let m = f.embedding.as_ref().and_then(|e| g.identify(e));
            json!({
                "name": m.as_ref().map_or("Unknown", |m| m.id.name.as_str()),
                "confidence": m.as_ref().map_or(0.0, |m| m.similarity),
                "metadata": m.as_ref().map(|m| Value::Object(m.id.metadata.clone())).unwrap_or(json!({})),
            })
        })
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"image": image, "face_count": list.len(), "faces": list, "threshold": g.threshold(), "enrolled": g.len()})
        );
    } else {
        println!(
            "{}: {} face(s), {} enrolled embeddings",
            image.display(),
            list.len(),
            g.len()
        );
        for f in &list {
            println!(
                "  {} ({:.3})",
                f["name"].as_str().unwrap_or(""),
                f["confidence"].as_f64().unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

/// Enrols a folder laid out `DIR/<name>/*.jpg`: every photo of a person must show one face, or
/// that person is skipped (and said so) rather than enrolled from a stranger's photo.
pub fn enroll(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(&config.storage, Arc::default()).context("opening the store")?;
    let model = crate::app::embedder_id(&config.vision);
    let mut engine = engine(config)?;
    let mut people: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    people.sort();
    if people.is_empty() {
        bail!(
            "{} has no folders: lay it out as <dir>/<name>/*.jpg",
            dir.display()
        );
    }
    let (mut enrolled, mut skipped) = (0, 0);
    for person in people {
        let name = person
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .replace('_', " ");
        match embed_person(&mut engine, &person) {
            Ok(embeddings) if !embeddings.is_empty() => {
                store.add_faces(&name, &model, &embeddings, &Map::new())?;
                println!("enrolled {name}: {} photo(s)", embeddings.len());
                enrolled += 1;
            }
            Ok(_) => {
                println!("skipped {name}: no photos");
                skipped += 1;
            }
            Err(e) => {
                println!("skipped {name}: {e:#}");
                skipped += 1;
            }
        }
    }
    println!("{enrolled} people enrolled, {skipped} skipped; a running appliance sees them after a restart");
    Ok(())
}

fn embed_person(engine: &mut FaceEngine, dir: &Path) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| matches!(x.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png"))
        })
        .collect();
    files.sort();
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let bytes = std::fs::read(&f)?;
        let e = engine
            .embed_single(&bytes)
            .with_context(|| format!("{}", f.display()))?;
        out.push(e.as_slice().to_vec());
    }
    Ok(out)
}
