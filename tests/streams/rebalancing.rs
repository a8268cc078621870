//! `--max-connection-age-secs`: the server sends GOAWAY to old connections, so a long-lived
//! gRPC client reconnects (and, behind a Service, may land on a new replica) without a failed call.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Backend, Spawn, TestDatabase};
use api_tokens::operations::OperationsSettings;
use hyper_util::rt::TokioIo;
use tonic::transport::{Endpoint, Uri};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tower::service_fn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_connection_gets_goaway_and_the_client_reconnects_without_a_failed_call() {
    let database = TestDatabase::create(Backend::Sqlite).await;
    let app = Spawn::on(database)
        .operations(OperationsSettings {
            max_connection_age: Some(Duration::from_secs(1)),
            ..OperationsSettings::default()
        })
        .start()
        .await;

    // One client, one channel, as a long-lived service would hold it; count its TCP connections.
    let opened = Arc::new(AtomicUsize::new(0));
    let counter = opened.clone();
    let addr = app.addr;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_with_connector(service_fn(move |_: Uri| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let stream = tokio::net::TcpStream::connect(addr).await?;
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .expect("connect");
    let mut health = HealthClient::new(channel);

    // Bounded: at most 200 calls 50 ms apart (10 s), far past the 1 s age.
    let mut calls = 0;
    while opened.load(Ordering::SeqCst) < 2 && calls < 200 {
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .expect("every call is answered across the GOAWAY");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        opened.load(Ordering::SeqCst) >= 2,
        "the client opened a new connection after the server's GOAWAY ({calls} calls)"
    );
    health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the new connection serves");
    app.stop().await;
}
