//! The fuzz targets' oracles (`fuzz/checks.rs`) on stable, in every CI run: random bytes and
//! hand-picked seeds through request parsing and Envoy's Check path. cargo-fuzz explores far
//! more (fuzz/README.md); this keeps the oracles compiling, honest and exercised on each change.
#[path = "../../fuzz/checks.rs"]
mod checks;

use proptest::prelude::*;

/// Seeds that reach each branch: no headers, the known secret in headers, in raw headers and in
/// Basic; a bad app name; a write method.
const SEEDS: &[&[u8]] = &[
    b"",
    b"\x02GET\0x-circonus-app-name\0nightly-report",
    b"\x03POST\0x-circonus-app-name\0nightly-report",
    b"\x06DELETE\0x-circonus-app-name\0deploy bot",
    b"\x02GET\0x-circonus-app-name\0 leading space",
    b"\x00GET\0x-circonus-auth-token\0not-a-uuid\0x-circonus-app-name\0a",
    b"\x01GET\0authorization\0Basic !!!\0x-circonus-app-name\0\xff\xfe",
    // Found by cargo-fuzz: a method that contains the presented secret is echoed in a refusal;
    // the caller sent that text as the method, so it is not a leak (the oracle was wrong).
    b"\x07PUT 6f1c2a9e-3b4d-4c5e-8f70-91a2b3c4d5e6\0x-circonus-app-name\0))=",
    // And: a method of "\x16f1c2a9e-…" is JSON-escaped to "\u0016f1c2a9e-…", which spells the
    // secret; the oracle now reads the body's decoded strings.
    b"\x07PUT \x16f1c2a9e-3b4d-4c5e-8f70-91a2b3c4d5e6\0x-circonus-app-name\0))=",
    // And: replacement characters of an undecodable header matched a method's.
    b"\x07\xff\xff\xff\xff\xff\xff\0authorization\0\xfd\xff\xff\xff\xfe \0x-circonus-app-name\0))=",
];

#[test]
fn seeds_pass_both_oracles() {
    for seed in SEEDS {
        checks::request_parsing(seed);
        checks::ext_authz_check(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_pass_the_request_parsing_oracle(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        checks::request_parsing(&data);
    }

    #[test]
    fn random_checks_pass_the_ext_authz_oracle(
        mode in 0u8..8,
        method in prop_oneof!["GET", "HEAD", "OPTIONS", "POST", "DELETE", "get", "[A-Z]{0,8}"],
        headers in proptest::collection::vec(
            (
                prop_oneof!["x-circonus-auth-token", "x-circonus-app-name", "authorization", "X-Circonus-App-Name", "[a-z-]{1,12}"],
                proptest::collection::vec(any::<u8>(), 0..64),
            ),
            0..5,
        ),
    ) {
        let mut data = vec![mode];
        data.extend_from_slice(method.as_bytes());
        for (name, value) in headers {
            data.push(0);
            data.extend_from_slice(name.as_bytes());
            data.push(0);
            data.extend(value.into_iter().filter(|b| *b != 0));
        }
        checks::ext_authz_check(&data);
    }
}
