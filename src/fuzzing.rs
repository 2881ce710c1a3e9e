//! The parsers that take outside bytes, callable on bytes in memory: the entry points of the fuzz
//! targets in `fuzz/` and of the property tests. Not an API (hidden from the docs); each function
//! runs its parser the way the appliance runs it and returns what the appliance would make of the
//! input, so that a target can check more than "did not panic".

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::api::ApiError;
use crate::config::{Config, ConfigError};

/// The most frames a y4m target reads a pass: enough to reach every code path of the reader.
pub const MAX_Y4M_FRAMES: usize = 8;
/// The most JPEGs an MJPEG target splits off.
pub const MAX_MJPEG_FRAMES: usize = 64;

/// Frames read from a y4m stream (a camera file, an uploaded enrolment video), or why it was
/// refused.
pub fn y4m(bytes: &[u8]) -> Result<usize, String> {
    crate::camera::y4m_frames(bytes, MAX_Y4M_FRAMES).map_err(|e| e.to_string())
}

/// The JPEGs an MJPEG stream splits into (up to the first error, which ends the list), and the
/// error if there was one.
pub fn mjpeg(bytes: &[u8]) -> (Vec<Vec<u8>>, Option<String>) {
    let mut reader = std::io::BufReader::with_capacity(4096, bytes);
    let mut jpegs = Vec::new();
    while jpegs.len() < MAX_MJPEG_FRAMES {
        let mut jpeg = Vec::new();
        match crate::camera::read_jpeg(&mut reader, &mut jpeg) {
            Ok(true) => jpegs.push(jpeg),
            Ok(false) => break,
            Err(e) => return (jpegs, Some(e.to_string())),
        }
    }
    (jpegs, None)
}

/// A config file's text loaded and validated as `facecv serve` and `check-config` do.
pub fn config_toml(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(text)
}

/// An answer of the API as a client sees it: the status and the JSON body.
pub type Answer = (u16, Value);

/// Each JSON body type of the API (webhook, camera, trigger, webhook test, replay, rename, enrol
/// from an event) read from
/// `bytes` and checked as its route does before it stores or dials anything: `None` where the
/// route would go on, the error answer where it would refuse.
pub fn api_json(bytes: &[u8]) -> Vec<Option<Answer>> {
    crate::api::parsers::json_bodies(bytes)
        .into_iter()
        .map(|r| r.err().map(answer))
        .collect()
}

/// A multipart body with its `Content-Type` read as the face routes read it: (files, text
/// fields), or the error answer.
pub fn multipart(content_type: &str, body: &[u8]) -> Result<(usize, usize), Answer> {
    crate::api::parsers::multipart(content_type, Bytes::copy_from_slice(body))
        .now_or_never()
        .expect("a body held in memory is parsed without waiting")
        .map_err(answer)
}

/// The status and JSON body of an error answer.
pub fn answer(e: ApiError) -> Answer {
    let response = e.into_response();
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .now_or_never()
        .expect("an error body is held in memory")
        .expect("an error body cannot fail")
        .to_bytes();
    let body = serde_json::from_slice(&body).expect("every API error is JSON");
    (status, body)
}
