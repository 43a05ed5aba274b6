#![no_main]
//! The `peek` target: see [`airlock::fuzzing::peek`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::peek(data));
