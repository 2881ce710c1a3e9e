//! Property tests of the parsers that read outside bytes without a socket: the y4m and MJPEG
//! readers (camera files, pipes, uploaded enrolment videos), the config file and the multipart
//! forms of the face routes. They call the same entry points as the fuzz targets in `fuzz/`
//! (`facecv::fuzzing`); the API-level ones are in `tests/abuse/parsers.rs`. Case counts keep the
//! whole file to seconds in a debug build.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use facecv::config::ConfigError;
use facecv::fuzzing;
use proptest::prelude::*;
use proptest::test_runner::Config as Cases;

/// Counts the bytes each thread allocates, so that a test can bound what one parse allocates
/// (tests run on several threads; each counts its own).
struct Counting;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + layout.size()));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = new_size.saturating_sub(layout.size());
        let _ = ALLOCATED.try_with(|a| a.set(a.get() + grown));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Bytes this thread allocated while running `f`.
fn allocated_by<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let before = ALLOCATED.with(Cell::get);
    let out = f();
    (out, ALLOCATED.with(Cell::get) - before)
}

// ---- y4m ----

const CHROMAS: [&str; 9] = [
    "420", "420jpeg", "420mpeg2", "420paldv", "422", "444", "444alpha", "mono", "411",
];

/// Bytes of one frame's planes for a `w`x`h` picture in `chroma` (as the y4m spec lays them out).
fn frame_len(w: usize, h: usize, chroma: &str) -> usize {
    let c = |n: usize, s: u32| n.div_ceil(1 << s);
    match chroma {
        "mono" => w * h,
        "444alpha" => 4 * w * h,
        "444" => 3 * w * h,
        "422" => w * h + 2 * c(w, 1) * h,
        _ => w * h + 2 * c(w, 1) * c(h, 1),
    }
}

/// A header tag the reader meets in the wild or from a hostile upload.
fn y4m_tag() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| format!("W{n}")),
        any::<u32>().prop_map(|n| format!("H{n}")),
        prop::sample::select(CHROMAS.to_vec()).prop_map(|c| format!("C{c}")),
        Just("XCOLORRANGE=FULL".to_owned()),
        Just("F30000:1001".to_owned()),
        Just("Ip".to_owned()),
        Just("A1:1".to_owned()),
        "\\PC{0,12}",
        "[WHCFIAX][0-9a-z=:-]{0,10}",
    ]
}

proptest! {
    #![proptest_config(Cases::with_cases(256))]

    /// Whatever follows the magic, the reader reads whole frames or refuses; it never panics.
    #[test]
    fn y4m_never_panics(tags in prop::collection::vec(y4m_tag(), 0..8),
                        tail in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut data = format!("YUV4MPEG2 {}\n", tags.join(" ")).into_bytes();
        data.extend(tail);
        let _ = fuzzing::y4m(&data);
    }

    /// Whole frames are all read, a frame cut short ends the stream like a killed recorder's,
    /// and a FRAME line of garbage is an error, in every chroma layout.
    #[test]
    fn y4m_reads_every_whole_frame(w in 1usize..24, h in 1usize..24,
                                   chroma in prop::sample::select(CHROMAS[..8].to_vec()),
                                   frames in 0usize..4, cut in 0usize..64, fill in any::<u8>()) {
        let len = frame_len(w, h, chroma);
        let mut data = format!("YUV4MPEG2 W{w} H{h} F25:1 C{chroma}\n").into_bytes();
        for _ in 0..frames {
            data.extend(b"FRAME\n");
            data.extend(std::iter::repeat_n(fill, len));
        }
        let whole = data.len();
        data.extend(b"FRAME Ixx\n");
        data.extend(std::iter::repeat_n(fill, cut.min(len - 1)));
        prop_assert_eq!(fuzzing::y4m(&data), Ok(frames));
        data.truncate(whole);
        data.extend(b"GARBAGE\n");
        prop_assert!(fuzzing::y4m(&data).is_err());
    }

    /// A header may claim 8192x8192 with an alpha plane (256 MiB a frame); a short upload is
    /// found short without allocating what the header claims.
    #[test]
    fn y4m_allocates_what_the_bytes_hold_not_what_the_header_claims(
        w in 4096usize..=8192, h in 4096usize..=8192,
        chroma in prop::sample::select(vec!["444alpha", "444", "420"]),
        body in 0usize..4096,
    ) {
        let mut data = format!("YUV4MPEG2 W{w} H{h} C{chroma}\nFRAME\n").into_bytes();
        data.extend(std::iter::repeat_n(7u8, body));
        let (frames, bytes) = allocated_by(|| fuzzing::y4m(&data));
        prop_assert_eq!(frames, Ok(0));
        prop_assert!(bytes < 1 << 20, "{bytes} bytes allocated for a {}-byte stream", data.len());
    }
}

/// Regression: a header tag starting with a multi-byte character was split inside it (panic).
#[test]
fn y4m_header_tags_may_start_with_any_character() {
    for header in ["YUV4MPEG2 é", "YUV4MPEG2 \u{a0}", "YUV4MPEG2 W\u{1F600}"] {
        let data = format!("{header}\nFRAME\n");
        assert!(fuzzing::y4m(data.as_bytes()).is_err(), "{header}");
    }
    let unknown_tag = "YUV4MPEG2 W2 H2 \u{1F600}x\nFRAME\n";
    assert_eq!(fuzzing::y4m(unknown_tag.as_bytes()), Ok(0));
    let ok = "YUV4MPEG2 W2 H2 C444 Xé=1\nFRAME\n\0\0\0\0\0\0\0\0\0\0\0\0";
    assert_eq!(fuzzing::y4m(ok.as_bytes()), Ok(1));
}

// ---- MJPEG ----

/// A small JPEG as a camera writes them (JFIF header, one scan, EOI).
fn jpeg(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let pixels: Vec<u8> = (0..usize::from(w) * usize::from(h) * 3)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 80)
        .encode(&pixels, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

proptest! {
    #![proptest_config(Cases::with_cases(64))]

    /// Back-to-back JPEGs, with junk between them (no FF, as a recorder's padding), split into
    /// exactly the JPEGs that went in; a stream cut anywhere gives the whole ones before the cut.
    #[test]
    fn mjpeg_splits_back_into_its_jpegs(sizes in prop::collection::vec((1u16..20, 1u16..20, any::<u8>()), 1..5),
                                        junk in prop::collection::vec(0u8..0xFF, 0..16),
                                        cut in any::<prop::sample::Index>()) {
        let jpegs: Vec<Vec<u8>> = sizes.iter().map(|&(w, h, s)| jpeg(w, h, s)).collect();
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for j in &jpegs {
            stream.extend(&junk);
            stream.extend(j);
            ends.push(stream.len());
        }
        let (split, error) = fuzzing::mjpeg(&stream);
        prop_assert_eq!(error, None);
        prop_assert_eq!(&split, &jpegs);

        let at = cut.index(stream.len());
        let (split, _) = fuzzing::mjpeg(&stream[..at]);
        let whole = ends.iter().filter(|&&e| e <= at).count();
        prop_assert_eq!(&split[..], &jpegs[..whole]);
    }

    /// Any bytes: every JPEG split off runs SOI to EOI, and no more bytes come out than went in.
    #[test]
    fn mjpeg_never_panics_nor_invents_bytes(data in prop::collection::vec(any::<u8>(), 0..2048),
                                            prefix in any::<bool>()) {
        let mut bytes = if prefix { vec![0xFF, 0xD8] } else { Vec::new() };
        bytes.extend(data);
        let (split, _) = fuzzing::mjpeg(&bytes);
        prop_assert!(split.iter().map(Vec::len).sum::<usize>() <= bytes.len());
        for j in &split {
            prop_assert!(j.starts_with(&[0xFF, 0xD8]) && j.ends_with(&[0xFF, 0xD9]));
        }
    }

    /// A valid MJPEG with one byte changed, dropped or added is still split or refused, never a
    /// panic nor a JPEG that does not end with EOI.
    #[test]
    fn mjpeg_mutated_streams_are_split_or_refused(seeds in prop::collection::vec(any::<u8>(), 1..3),
                                                  at in any::<prop::sample::Index>(),
                                                  byte in any::<u8>(), how in 0u8..3) {
        let mut stream: Vec<u8> = seeds.iter().flat_map(|&s| jpeg(9, 7, s)).collect();
        let i = at.index(stream.len());
        match how {
            0 => stream[i] = byte,
            1 => { stream.remove(i); }
            _ => stream.insert(i, byte),
        }
        let (split, _) = fuzzing::mjpeg(&stream);
        for j in &split {
            prop_assert!(j.starts_with(&[0xFF, 0xD8]) && j.ends_with(&[0xFF, 0xD9]));
        }
    }
}

// ---- config TOML ----

/// A config that sets a key in every section a file may have, all valid.
const FULL_CONFIG: &str = r#"
[api]
listen = "127.0.0.1:7000"
token = "0123456789abcdef0123"
max_body_kb = 1024
max_upload_mb = 16

[storage]
dir = "facecv-data"
quota_mb = 256
fsync = "always"
retain_delivered_hours = 24

[[webhooks]]
webhook_id = "main"
url = "http://127.0.0.1:9/hook"
headers = { Authorization = "Bearer x" }
timeout = 30
retry_count = 3
retry_delay = 1
batch_size = 10
batch_timeout = 1.0
event_types = ["face_recognized", "stranger_alert"]
camera_ids = ["door"]

[vision.gallery]
threshold = 0.55

[[cameras]]
camera_id = "door"
source = "synthetic"
fps = 5
autostart = false

[cameras.policy]
stranger_cooldown = 600

[mqtt]
host = "127.0.0.1"
port = 1883
topic_prefix = "facecv"
qos = 1
keep_alive = 30
"#;

/// A TOML value of any type, including the edges (huge, negative, NaN, empty, nested).
fn toml_value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(toml::Value::Integer),
        prop_oneof![
            any::<f64>(),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.5),
            Just(1e300)
        ]
        .prop_map(toml::Value::Float),
        any::<bool>().prop_map(toml::Value::Boolean),
        "\\PC{0,20}".prop_map(toml::Value::String),
        Just(toml::Value::String("..".into())),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

/// Every leaf of `v` by its path (table keys and array indexes).
fn leaves(v: &toml::Value, path: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match v {
        toml::Value::Table(t) => {
            for (k, child) in t {
                path.push(k.clone());
                leaves(child, path, out);
                path.pop();
            }
        }
        toml::Value::Array(a) if a.iter().any(|x| x.is_table()) => {
            for (i, child) in a.iter().enumerate() {
                path.push(i.to_string());
                leaves(child, path, out);
                path.pop();
            }
        }
        _ => out.push(path.clone()),
    }
}

fn at_path<'a>(v: &'a mut toml::Value, path: &[String]) -> &'a mut toml::Value {
    path.iter().fold(v, |v, key| match v {
        toml::Value::Table(t) => t.get_mut(key).unwrap(),
        toml::Value::Array(a) => &mut a[key.parse::<usize>().unwrap()],
        _ => unreachable!("leaves() only walks tables and arrays"),
    })
}

/// Checks the promise of the config loader: it loads, or its error says where the problem is.
fn loads_or_names(text: &str) -> Result<(), String> {
    match fuzzing::config_toml(text) {
        Ok(_) => Ok(()),
        Err(ConfigError::Invalid { key, message }) if key.is_empty() || message.is_empty() => Err(
            format!("an error without a key or message: {key:?} {message:?}"),
        ),
        Err(_) => Ok(()),
    }
}

proptest! {
    #![proptest_config(Cases::with_cases(256))]

    /// Any text at all: a config or an error, never a panic.
    #[test]
    fn config_any_text_loads_or_errs(text in "\\PC{0,200}") {
        prop_assert_eq!(loads_or_names(&text), Ok(()));
    }

    /// The full config with one key set to another value (of any type) or removed: it loads, or
    /// the error names that key (validation) or shows the line that holds it (TOML and types).
    #[test]
    fn config_mutated_keys_are_named(pick in any::<prop::sample::Index>(), value in toml_value(),
                                     remove in prop::bool::weighted(0.2)) {
        let mut config: toml::Value = toml::from_str(FULL_CONFIG).unwrap();
        let mut paths = Vec::new();
        leaves(&config, &mut Vec::new(), &mut paths);
        let path = pick.get(&paths).clone();
        let (parent, leaf) = path.split_at(path.len() - 1);
        if remove {
            if let toml::Value::Table(t) = at_path(&mut config, parent) {
                t.remove(&leaf[0]);
            }
        } else {
            *at_path(&mut config, &path) = value;
        }
        let Ok(text) = toml::to_string(&config) else {
            return Ok(()); // NaN-free TOML cannot say everything a value holds
        };
        prop_assert_eq!(loads_or_names(&text), Ok(()));
        if let Err(e) = fuzzing::config_toml(&text) {
            let said = e.to_string();
            prop_assert!(said.contains(leaf[0].as_str()),
                "changing {} gave an error that does not name it: {said}\n{text}", path.join("."));
        }
    }
}

// ---- multipart ----

/// Characters RFC 2046 allows in a boundary (bar the space, which needs quoting).
const BOUNDARY: &str = "[0-9A-Za-z'()+_,./:=?-]{1,70}";

proptest! {
    #![proptest_config(Cases::with_cases(128))]

    /// A well-formed form of text fields and files, any boundary: every part is read.
    #[test]
    fn multipart_forms_are_read_whole(boundary in BOUNDARY,
                                      fields in prop::collection::btree_map("[a-z]{1,10}", "\\PC{0,30}", 0..4),
                                      files in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..3)) {
        let mut body = Vec::new();
        for (k, v) in &fields {
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"t{k}\"\r\n\r\n{v}\r\n").as_bytes());
        }
        for data in &files {
            body.extend(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes());
            body.extend(data);
            body.extend(b"\r\n");
        }
        body.extend(format!("--{boundary}--\r\n").as_bytes());
        // A part's data that holds its own delimiter is another body; such rare inputs are skipped.
        let delimiter = format!("\r\n--{boundary}");
        prop_assume!(!files.iter().any(|f| f.windows(delimiter.len()).any(|w| w == delimiter.as_bytes())));
        let ct = format!("multipart/form-data; boundary=\"{boundary}\"");
        prop_assert_eq!(fuzzing::multipart(&ct, &body), Ok((files.len(), fields.len())));
    }

    /// Any content type and any body: a form or a 4xx in the API's JSON error shape.
    #[test]
    fn multipart_any_body_is_read_or_refused(ct in prop_oneof!["\\PC{0,40}", BOUNDARY.prop_map(|b| format!("multipart/form-data; boundary={b}"))],
                                             body in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Err((status, body)) = fuzzing::multipart(&ct, &body) {
            prop_assert!((400..500).contains(&status), "{} {}", status, body);
            prop_assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string());
        }
    }

    /// A valid form with bytes changed, dropped or added: read or refused with a 4xx.
    #[test]
    fn multipart_mutated_forms_are_read_or_refused(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6)) {
        let b = "XyZ-boundary";
        let mut body = format!("--{b}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nAda\r\n--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n\r\n\u{ff}\u{d8}data\r\n--{b}--\r\n").into_bytes();
        for (at, byte, how) in edits {
            let i = at.index(body.len());
            match how {
                0 => body[i] = byte,
                1 => { body.remove(i); }
                _ => body.insert(i, byte),
            }
        }
        if let Err((status, _)) = fuzzing::multipart(&format!("multipart/form-data; boundary={b}"), &body) {
            prop_assert!((400..500).contains(&status), "{}", status);
        }
    }
}
