#![no_main]
//! Fuzz target: see `callflow::fuzzing::flow_loader` (the replay test runs the same function).

libfuzzer_sys::fuzz_target!(|data: &[u8]| callflow::fuzzing::flow_loader(data));
