#![no_main]
//! The `framing` target: see [`airlock::fuzzing::framing`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::framing(data));
