#![no_main]
//! The `sdk_batch` target: see [`airlock_plugin_sdk::fuzzing::session_lines`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock_plugin_sdk::fuzzing::session_lines(data));
