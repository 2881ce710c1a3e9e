//! The upload decoder on any bytes: never panics, never allocates past libFuzzer's
//! `-malloc_limit_mb`, and what it decodes is the size it says.
#![no_main]

use facecv::vision::decode::decode;
use facecv::vision::{ImageLimits, VisionError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 4 Mpx: enough for the reduced-scale paths (2048 px and up) to be reached.
    let limits = ImageLimits { max_pixels: 1 << 22 };
    match decode(data, &limits) {
        Ok(d) => {
            assert_eq!(d.rgb.len(), d.width as usize * d.height as usize * 3);
            let (w, h) = d.original;
            assert!(u64::from(w) * u64::from(h) <= limits.max_pixels);
            assert!(d.width <= w && d.height <= h);
        }
        Err(VisionError::ImageDecode(_) | VisionError::ImageFormat(_)) => {}
        Err(VisionError::ImageTooLarge { .. }) => {}
        Err(e) => panic!("not an image error: {e:?}"),
    }
});
