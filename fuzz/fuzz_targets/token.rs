#![no_main]
//! Fuzz target: see `callflow::fuzzing::token` (the replay test runs the same function).

libfuzzer_sys::fuzz_target!(|data: &[u8]| callflow::fuzzing::token(data));
