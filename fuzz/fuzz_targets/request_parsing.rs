//! Fuzzes what a caller controls before any database is touched: the credential headers (as
//! real gRPC metadata), the domain parsers, page tokens, cursors and prost decoding of the
//! requests. The oracle lives in `fuzz/checks.rs`, shared with `tests/properties/fuzz_inputs.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::request_parsing(data));
