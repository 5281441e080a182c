//! A publisher's RTP packets, each behind a 2-byte length: vigint::fuzzing::depacketize.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| vigint::fuzzing::depacketize(data));
