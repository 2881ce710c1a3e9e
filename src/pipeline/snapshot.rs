//! Event snapshots: a JPEG of the face (with a margin) kept on disk for each `stranger_alert`, as
//! FaceCV saved one with each alert (named in the event's `image_path`), and for each
//! `face_recognized` from a camera, so that the console can show who was seen and enrol a
//! stranger, or correct a recognition, from the picture.
//!
//! A snapshot is `<dir>/<camera>/<event id>.jpg`: found by the event's id alone, through
//! [`find`], which builds the path from a checked camera id and a checked event id and never
//! from a path stored in an event (events can come from `/api/v1/events/trigger`).
//!
//! Events are rare (once per track per interval, strangers under a cooldown and an hourly cap),
//! so the encode and the write are not on the per-frame path. Each camera keeps at most [`KEEP`]
//! snapshots; the oldest go first (event ids are time-ordered, so their names sort by age).
//!
//! [`SnapshotLinks`] signs links to snapshots, so that a webhook receiver can fetch one without
//! the API token: an HMAC-SHA256 over the path and an expiry, with a key made once per device.

use std::io::Read;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::camera::{CameraId, Frame};
use crate::events::EventId;
use crate::store::private_file::write_private;

/// Snapshots kept per camera.
pub const KEEP: usize = 500;

/// Crops `bbox` (with a margin) out of the frame and writes it as `<dir>/<camera>/<id>.jpg`;
/// returns the path written.
pub fn save(
    dir: &Path,
    camera: &str,
    id: &EventId,
    frame: &Frame,
    bbox: [i32; 4],
) -> std::io::Result<PathBuf> {
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
    let path = folder.join(format!("{id}.jpg"));
    let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    image::codecs::jpeg::JpegEncoder::new_with_quality(file, 85)
        .encode(&crop, cw as u32, ch as u32, image::ExtendedColorType::Rgb8)
        .map_err(std::io::Error::other)?;
    prune(&folder)?;
    Ok(path)
}

/// The snapshot of event `id` recorded by `camera`, if it is still kept. Both are checked
/// again here, whatever their source: only `<dir>/<camera id>/<event id>.jpg` can be named.
pub fn find(dir: &Path, camera: &str, id: &str) -> Option<PathBuf> {
    let camera = CameraId::parse(camera).ok()?;
    let id = EventId::parse(id)?;
    let path = dir.join(camera.as_str()).join(format!("{id}.jpg"));
    path.is_file().then_some(path)
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

/// The device's key for snapshot links, in the state folder (`storage.dir`).
pub const KEY_FILE: &str = "snapshot-key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum LinkKeyError {
    #[error("cannot make or read the snapshot link key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the snapshot link key {path} holds {len} bytes, not {KEY_LEN}; remove it to make a new one (links already given out stop working)")]
    Length { path: PathBuf, len: usize },
}

/// Signs and checks links to snapshots: `<path>?expires=<unix s>&sig=<hex>`, the signature an
/// HMAC-SHA256 over `<path>\n<expires>` with the device's key, made once (0600) and kept so
/// that links given out stay valid across restarts until they expire.
pub struct SnapshotLinks {
    key: [u8; KEY_LEN],
    /// The base receivers reach the API on (`api.public_url`); without it, events carry no link.
    public_url: Option<String>,
    ttl_s: u64,
}

impl std::fmt::Debug for SnapshotLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotLinks")
            .field("public_url", &self.public_url)
            .field("ttl_s", &self.ttl_s)
            .finish_non_exhaustive()
    }
}

impl SnapshotLinks {
    /// Reads the key in `state_dir`, or makes it there if there is none.
    pub fn open(
        state_dir: &Path,
        public_url: Option<&str>,
        ttl_s: u64,
    ) -> Result<SnapshotLinks, LinkKeyError> {
        let path = state_dir.join(KEY_FILE);
        let io = |source| LinkKeyError::Io {
            path: path.clone(),
            source,
        };
        let key = match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).map_err(io)?;
                <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| LinkKeyError::Length {
                    path: path.clone(),
                    len: bytes.len(),
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(state_dir).map_err(io)?;
                make_key(&path).map_err(io)?
            }
            Err(e) => return Err(io(e)),
        };
        Ok(SnapshotLinks {
            key,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_owned()),
            ttl_s,
        })
    }

    /// The API path of event `id`'s snapshot.
    pub fn path(id: &EventId) -> String {
        format!("/api/v1/events/{id}/snapshot.jpg")
    }

    fn mac(&self, path: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of `path` until `expires` (unix seconds), lowercase hex.
    pub fn sign(&self, path: &str, expires: u64) -> String {
        let tag = self.mac(path, expires).finalize().into_bytes();
        tag.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Whether `sig` signs `path` until `expires` and `expires` is not past `now`; compared in
    /// constant time.
    pub fn verify(&self, path: &str, expires: u64, sig: &str, now: u64) -> bool {
        if expires < now || sig.len() != 64 {
            return false;
        }
        let Some(tag) = unhex(sig) else { return false };
        self.mac(path, expires).verify_slice(&tag).is_ok()
    }

    /// The link to event `id`'s snapshot on `api.public_url`, valid for `api.snapshot_url_ttl_s`
    /// from `now`; `None` without a public URL.
    pub fn url(&self, id: &EventId, now: u64) -> Option<String> {
        let base = self.public_url.as_deref()?;
        let path = Self::path(id);
        let expires = now + self.ttl_s;
        let sig = self.sign(&path, expires);
        Some(format!("{base}{path}?expires={expires}&sig={sig}"))
    }
}

fn make_key(path: &Path) -> std::io::Result<[u8; KEY_LEN]> {
    use rand::RngCore;
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng.fill_bytes(&mut key);
    // Written whole: a power cut never leaves half a key, which would refuse to load (or, worse,
    // a key that changed under the links given out).
    write_private(path, &key)?;
    tracing::info!(path = %path.display(), "made the key that signs snapshot links");
    Ok(key)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> EventId {
        EventId::generate()
    }

    #[test]
    fn a_snapshot_is_a_jpeg_of_the_face_with_a_margin_named_by_its_event() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = Frame::default();
        frame.resize(64, 48).fill(200);
        let first = id();
        let path = save(dir.path(), "door", &first, &frame, [10, 10, 30, 30]).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (36, 36),
            "20 px and 8 px of margin each side"
        );
        assert_eq!(find(dir.path(), "door", &first.0), Some(path));
        // A box at the edge is clipped to the frame.
        let p2 = save(dir.path(), "door", &id(), &frame, [50, 40, 70, 60]).unwrap();
        let img = image::open(&p2).unwrap();
        assert_eq!(
            (img.width(), img.height()),
            (22, 16),
            "clipped at the right and bottom edges"
        );
    }

    #[test]
    fn only_a_camera_id_and_an_event_id_can_name_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("door")).unwrap();
        std::fs::write(dir.path().join("door/notes.jpg"), b"x").unwrap();
        std::fs::write(dir.path().join("secret.jpg"), b"x").unwrap();
        let real = id();
        std::fs::write(dir.path().join(format!("door/{real}.jpg")), b"x").unwrap();
        assert!(find(dir.path(), "door", &real.0).is_some());
        for (camera, event) in [
            ("door", "notes"),
            ("..", real.0.as_str()),
            ("door/..", real.0.as_str()),
            ("door", "../secret"),
            ("door", &format!("{}/../../secret", real.0)),
        ] {
            assert_eq!(find(dir.path(), camera, event), None, "{camera} {event}");
        }
    }

    #[test]
    fn each_camera_keeps_its_newest_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let mut frame = Frame::default();
        frame.resize(32, 32).fill(100);
        let ids: Vec<EventId> = (0..KEEP + 3).map(|_| id()).collect();
        for i in &ids {
            save(dir.path(), "door", i, &frame, [4, 4, 20, 20]).unwrap();
        }
        assert_eq!(
            std::fs::read_dir(dir.path().join("door")).unwrap().count(),
            KEEP
        );
        assert!(
            find(dir.path(), "door", &ids[2].0).is_none(),
            "the oldest went"
        );
        assert!(find(dir.path(), "door", &ids[3].0).is_some());
    }

    #[test]
    fn a_link_passes_until_it_expires_and_not_once_changed() {
        let dir = tempfile::tempdir().unwrap();
        let links = SnapshotLinks::open(dir.path(), Some("https://door.example/"), 60).unwrap();
        let e = id();
        let url = links.url(&e, 1000).unwrap();
        let path = SnapshotLinks::path(&e);
        assert!(
            url.starts_with(&format!("https://door.example{path}?expires=1060&sig=")),
            "{url}"
        );
        let sig = url.rsplit("sig=").next().unwrap();
        assert!(links.verify(&path, 1060, sig, 1060));
        assert!(!links.verify(&path, 1060, sig, 1061), "expired");
        assert!(!links.verify(&path, 1061, sig, 1000), "another expiry");
        assert!(
            !links.verify(&SnapshotLinks::path(&id()), 1060, sig, 1000),
            "another event"
        );
        let mut tampered = sig.to_owned();
        tampered.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert!(!links.verify(&path, 1060, &tampered, 1000));
        assert!(!links.verify(&path, 1060, "zz", 1000));
        // The key is kept: links outlive a restart, and the file is the owner's alone.
        let again = SnapshotLinks::open(dir.path(), None, 60).unwrap();
        assert!(again.verify(&path, 1060, sig, 1000));
        assert_eq!(
            again.url(&e, 1000),
            None,
            "no public URL, no link in events"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"short").unwrap();
        let err = SnapshotLinks::open(dir.path(), None, 60).unwrap_err();
        assert!(matches!(err, LinkKeyError::Length { len: 5, .. }), "{err}");
    }
}
