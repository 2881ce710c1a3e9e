//! The config file: any text loads or is refused with an error that says where (a TOML error with
//! its line, or the dotted key that is wrong); never a panic.
#![no_main]

use facecv::config::ConfigError;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match facecv::fuzzing::config_toml(text) {
        Ok(_) => {}
        Err(ConfigError::Invalid { key, .. }) => assert!(!key.is_empty(), "an error without a key"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
