//! What every enrolment keeps of a face, and the one function that stores it.
//!
//! Whatever the path (a photo uploaded to `POST /api/v1/faces` or FaceCV's register, the frames
//! picked from a video, a folder on the device, a live camera, an event's snapshot), a face is
//! enrolled as a [`Shot`]: its embedding, the aligned crop the embedder saw (the thumbnail the
//! console shows, and proof of what was learned) and the photo it came from, so that embeddings
//! can be made again when the model changes. [`enrol`] stores the shots of one person in one
//! transaction; the pictures are removed with their face by the store.

use serde_json::{Map, Value};

use crate::store::faces::{FaceImages, FaceRecord};
use crate::store::{NewFace, Store, StoreError};
use crate::vision::{FaceEngine, VisionError};

/// The photo kept is at most this many pixels on its long side: enough to see who it is and to
/// embed the face again (faces are aligned to 112 px), small enough (~100 KB) to keep many.
pub const PHOTO_MAX_SIDE: u32 = 1024;
/// JPEG quality of the crop and the photo.
const QUALITY: u8 = 85;

/// One face to enrol with its pictures.
#[derive(Debug, Clone)]
pub struct Shot {
    pub embedding: Vec<f32>,
    pub images: FaceImages,
}

/// The one clear face of an encoded photo (JPEG or PNG), embedded, with its pictures; refused
/// as [`FaceEngine::embed_single`] refuses.
pub fn from_image(engine: &mut FaceEngine, image: &[u8]) -> Result<Shot, VisionError> {
    let (rgb, width, height) = engine.decode(image)?;
    from_rgb(engine, &rgb, width, height)
}

/// [`from_image`] on a decoded RGB8 photo.
pub fn from_rgb(
    engine: &mut FaceEngine,
    rgb: &[u8],
    width: u32,
    height: u32,
) -> Result<Shot, VisionError> {
    let embedding = engine.embed_single_rgb(rgb, width, height)?;
    let (crop, side) = engine.last_crop();
    Ok(Shot {
        embedding: embedding.as_slice().to_vec(),
        images: pictures(crop, side, rgb, width, height)?,
    })
}

/// The pictures of a face: its aligned crop (`side x side` RGB8) and the photo (RGB8), both
/// JPEG, the photo scaled down to [`PHOTO_MAX_SIDE`].
pub fn pictures(
    crop: &[u8],
    side: u32,
    rgb: &[u8],
    width: u32,
    height: u32,
) -> Result<FaceImages, VisionError> {
    Ok(FaceImages {
        crop: jpeg(crop, side, side)?,
        photo: photo(rgb, width, height)?,
    })
}

/// An RGB8 photo as kept: JPEG, scaled down to [`PHOTO_MAX_SIDE`] on its long side.
pub fn photo(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, VisionError> {
    let long = width.max(height);
    if long <= PHOTO_MAX_SIDE {
        jpeg(rgb, width, height)
    } else {
        let scale = PHOTO_MAX_SIDE as f32 / long as f32;
        let (w, h) = (
            ((width as f32 * scale).round() as u32).max(1),
            ((height as f32 * scale).round() as u32).max(1),
        );
        let full = image::RgbImage::from_raw(width, height, rgb.to_vec())
            .ok_or_else(|| encode_error("the photo is smaller than its size says"))?;
        let small = image::imageops::resize(&full, w, h, image::imageops::FilterType::Triangle);
        jpeg(small.as_raw(), w, h)
    }
}

/// RGB8 as JPEG.
pub fn jpeg(rgb: &[u8], width: u32, height: u32) -> Result<Vec<u8>, VisionError> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| encode_error(&e.to_string()))?;
    Ok(out)
}

fn encode_error(message: &str) -> VisionError {
    VisionError::Runtime {
        context: "encoding an enrolment picture",
        message: message.to_owned(),
    }
}

/// Stores the shots of one person, pictures included, in one transaction: every enrolment path
/// ends here. The caller reloads the cameras' gallery.
pub fn enrol(
    store: &Store,
    name: &str,
    model: &str,
    shots: &[Shot],
    metadata: &Map<String, Value>,
) -> Result<Vec<FaceRecord>, StoreError> {
    let faces: Vec<NewFace> = shots
        .iter()
        .map(|s| NewFace {
            embedding: s.embedding.clone(),
            images: Some(s.images.clone()),
        })
        .collect();
    store.add_faces(name, model, &faces, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_photo_is_kept_at_most_1024_px_and_a_small_one_as_it_is() {
        let crop = vec![128u8; 112 * 112 * 3];
        let big = vec![90u8; 2000 * 1500 * 3];
        let p = pictures(&crop, 112, &big, 2000, 1500).unwrap();
        let photo = image::load_from_memory(&p.photo).unwrap();
        assert_eq!((photo.width(), photo.height()), (1024, 768));
        let thumb = image::load_from_memory(&p.crop).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (112, 112));
        let small = vec![90u8; 64 * 48 * 3];
        let p = pictures(&crop, 112, &small, 64, 48).unwrap();
        let photo = image::load_from_memory(&p.photo).unwrap();
        assert_eq!((photo.width(), photo.height()), (64, 48));
    }
}
