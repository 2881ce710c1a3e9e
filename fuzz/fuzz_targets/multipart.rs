//! Multipart forms of the face routes: any body, with a boundary taken from its first line, is
//! read or refused with a 4xx in the JSON error shape, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the boundary, so that the fuzzer can make bodies that match it.
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let boundary = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or(&[]);
    let content_type = format!("multipart/form-data; boundary={boundary}");
    if let Err((status, body)) = facecv::fuzzing::multipart(&content_type, body) {
        assert!((400..500).contains(&status), "{status} {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
});
