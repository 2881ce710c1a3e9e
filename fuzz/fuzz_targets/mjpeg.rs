//! MJPEG streams (camera files, pipes, uploaded enrolment videos): every JPEG split off starts
//! with SOI and ends with EOI, and is no longer than the input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (jpegs, _error) = facecv::fuzzing::mjpeg(data);
    let total: usize = jpegs.iter().map(Vec::len).sum();
    assert!(total <= data.len(), "more bytes out than in");
    for jpeg in &jpegs {
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }
});
