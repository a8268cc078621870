//! Fuzzes Envoy's Check request path before the lookup: decoding, credentials from plain and
//! raw headers, the method's privilege, and the answer for every decision. The oracle lives in
//! `fuzz/checks.rs`, shared with `tests/properties/fuzz_inputs.rs`.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ext_authz_check(data));
