//! The console's files, embedded from `web/static` (written by hand) and `web/dist` (built by
//! `web/scripts/build.mjs` and committed, so building the binary needs no npm), and the HTTP
//! responses that serve them.
use std::sync::LazyLock;

use http::header::{
    ACCEPT_ENCODING, ALLOW, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG,
    HeaderValue, IF_NONE_MATCH, VARY,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Bytes;
use sha2::{Digest, Sha256};
use tonic::body::Body;

/// The console's Content-Security-Policy: scripts, styles, images and calls from this origin
/// only; no inline script or style, no eval; no framing; no forms posted anywhere. Trusted
/// types 'none' makes any assignment of a string to an HTML sink (innerHTML and friends)
/// throw, so a name chosen by a token holder can never become markup.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// One embedded file: its URL path, type, bytes and a gzip copy of them.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    plain: &'static [u8],
    gzip: &'static [u8],
}

/// `$dir`: where the plain file is kept. The files written by hand (`web/static`) are embedded
/// from there, not from a copy in `web/dist`, so there is one of each; `web/dist` holds what the
/// build makes: the bundled script and every `.gz`.
macro_rules! asset {
    ($path:literal, $dir:literal, $file:literal, $type:literal) => {
        Asset {
            path: $path,
            content_type: $type,
            plain: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/web/",
                $dir,
                "/",
                $file
            )),
            gzip: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/web/dist/",
                $file,
                ".gz"
            )),
        }
    };
}

static ASSETS: [Asset; 4] = [
    asset!("/", "static", "index.html", "text/html; charset=utf-8"),
    asset!(
        "/console/console.js",
        "dist",
        "console.js",
        "text/javascript; charset=utf-8"
    ),
    asset!(
        "/console/console.css",
        "static",
        "console.css",
        "text/css; charset=utf-8"
    ),
    asset!(
        "/console/favicon.svg",
        "static",
        "favicon.svg",
        "image/svg+xml"
    ),
];

/// Strong validators, one per asset and encoding: a digest of the bytes sent.
static ETAGS: LazyLock<Vec<(HeaderValue, HeaderValue)>> = LazyLock::new(|| {
    let tag = |bytes: &[u8]| {
        let digest = Sha256::digest(bytes);
        let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        HeaderValue::from_str(&format!("\"{hex}\"")).unwrap_or(HeaderValue::from_static("\"\""))
    };
    ASSETS.iter().map(|a| (tag(a.plain), tag(a.gzip))).collect()
});

/// The paths the console serves, for tests and docs.
pub fn paths() -> impl Iterator<Item = &'static str> {
    ASSETS.iter().map(|a| a.path)
}

/// The response to a request that is not gRPC: an asset, 304, 404 or 405.
pub fn respond<B>(request: &Request<B>) -> Response<Body> {
    let found = ASSETS.iter().position(|a| a.path == request.uri().path());
    let Some(index) = found else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let method = request.method();
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let asset = &ASSETS[index];
    let gzip = accepts_gzip(request.headers());
    let (bytes, etag) = if gzip {
        (asset.gzip, ETAGS[index].1.clone())
    } else {
        (asset.plain, ETAGS[index].0.clone())
    };
    let not_modified = request
        .headers()
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == etag.to_str().unwrap_or_default() || tag.trim() == "*");
    let (status, body) = if not_modified {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else if method == Method::HEAD {
        (StatusCode::OK, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(bytes))
    };
    let mut response = Response::new(Body::new(Full::new(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    security_headers(headers);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    if status == StatusCode::OK {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    }
    if gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(ETAG, etag);
    // Revalidate every time (a 304 costs one round trip): a new binary serves new files at
    // the same paths, and the console must never run stale code against a newer server.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    security_headers(headers);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// On every console response, whatever its status. No Set-Cookie, ever: the console keeps
/// its token in the tab's sessionStorage.
fn security_headers(headers: &mut HeaderMap) {
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

/// Whether the client takes gzip: named (or `*`) in Accept-Encoding with a q above zero.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoding(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            ACCEPT_ENCODING,
            HeaderValue::from_str(value).expect("ascii"),
        );
        headers
    }

    /// CRC-32 (IEEE), bit by bit: slow, and only for these few files.
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn gzip_is_sent_only_when_accepted() {
        assert!(accepts_gzip(&encoding("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&encoding("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&encoding("*")));
        assert!(!accepts_gzip(&encoding("gzip;q=0")));
        assert!(!accepts_gzip(&encoding("br, deflate")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn every_gzip_copy_is_its_file_compressed() {
        // The build writes a .gz beside each file; a stale one would serve old code to
        // browsers that accept gzip and new code to the others.
        for asset in &ASSETS {
            assert!(
                asset.gzip.starts_with(&[0x1f, 0x8b]),
                "{} is not gzip",
                asset.path
            );
            // gzip's trailer: the CRC-32 of the input, then its length modulo 2^32.
            let trailer = &asset.gzip[asset.gzip.len() - 8..];
            let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            assert_eq!(
                (word(&trailer[..4]), word(&trailer[4..]) as usize),
                (crc32(asset.plain), asset.plain.len()),
                "{}: the .gz is of another version of the file",
                asset.path
            );
        }
    }
}
