//! A publisher's ANNOUNCE body (SDP): vigint::fuzzing::sdp.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigint::fuzzing::sdp(data));
