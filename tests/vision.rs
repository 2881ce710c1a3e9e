//! Vision against real parts: LiteRT's `libLiteRt.so` (fetched by `scripts/fetch-litert.sh` into
//! `lib/<arch>/`), the models shipped in `models/`, and real photos (`tests/data/faces/`).
//!
//! The story: an installer enrols three photos of each of five people, and the appliance then
//! recognises each of them in their other photos, never takes Obama for Biden, and refuses the
//! things an enrolment form will be sent (no face, two faces, not an image, a broken install).

#[path = "common/video.rs"]
#[allow(dead_code)]
mod video;

use std::path::{Path, PathBuf};
use std::time::Duration;

use facecv::vision::{
    AlignMode, EmbedderKind, Embedding, FaceEngine, Gallery, StageTimings, VisionConfig,
    VisionError, MAX_FACES,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn faces_dir() -> PathBuf {
    root().join("tests/data/faces")
}

/// The models under test: `models/`, or the folder in `FACECV_MODELS_DIR`, so that a rebuild by
/// `scripts/make-models.sh` can be measured by the same figures as the shipped files.
fn models_dir() -> PathBuf {
    std::env::var_os("FACECV_MODELS_DIR").map_or_else(|| root().join("models"), PathBuf::from)
}

fn config(kind: EmbedderKind, align: AlignMode) -> VisionConfig {
    let mut c = VisionConfig {
        models_dir: models_dir(),
        ..VisionConfig::default()
    };
    c.embedder.kind = kind;
    c.embedder.align = align;
    c
}

fn engine(c: VisionConfig) -> FaceEngine {
    FaceEngine::new(c).unwrap_or_else(|e| panic!("engine: {e}"))
}

/// A labelled photo.
struct Photo {
    person: String,
    file: String,
    bytes: Vec<u8>,
}

/// The 55 Johns (five people, eleven tight crops each) and the Obama and Biden portraits.
fn photos() -> Vec<Photo> {
    let mut out = Vec::new();
    for person in video::johns() {
        for f in video::photos_of(&person) {
            out.push(photo(&person, &f));
        }
    }
    let misc = faces_dir().join("misc");
    out.push(photo("Barack_Obama", &misc.join("obama.jpg")));
    out.push(photo("Barack_Obama", &misc.join("obama2.jpg")));
    out.push(photo("Joe_Biden", &misc.join("biden.jpg")));
    out
}

fn photo(person: &str, path: &Path) -> Photo {
    Photo {
        person: person.to_string(),
        file: path.file_name().unwrap().to_string_lossy().into_owned(),
        bytes: std::fs::read(path).unwrap(),
    }
}

/// Recognition figures for one embedder set-up.
#[derive(Debug)]
struct Report {
    rank1: f64,
    identified: f64,
    probes: usize,
    auc: f64,
    threshold: f32,
    far: f64,
    frr: f64,
    obama_biden: f32,
    obama_obama: f32,
    /// Lowest same-person and highest different-person similarity: the margin a threshold has.
    min_genuine: f32,
    max_impostor: f32,
    mean: StageTimings,
}

/// Embed every photo, enrol the first three of each John (and obama.jpg, biden.jpg), recognise
/// the rest; then score every pair of photos for AUC and the error rates at the threshold.
fn evaluate(kind: EmbedderKind, align: AlignMode) -> Report {
    evaluate_with(config(kind, align))
}

fn evaluate_with(c: VisionConfig) -> Report {
    let mut eng = engine(c);
    let photos = photos();
    let (embs, mean) = embed_all(&mut eng, &photos);
    let (rank1, identified, probes) = recognise(&eng, &photos, &embs);
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for i in 0..photos.len() {
        for j in i + 1..photos.len() {
            let s = embs[i].cosine(&embs[j]);
            if photos[i].person == photos[j].person {
                genuine.push(s);
            } else {
                impostor.push(s);
            }
        }
    }
    let threshold = eng.config().match_threshold();
    let rate = |v: &[f32], f: &dyn Fn(f32) -> bool| {
        v.iter().filter(|&&s| f(s)).count() as f64 / v.len() as f64
    };
    let idx = |f: &str| photos.iter().position(|p| p.file == f).unwrap();
    let (o1, o2, b) = (idx("obama.jpg"), idx("obama2.jpg"), idx("biden.jpg"));
    Report {
        rank1,
        identified,
        probes,
        auc: auc(&genuine, &impostor),
        threshold,
        far: rate(&impostor, &|s| s >= threshold),
        frr: rate(&genuine, &|s| s < threshold),
        obama_biden: embs[o1].cosine(&embs[b]).max(embs[o2].cosine(&embs[b])),
        obama_obama: embs[o1].cosine(&embs[o2]),
        min_genuine: genuine.iter().copied().fold(f32::MAX, f32::min),
        max_impostor: impostor.iter().copied().fold(f32::MIN, f32::max),
        mean,
    }
}

/// Enrolment embeddings of every photo, and the mean time per stage.
fn embed_all(eng: &mut FaceEngine, photos: &[Photo]) -> (Vec<Embedding>, StageTimings) {
    let mut sum = StageTimings::default();
    let embs = photos
        .iter()
        .map(|p| {
            let e = eng
                .embed_single(&p.bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", p.file));
            let t = eng.timings();
            sum.convert += t.convert;
            sum.detect += t.detect;
            sum.align += t.align;
            sum.embed += t.embed;
            e
        })
        .collect();
    let n = photos.len() as u32;
    let mean = StageTimings {
        convert: sum.convert / n,
        detect: sum.detect / n,
        align: sum.align / n,
        embed: sum.embed / n,
        faces: 1,
        embedded: 1,
        ..StageTimings::default()
    };
    (embs, mean)
}

/// Enrol the first three photos of each person (obama2.jpg is always a probe), then look up the
/// rest: `(rank-1 accuracy, share identified correctly at the threshold, probes)`.
fn recognise(eng: &FaceEngine, photos: &[Photo], embs: &[Embedding]) -> (f64, f64, usize) {
    let mut gallery: Gallery<String> = eng.new_gallery();
    let mut probes = Vec::new();
    let mut enrolled: Vec<&str> = Vec::new();
    for (p, e) in photos.iter().zip(embs) {
        let count = enrolled.iter().filter(|n| **n == p.person).count();
        if count < 3 && p.file != "obama2.jpg" {
            enrolled.push(&p.person);
            gallery.enrol(p.person.clone(), e.clone()).unwrap();
        } else {
            probes.push((p, e));
        }
    }
    let n = probes.len() as f64;
    let right = |m: Option<facecv::vision::Match<'_, String>>, p: &Photo| {
        m.map(|m| m.id) == Some(&p.person)
    };
    let rank1 = probes
        .iter()
        .filter(|(p, e)| right(gallery.best(e), p))
        .count();
    let identified = probes
        .iter()
        .filter(|(p, e)| right(gallery.identify(e), p))
        .count();
    (rank1 as f64 / n, identified as f64 / n, probes.len())
}

/// Probability that a same-person pair scores above a different-person pair (ties count half).
fn auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    let wins: f64 = genuine
        .iter()
        .flat_map(|&g| impostor.iter().map(move |&i| (g, i)))
        .map(|(g, i)| match g.partial_cmp(&i) {
            Some(std::cmp::Ordering::Greater) => 1.0,
            Some(std::cmp::Ordering::Equal) => 0.5,
            _ => 0.0,
        })
        .sum();
    wins / (genuine.len() * impostor.len()) as f64
}

fn print_report(label: &str, r: &Report) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<28} rank-1 {:>5.1}% (identified at threshold {:>5.1}%, {} probes)  AUC {:.4}  at {:.2}: FAR {:.2}% FRR {:.2}%  \
         same>={:.2} other<={:.2} obama~obama2 {:.2} obama~biden {:.2}  ms convert {:.1} detect {:.1} align {:.1} embed {:.1}",
        100.0 * r.rank1,
        100.0 * r.identified,
        r.probes,
        r.auc,
        r.threshold,
        100.0 * r.far,
        100.0 * r.frr,
        r.min_genuine,
        r.max_impostor,
        r.obama_obama,
        r.obama_biden,
        ms(r.mean.convert),
        ms(r.mean.detect),
        ms(r.mean.align),
        ms(r.mean.embed),
    );
}

#[test]
fn the_default_embedder_recognises_enrolled_people_in_their_other_photos() {
    let c = VisionConfig::default();
    let r = evaluate(c.embedder.kind, c.embedder.align);
    print_report(
        &format!("default ({:?}, {:?})", c.embedder.kind, c.embedder.align),
        &r,
    );
    assert!(r.rank1 >= 0.98, "rank-1 {:.3}", r.rank1);
    assert!(r.identified >= 0.95, "identified {:.3}", r.identified);
    assert!(r.auc >= 0.99, "AUC {:.4}", r.auc);
    assert!(
        r.obama_biden < r.threshold,
        "Obama taken for Biden: {:.3}",
        r.obama_biden
    );
    assert!(
        r.obama_obama >= r.threshold,
        "Obama not matched: {:.3}",
        r.obama_obama
    );
    assert!(r.far <= 0.01, "false accepts {:.4}", r.far);
}

/// The figures behind the default choice (models/README.md): both embedders, aligned and not,
/// and MobileFaceNet's int8 model beside the default float one.
#[test]
fn compare_embedders_aligned_and_not() {
    let default = VisionConfig::default();
    for kind in [EmbedderKind::FaceRes, EmbedderKind::MobileFaceNet] {
        for align in [AlignMode::Keypoints, AlignMode::Box] {
            if (kind, align) == (default.embedder.kind, default.embedder.align) {
                continue; // the test above reports it
            }
            let r = evaluate(kind, align);
            print_report(&format!("{kind:?} {align:?}"), &r);
            assert!(r.auc > 0.85, "{kind:?} {align:?} AUC {:.3}", r.auc);
        }
    }
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.embedder.model = Some("mobilefacenet_expo_int8.tflite".into());
    let r = evaluate_with(c);
    print_report("MobileFaceNet int8 Keypoints", &r);
    assert!(r.auc > 0.99 && r.far == 0.0, "{r:?}");
}

/// A copy of `models/` in a temporary folder, for tests that break a file.
fn models_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(root().join("models")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "tflite") {
            std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn truncate(path: &Path, keep: f64) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
}

fn png(rgb: &[u8], width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_raw(width, height, rgb.to_vec()).unwrap();
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn default_engine() -> FaceEngine {
    let c = VisionConfig::default();
    engine(config(c.embedder.kind, c.embedder.align))
}

#[test]
fn a_missing_runtime_library_says_how_to_get_it() {
    let mut c = VisionConfig::default();
    c.runtime.library = Some("/nonexistent/lib/libLiteRt.so".into());
    let err = FaceEngine::new(c).unwrap_err();
    assert!(
        matches!(err, VisionError::RuntimeNotFound { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("scripts/fetch-litert.sh"), "{msg}");
    assert!(msg.contains("/nonexistent/lib/libLiteRt.so"), "{msg}");
}

#[test]
fn a_library_that_is_not_a_tflite_runtime_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libLiteRt.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.runtime.library = Some(fake);
    let err = FaceEngine::new(c).unwrap_err();
    assert!(matches!(err, VisionError::RuntimeLoad { .. }), "{err:?}");
    assert!(err.to_string().contains("fetch-litert.sh"), "{err}");
}

#[test]
fn a_truncated_model_is_refused_with_a_clear_error() {
    let dir = models_copy();
    let kind = EmbedderKind::MobileFaceNet;
    truncate(&dir.path().join(kind.default_model()), 0.6);
    let mut c = config(kind, AlignMode::Keypoints);
    c.models_dir = dir.path().to_path_buf();
    let err = FaceEngine::new(c.clone()).unwrap_err();
    assert!(matches!(err, VisionError::ModelChecksum { .. }), "{err:?}");
    assert!(err.to_string().contains("damaged"), "{err}");

    // The same damage under a name we do not know: the file's own structure gives it away.
    let renamed = dir.path().join("my_embedder.tflite");
    std::fs::rename(dir.path().join(kind.default_model()), &renamed).unwrap();
    c.embedder.model = Some(renamed);
    let err = FaceEngine::new(c).unwrap_err();
    assert!(matches!(err, VisionError::ModelCorrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_rebuilt_model_is_accepted_with_the_sha256sums_written_beside_it() {
    use sha2::{Digest, Sha256};
    // A rebuild keeps the shipped name but never the shipped bytes: stand in for one with the
    // shipped detector plus trailing bytes (a flatbuffer ignores them, the digest does not).
    let dir = models_copy();
    let detector = dir.path().join("blazeface_full_int8.tflite");
    let mut bytes = std::fs::read(&detector).unwrap();
    bytes.extend_from_slice(&[0; 16]);
    std::fs::write(&detector, &bytes).unwrap();
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.models_dir = dir.path().to_path_buf();
    let err = FaceEngine::new(c.clone()).unwrap_err();
    assert!(matches!(err, VisionError::ModelChecksum { .. }), "{err:?}");
    assert!(err.to_string().contains("SHA256SUMS"), "{err}");

    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sums = dir.path().join("SHA256SUMS");
    std::fs::write(&sums, format!("{digest}  blazeface_full_int8.tflite\n")).unwrap();
    FaceEngine::new(c.clone()).unwrap_or_else(|e| panic!("rebuilt detector refused: {e}"));

    // The sums file pins as firmly as the shipped table: a file it lists must match it.
    std::fs::write(
        &sums,
        format!("{}  blazeface_full_int8.tflite\n", "0".repeat(64)),
    )
    .unwrap();
    let err = FaceEngine::new(c.clone()).unwrap_err();
    assert!(err.to_string().contains("SHA256SUMS"), "{err}");
    std::fs::write(&sums, "not a sums line\n").unwrap();
    let err = FaceEngine::new(c).unwrap_err();
    assert!(matches!(err, VisionError::ModelSums { .. }), "{err:?}");
}

#[test]
fn a_missing_model_names_the_config_key() {
    let mut c = config(EmbedderKind::FaceRes, AlignMode::Keypoints);
    c.detector.model = "no_such_model.tflite".into();
    let err = FaceEngine::new(c).unwrap_err();
    assert!(
        err.to_string().starts_with("vision.detector.model"),
        "{err}"
    );
}

#[test]
fn the_detector_given_as_embedder_is_a_shape_error() {
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.embedder.model = Some("blazeface_full_int8.tflite".into());
    let err = FaceEngine::new(c).unwrap_err();
    assert!(matches!(err, VisionError::ModelShape { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.starts_with("vision.embedder.model"), "{msg}");
    assert!(msg.contains("[1, 192, 192, 3]"), "{msg}");
}

#[test]
fn an_embedder_given_as_detector_is_a_shape_error() {
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.detector.model = "mobilefacenet_expo_f32.tflite".into();
    let err = FaceEngine::new(c).unwrap_err();
    assert!(matches!(err, VisionError::ModelShape { .. }), "{err:?}");
}

#[test]
fn enrolment_refuses_what_is_not_one_clear_face() {
    let mut eng = default_engine();

    let err = eng
        .embed_single(b"GIF89a definitely not a photo")
        .unwrap_err();
    assert!(matches!(err, VisionError::ImageFormat(_)), "{err:?}");

    let grey = png(&vec![128u8; 320 * 240 * 3], 320, 240);
    let err = eng.embed_single(&grey).unwrap_err();
    assert!(matches!(err, VisionError::NoFace), "{err:?}");

    // Obama and Biden side by side, both scaled to the same height.
    let load = |f: &str| {
        let bytes = std::fs::read(faces_dir().join("misc").join(f)).unwrap();
        image::load_from_memory(&bytes).unwrap().to_rgb8()
    };
    let (a, b) = (load("obama.jpg"), load("biden.jpg"));
    let h = a.height().min(b.height()).min(400);
    let resize = |im: &image::RgbImage| {
        let w = im.width() * h / im.height();
        image::imageops::resize(im, w, h, image::imageops::FilterType::Triangle)
    };
    let (a, b) = (resize(&a), resize(&b));
    let mut both =
        image::RgbImage::from_pixel(a.width() + b.width(), h, image::Rgb([128, 128, 128]));
    image::imageops::replace(&mut both, &a, 0, 0);
    image::imageops::replace(&mut both, &b, i64::from(a.width()), 0);
    let err = eng
        .embed_single(&png(both.as_raw(), both.width(), h))
        .unwrap_err();
    assert!(
        matches!(err, VisionError::MultipleFaces { count: 2 }),
        "{err:?}"
    );
}

#[test]
fn enrolment_refuses_a_face_below_the_minimum_size() {
    let d = VisionConfig::default();
    let mut c = config(d.embedder.kind, d.embedder.align);
    c.enrol.min_face_px = 1000;
    let mut eng = engine(c);
    let photo = std::fs::read(faces_dir().join("misc/obama.jpg")).unwrap();
    let err = eng.embed_single(&photo).unwrap_err();
    assert!(
        matches!(err, VisionError::FaceTooSmall { min_px: 1000, .. }),
        "{err:?}"
    );
}

#[test]
fn a_frame_is_analysed_into_faces_with_embeddings() {
    let mut eng = default_engine();
    let bytes = std::fs::read(faces_dir().join("misc/astronaut.png")).unwrap();
    let (rgb, w, h) = facecv::vision::decode_image(&bytes, &Default::default()).unwrap();
    let mut faces = heapless::Vec::<_, MAX_FACES>::new();
    eng.analyze(&rgb, w, h, &mut faces).unwrap();
    assert_eq!(faces.len(), 1, "{faces:?}");
    let face = &faces[0];
    let [x1, y1, x2, y2] = face.bbox;
    assert!(x1 >= 0.0 && y1 >= 0.0 && x2 <= w as f32 && y2 <= h as f32 && x2 - x1 > 50.0);
    for [x, y] in &face.keypoints[..4] {
        assert!(
            *x > x1 && *x < x2 && *y > y1 && *y < y2,
            "keypoint outside the face box"
        );
    }
    let right_eye = face.keypoints[0];
    let left_eye = face.keypoints[1];
    assert!(
        right_eye[0] < left_eye[0],
        "the person's right eye is on the image's left"
    );
    let e = face.embedding.as_ref().expect("a large face is embedded");
    assert_eq!(e.dim(), eng.embedding_dim());
    let again = eng.embed_single(&bytes).unwrap();
    assert!(e.cosine(&again) > 0.99);
    let t = eng.timings();
    assert!(t.detect > Duration::ZERO && t.embed > Duration::ZERO);

    // The same face in a 1280x720 frame, as a camera delivers it: per-stage times for the record.
    let mut frame = vec![90u8; 1280 * 720 * 3];
    for y in 0..h as usize {
        let dst = (y + 100) * 1280 * 3 + 300 * 3;
        frame[dst..dst + w as usize * 3]
            .copy_from_slice(&rgb[y * w as usize * 3..][..w as usize * 3]);
    }
    eng.analyze(&frame, 1280, 720, &mut faces).unwrap();
    assert_eq!(faces.len(), 1);
    assert!(
        (faces[0].bbox[0] - (x1 + 300.0)).abs() < 8.0,
        "{:?} vs {x1}",
        faces[0].bbox
    );
    println!("1280x720 frame, one face: {:?}", eng.timings());

    // A buffer of the wrong size is refused, not read past its end.
    let err = eng.analyze(&rgb[..100], w, h, &mut faces).unwrap_err();
    assert!(matches!(err, VisionError::FrameSize { .. }), "{err:?}");
}

#[test]
fn an_accelerator_that_is_not_there_is_reported() {
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.runtime.accelerator = facecv::vision::Accelerator::Gpu;
    match FaceEngine::new(c) {
        Err(e) => assert!(
            matches!(e, VisionError::AcceleratorUnavailable { .. }),
            "{e:?}"
        ),
        Ok(_) => println!("a GPU accelerator is registered on this machine"),
    }
}

#[test]
fn an_external_delegate_needs_the_classic_api() {
    let mut c = config(EmbedderKind::MobileFaceNet, AlignMode::Keypoints);
    c.runtime.external_delegate = Some(facecv::vision::ExternalDelegate {
        path: "/usr/lib/libedgetpu.so.1".into(),
        options: Default::default(),
    });
    let err = FaceEngine::new(c).unwrap_err();
    assert!(err.to_string().contains("libtensorflowlite_c.so"), "{err}");
}

#[test]
fn a_tight_crop_is_found_once_padded_and_given_in_the_photo_s_own_pixels() {
    let mut eng = default_engine();
    let mut tight = 0;
    for p in photos() {
        let (rgb, w, h) = facecv::vision::decode_image(&p.bytes, &Default::default()).unwrap();
        let mut dets = heapless::Vec::<_, MAX_FACES>::new();
        eng.detect(&rgb, w, h, &mut dets).unwrap();
        if !dets.is_empty() {
            continue;
        }
        tight += 1;
        eng.detect_still(&rgb, w, h, &mut dets).unwrap();
        assert_eq!(dets.len(), 1, "{}: {dets:?}", p.file);
        // On the padded canvas the box would reach past the photo's right and bottom edges.
        let [x1, y1, x2, y2] = dets[0].bbox;
        let (fw, fh) = (w as f32 * 1.1, h as f32 * 1.1);
        assert!(
            x1 > -0.1 * w as f32 && y1 > -0.1 * h as f32 && x2 < fw && y2 < fh,
            "{}: {:?} in a {w}x{h} photo",
            p.file,
            dets[0].bbox
        );
        let mut faces = heapless::Vec::<_, MAX_FACES>::new();
        eng.analyze_still(&rgb, w, h, &mut faces).unwrap();
        assert_eq!(faces.len(), 1, "{}", p.file);
        assert_eq!(faces[0].bbox, dets[0].bbox, "{}", p.file);
        assert_eq!(faces[0].keypoints, dets[0].keypoints, "{}", p.file);
    }
    println!("{tight} photos needed padding");
    assert!(
        tight > 0,
        "no photo needed padding: the test checked nothing"
    );
}
