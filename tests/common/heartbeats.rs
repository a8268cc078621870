//! A server stream read past its heartbeats, whichever stream it is: the next message that
//! says something, or the status the stream ended with.
use std::time::Duration;

use tokio_stream::StreamExt;
use tonic::{Status, Streaming};

/// The next message `is_heartbeat` does not skip, within 10 s, or the stream's end status.
pub async fn next_past_heartbeats<T>(
    stream: &mut Streaming<T>,
    is_heartbeat: impl Fn(&T) -> bool,
) -> Result<T, Status> {
    loop {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("a message within 10 s")
            .expect("the stream ends with a status, not silently");
        match item {
            Ok(item) if is_heartbeat(&item) => continue,
            other => return other,
        }
    }
}
