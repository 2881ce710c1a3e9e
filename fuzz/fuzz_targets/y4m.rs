//! y4m streams (camera files, uploaded enrolment videos): any bytes are read or refused, never a
//! panic, and never an allocation larger than the bytes given call for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = facecv::fuzzing::y4m(data);
});
