#![no_main]
//! The `wit_batch` target: see [`airlock_plugin_sdk::fuzzing::batch_writer`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock_plugin_sdk::fuzzing::batch_writer(data));
