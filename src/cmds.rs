//! The one-shot commands for the bench and for installers: `facecv detect`, `facecv recognize`,
//! `facecv enroll --dir`, `facecv salvage`. They use the same engine, store and gallery as the appliance.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};

use crate::config::Config;
use crate::pipeline::SharedGallery;
use crate::store::Store;
use crate::vision::{FaceEngine, ImageLimits};

/// The engine, decoding photos within `api.max_image_pixels` as the API does.
fn engine(config: &Config) -> anyhow::Result<FaceEngine> {
    let mut engine = FaceEngine::new(config.vision.clone()).context("loading the vision models")?;
    engine.set_image_limits(ImageLimits {
        max_pixels: config.api.max_image_pixels,
    });
    Ok(engine)
}

fn read_image(engine: &FaceEngine, path: &Path) -> anyhow::Result<(Vec<u8>, u32, u32)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    engine
        .decode(&bytes)
        .with_context(|| format!("decoding {}", path.display()))
}

pub fn detect(config: &Config, image: &Path, as_json: bool) -> anyhow::Result<()> {
    let mut engine = engine(config)?;
    let (rgb, w, h) = read_image(&engine, image)?;
    let mut faces = heapless::Vec::new();
    engine.detect_still(&rgb, w, h, &mut faces)?;
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
    let (rgb, w, h) = read_image(&engine, image)?;
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
/// that person is skipped (and said so) rather than enrolled from a stranger's photo. The API's
/// `POST /faces/offline` does the same through [`crate::enrol::enrol_folder`].
pub fn enroll(config: &Config, dir: &Path) -> anyhow::Result<()> {
    let store = Store::open(&config.storage, Arc::default()).context("opening the store")?;
    let model = crate::app::embedder_id(&config.vision);
    let mut engine = engine(config)?;
    let report = crate::enrol::enrol_folder(&mut engine, &store, &model, dir, None)?;
    for p in &report.people {
        match &p.reason {
            None => println!("enrolled {}: {} photo(s)", p.name, p.face_ids.len()),
            Some(reason) => {
                println!("skipped {}: {reason}", p.name);
                for f in p.files.iter().filter(|f| f.status != "ok") {
                    println!("  {}: {}", f.file, f.reason.as_deref().unwrap_or(f.status));
                }
            }
        }
    }
    println!(
        "{} people enrolled, {} skipped; a running appliance sees them after a restart",
        report.enrolled().count(),
        report.skipped().count()
    );
    Ok(())
}

/// `facecv salvage --from --to`: copies what is readable and says, table by table, what was not.
pub fn salvage(from: &Path, to: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(from.exists(), "{} does not exist", from.display());
    anyhow::ensure!(
        !to.exists(),
        "{} exists; salvage writes a new file and never overwrites one",
        to.display()
    );
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let reports = crate::store::salvage::salvage(from, to)
        .with_context(|| format!("salvaging {} into {}", from.display(), to.display()))?;
    let mut lost = false;
    for r in &reports {
        match &r.error {
            Some(e) => {
                lost = true;
                println!("{}: nothing copied: {e}", r.table);
            }
            None if r.unreadable.is_empty() => println!("{}: {} rows copied", r.table, r.copied),
            None => {
                lost = true;
                let ranges: Vec<String> = r
                    .unreadable
                    .iter()
                    .map(|(a, b)| format!("{}..={b}", a.saturating_add(1)))
                    .collect();
                println!(
                    "{}: {} rows copied; could not read rowids {}",
                    r.table,
                    r.copied,
                    ranges.join(", ")
                );
            }
        }
    }
    println!(
        "{} written{}; {} kept as it was. Point storage.dir at {} and start the service.",
        to.display(),
        if lost {
            " (some rows could not be read)"
        } else {
            ""
        },
        from.display(),
        to.parent()
            .map_or_else(|| ".".into(), |d| d.display().to_string())
    );
    Ok(())
}

/// For `facecv check-config`: which API token `serve` would use, read as `serve` reads it (a
/// damaged `<storage.dir>/api-token` fails here as it would fail the start).
pub fn api_token_in_force(config: &Config) -> anyhow::Result<String> {
    use crate::api::token::{ApiToken, TokenSource};
    let token = ApiToken::load(config.api.token.as_deref(), &config.storage.dir)?;
    Ok(match token.source() {
        TokenSource::State => format!(
            "token from {} (rotated from the console; it wins over api.token)",
            token.file().display()
        ),
        TokenSource::Config => "token set".into(),
        TokenSource::None => "token not set: loopback clients only".into(),
    })
}

/// `facecv tls-fingerprint`: the SHA-256 fingerprint of the certificate the HTTPS API serves
/// (the configured one, or the self-signed one in the store's folder), alone on one line for
/// scripts (the SD image's first-boot message, `deploy.sh`). Reads only, unless `create` asks for
/// the self-signed certificate to be made now when there is none (as `serve` makes it).
pub fn tls_fingerprint(config: &Config, create: bool) -> anyhow::Result<()> {
    if create {
        crate::api::tls::Identity::load(&config.api, &config.storage.dir)?;
    }
    let (fingerprint, cert) = crate::api::tls::fingerprint_of(&config.api, &config.storage.dir)?;
    tracing::debug!(cert = %cert.display(), "certificate read");
    println!("{fingerprint}");
    Ok(())
}
