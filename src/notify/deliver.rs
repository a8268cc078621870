//! Delivery of one event: an HTTP POST of its JSON, signed with HMAC-SHA256 over the body in
//! `X-Api-Tokens-Signature-256: sha256=<hex>` (as GitHub's `X-Hub-Signature-256`), repeated
//! with exponential backoff until the receiver answers 2xx.
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use ring::hmac;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-api-tokens-signature-256";
/// The header naming the event, the same on every retry of it: receivers drop duplicates by it.
pub const DELIVERY_HEADER: &str = "x-api-tokens-delivery";
/// The header naming the stream the event came from (`token_events` or `applications`).
pub const EVENT_HEADER: &str = "x-api-tokens-event";

/// How long one attempt may take, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how events are posted.
#[derive(Clone)]
pub struct Webhook {
    pub url: http::Uri,
    key: hmac::Key,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `sha256=<hex>` of the HMAC-SHA256 of `body` under `key`: what the header carries.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    signed(&hmac::Key::new(hmac::HMAC_SHA256, key), body)
}

fn signed(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl Webhook {
    /// A webhook posting to `url` (http://), signing with `key`.
    pub fn new(url: &str, key: &[u8]) -> anyhow::Result<Webhook> {
        let url: http::Uri = url.parse().context("--url is not a URL")?;
        if url.scheme_str() != Some("http") || url.host().is_none() {
            anyhow::bail!(
                "--url must be an http:// URL with a host (put a TLS-terminating proxy in front of an https:// receiver)"
            );
        }
        if key.is_empty() {
            anyhow::bail!("the webhook secret is empty");
        }
        Ok(Webhook {
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
        })
    }

    /// Posts `body` until the receiver takes it (2xx), waiting longer after each failure.
    /// Never gives up: skipping an event would lose it. Ends early only if `stop` resolves.
    pub async fn deliver(
        &self,
        stream: &str,
        delivery: &str,
        body: &[u8],
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<bool> {
        let signature = signed(&self.key, body);
        let mut backoff = self.first_backoff;
        loop {
            let outcome = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                self.post(stream, delivery, &signature, body),
            )
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within {ATTEMPT_TIMEOUT:?}")));
            match outcome {
                Ok(status) if status.is_success() => return Ok(true),
                Ok(status) => {
                    tracing::warn!(%status, delivery, ?backoff, "the receiver refused the event; retrying")
                }
                Err(e) => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        delivery,
                        ?backoff,
                        "delivery failed; retrying"
                    )
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.wait_for(|s| *s) => return Ok(false),
            }
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn post(
        &self,
        stream: &str,
        delivery: &str,
        signature: &str,
        body: &[u8],
    ) -> anyhow::Result<http::StatusCode> {
        let host = self.url.host().unwrap_or_default();
        let port = self.url.port_u16().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((host, port))
            .await
            .with_context(|| format!("cannot connect to {host}:{port}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        let connection = tokio::spawn(connection);
        let authority = self
            .url
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = self
            .url
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let request = http::Request::post(path)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("api-tokens-notify/", env!("CARGO_PKG_VERSION")),
            )
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, delivery)
            .header(EVENT_HEADER, stream)
            .body(Full::new(Bytes::copy_from_slice(body)))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        // Read the answer to its end so the connection closes cleanly; its content is not used.
        let _ = response.into_body().collect().await;
        connection.abort();
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_githubs_shape() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
