//! An RTSP connection's bytes, read in chunks the first byte picks: vigint::fuzzing::rtsp_request.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigint::fuzzing::rtsp_request(data));
