//! The reference notifier, end to end: the real binary follows a running server's streams and
//! posts each event to a local HTTP receiver, signed (checked here with HMAC-SHA256 on its
//! own), retrying after a 500 with the same delivery id, and resuming after a restart from its
//! saved cursors with nothing lost and nothing repeated but the event in flight.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::process::BIN;
use crate::common::{Backend, TestApp, spawn_app};
use api_tokens::grpc::pb;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

const KEY: &str = "a webhook key the receiver shares";

/// One request the receiver got.
#[derive(Debug)]
struct Received {
    signature: String,
    delivery: String,
    stream: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The event's type and token, which the tests compare.
    fn what(&self) -> (String, String) {
        let json = self.json();
        (
            json["type"].as_str().unwrap_or_default().to_owned(),
            json["token_id"].as_str().unwrap_or_default().to_owned(),
        )
    }
}

/// A receiver on 127.0.0.1:0 that answers 500 to its first `fail_first` requests of the
/// token-events stream, 200 to everything else.
async fn receiver(fail_first: usize) -> (SocketAddr, mpsc::UnboundedReceiver<Received>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    let seen = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let (tx, seen) = (tx.clone(), seen.clone());
            let service =
                hyper::service::service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let (tx, seen) = (tx.clone(), seen.clone());
                    async move {
                        let header = |name: &str| {
                            request
                                .headers()
                                .get(name)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (signature, delivery, stream) = (
                            header("x-api-tokens-signature-256"),
                            header("x-api-tokens-delivery"),
                            header("x-api-tokens-event"),
                        );
                        let body = request
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes().to_vec())
                            .unwrap_or_default();
                        let n = if stream == "token_events" {
                            seen.fetch_add(1, Ordering::SeqCst)
                        } else {
                            usize::MAX
                        };
                        let _ = tx.send(Received {
                            signature,
                            delivery,
                            stream,
                            body,
                        });
                        let status = if n < fail_first { 500 } else { 200 };
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::new()))
                                .expect("response"),
                        )
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

fn start_notifier(app: &TestApp, dir: &Path, url: &str) -> Child {
    Command::new(BIN)
        .args(["notify", "--server", &format!("http://{}", app.addr)])
        .args(["--url", url])
        .arg("--state-file")
        .arg(dir.join("notify.state"))
        .args(["--max-backoff-secs", "1"])
        .env("API_TOKENS_TOKEN", &app.admin.secret)
        .env("API_TOKENS_WEBHOOK_SECRET", KEY)
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("notify.log"))
                .expect("log"),
        )
        .spawn()
        .expect("start notifier")
}

fn stop_notifier(mut notifier: Child) {
    Command::new("kill")
        .args(["-TERM", &notifier.id().to_string()])
        .status()
        .expect("kill");
    assert!(
        notifier.wait().expect("wait").success(),
        "the notifier exits 0 on SIGTERM"
    );
}

/// Waits until the notifier follows both streams: both cursors are saved.
async fn following(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("notify.state"))
            && let Ok(state) = serde_json::from_str::<Value>(&text)
            && state["token_events"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
            && state["applications"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
        {
            return;
        }
        let log = std::fs::read_to_string(dir.join("notify.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "the notifier did not start following: {log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next request of `stream`, with a generous deadline (others are dropped).
async fn next_of(
    received: &mut mpsc::UnboundedReceiver<Received>,
    stream: &str,
    dir: &Path,
) -> Received {
    loop {
        let Ok(got) = tokio::time::timeout(Duration::from_secs(20), received.recv()).await else {
            let log = std::fs::read_to_string(dir.join("notify.log")).unwrap_or_default();
            panic!("no {stream} request within 20 s; the notifier's log:\n{log}");
        };
        let got = got.expect("receiver open");
        if got.stream == stream {
            return got;
        }
    }
}

/// Checks the signature with HMAC-SHA256 on its own, not with the notifier's code.
fn assert_signed(got: &Received) {
    let hex = got.signature.strip_prefix("sha256=").expect("sha256=<hex>");
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes());
    ring::hmac::verify(&key, &got.body, &tag).expect("the signature matches the body");
    let wrong = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"another key");
    assert!(ring::hmac::verify(&wrong, &got.body, &tag).is_err());
}

async fn the_notifier_posts_signed_events_retries_and_resumes(backend: Backend) {
    let app = spawn_app(backend).await;
    let dir = tempfile::tempdir().expect("dir");
    let (addr, mut received) = receiver(1).await;
    let url = format!("http://{addr}/hooks/api-tokens");
    let notifier = start_notifier(&app, dir.path(), &url);
    following(dir.path()).await;

    let (first, first_secret) = app.admin_user_token(pb::AppState::Pending).await;
    // The receiver's first answer is a 500: the same event comes again, under the same id.
    let refused = next_of(&mut received, "token_events", dir.path()).await;
    let retried = next_of(&mut received, "token_events", dir.path()).await;
    assert_eq!(refused.what(), ("CREATED".into(), first.id.clone()));
    assert_eq!(retried.delivery, refused.delivery);
    assert_eq!(retried.what(), refused.what());
    assert_signed(&retried);

    app.authorize(&first_secret, "nightly-export", pb::Privilege::ReadOnly)
        .await;
    let recorded = next_of(&mut received, "applications", dir.path()).await;
    assert_signed(&recorded);
    let json = recorded.json();
    assert_eq!(json["type"], "RECORDED");
    assert_eq!(json["name"], "nightly-export");
    assert_eq!(json["state"], "PENDING");

    stop_notifier(notifier);
    // While it is down: a retirement and a new token.
    app.tokens
        .clone()
        .retire_token(app.admin.req(pb::RetireTokenRequest {
            id: first.id.clone(),
            ..Default::default()
        }))
        .await
        .expect("retire");
    let (second, _) = app.admin_user_token(pb::AppState::Allow).await;
    let notifier = start_notifier(&app, dir.path(), &url);
    let mut after = Vec::new();
    while after.len() < 2 {
        let got = next_of(&mut received, "token_events", dir.path()).await;
        assert_signed(&got);
        // At least once: only the event in flight at the stop may come again.
        if got.delivery == retried.delivery {
            continue;
        }
        after.push(got.what());
    }
    assert_eq!(
        after,
        [
            ("RETIRED".to_owned(), first.id.clone()),
            ("CREATED".to_owned(), second.id.clone()),
        ],
        "resumed from the saved cursor: nothing lost, nothing earlier sent again"
    );
    stop_notifier(notifier);
    app.stop().await;
}

on_both_backends!(the_notifier_posts_signed_events_retries_and_resumes);
