//! The header reader on any bytes: never panics; a size it reports is the one the decoder finds.
#![no_main]

use facecv::vision::decode::{decode, read_header};
use facecv::vision::ImageLimits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(header) = read_header(data) else {
        return;
    };
    assert!(header.width > 0 || header.height == 0 || header.pixels() == 0);
    // Tiny images only, so that the fuzzer spends its time in the header code.
    let limits = ImageLimits { max_pixels: 1 << 16 };
    if let Ok(d) = decode(data, &limits) {
        assert_eq!(d.original, (header.width, header.height));
    }
});
