//! The API's JSON bodies (webhook, camera, trigger, webhook test, replay): any bytes are taken or
//! refused with a 4xx in the JSON error shape, never a 5xx or a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for (status, body) in facecv::fuzzing::api_json(data).into_iter().flatten() {
        assert!((400..500).contains(&status), "{status} {body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{body}"
        );
    }
});
