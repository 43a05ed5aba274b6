#![no_main]
//! The `message` target: see [`airlock::fuzzing::message`].

libfuzzer_sys::fuzz_target!(|data: &[u8]| airlock::fuzzing::message(data));
