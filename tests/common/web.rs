//! An HTTP/1.1 client as a browser talks to the console: plain GETs of its files, and
//! gRPC-Web calls (length-prefixed frames, trailers in a final frame), read frame by frame
//! so a server stream can be followed live.
use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use prost::Message;

/// One HTTP/1.1 request on a new connection.
pub async fn send(
    addr: SocketAddr,
    request: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, hyper::Error> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    sender.send_request(request).await
}

/// GET `path` with these extra headers; the response and its whole body.
pub async fn get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<Incoming>, Bytes) {
    request(addr, "GET", path, headers).await
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (Response<Incoming>, Bytes) {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::new())).expect("request");
    let mut response = send(addr, request).await.expect("HTTP/1.1 response");
    let body = read_all(response.body_mut()).await;
    (response, body)
}

async fn read_all(body: &mut Incoming) -> Bytes {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("body frame").into_data() {
            out.extend_from_slice(&data);
        }
    }
    out.into()
}

/// What a gRPC-Web response says: its messages and its status.
#[derive(Debug)]
pub struct WebReply {
    pub http_status: u16,
    pub content_type: String,
    pub messages: Vec<Bytes>,
    /// grpc-status from the trailer frame, or from the headers of a trailers-only answer.
    pub grpc_status: Option<i32>,
    pub grpc_message: String,
    /// The response's headers and the trailer frame's entries together, as gRPC metadata
    /// (a trailers-only answer has its status in the headers).
    pub metadata: hyper::HeaderMap,
}

/// Starts a gRPC-Web call over HTTP/1.1 with the console's headers.
pub async fn start_call(
    addr: SocketAddr,
    method: &str,
    message: &impl Message,
    credentials: &[(&str, &str)],
) -> Response<Incoming> {
    let encoded = message.encode_to_vec();
    let mut framed = Vec::with_capacity(encoded.len() + 5);
    framed.push(0);
    framed.extend_from_slice(&(encoded.len() as u32).to_be_bytes());
    framed.extend_from_slice(&encoded);
    let mut builder = Request::builder()
        .method("POST")
        .uri(format!("/{method}"))
        .header("host", addr.to_string())
        .header("content-type", "application/grpc-web+proto")
        .header("accept", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", format!("http://{addr}"));
    for (name, value) in credentials {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(framed.into())).expect("request");
    send(addr, request).await.expect("gRPC-Web response")
}

/// A whole unary gRPC-Web call.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    message: &impl Message,
    credentials: &[(&str, &str)],
) -> WebReply {
    let mut response = start_call(addr, method, message, credentials).await;
    let body = read_all(response.body_mut()).await;
    let mut reply = WebReply {
        http_status: response.status().as_u16(),
        content_type: header(&response, "content-type"),
        messages: Vec::new(),
        grpc_status: response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()?.parse().ok()),
        grpc_message: header(&response, "grpc-message"),
        metadata: response.headers().clone(),
    };
    let mut frames = Frames::default();
    frames.push(&body);
    while let Some(frame) = frames.next() {
        match frame {
            Frame::Message(bytes) => reply.messages.push(bytes),
            Frame::Trailers(trailers) => {
                for (name, value) in trailers {
                    match name.as_str() {
                        "grpc-status" => reply.grpc_status = value.parse().ok(),
                        "grpc-message" => reply.grpc_message = value.clone(),
                        _ => {}
                    }
                    if let (Ok(name), Ok(value)) = (
                        hyper::header::HeaderName::from_bytes(name.as_bytes()),
                        hyper::header::HeaderValue::from_str(&value),
                    ) {
                        reply.metadata.insert(name, value);
                    }
                }
            }
        }
    }
    reply
}

fn header(response: &Response<Incoming>, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// One gRPC-Web frame.
#[derive(Debug)]
pub enum Frame {
    Message(Bytes),
    Trailers(Vec<(String, String)>),
}

/// Splits a gRPC-Web body into frames as its chunks arrive.
#[derive(Debug, Default)]
pub struct Frames {
    buffer: Vec<u8>,
}

impl Frames {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    pub fn next(&mut self) -> Option<Frame> {
        if self.buffer.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buffer[1..5].try_into().expect("4 bytes")) as usize;
        if self.buffer.len() < 5 + len {
            return None;
        }
        let flag = self.buffer[0];
        let payload: Vec<u8> = self.buffer.drain(..5 + len).skip(5).collect();
        Some(if flag & 0x80 == 0 {
            Frame::Message(payload.into())
        } else {
            let text = String::from_utf8(payload).expect("trailers are text");
            Frame::Trailers(
                text.split("\r\n")
                    .filter_map(|line| line.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect(),
            )
        })
    }

    /// The next whole frame of a streaming body, waiting for more chunks as needed.
    pub async fn next_from(&mut self, body: &mut Incoming) -> Option<Frame> {
        loop {
            if let Some(frame) = self.next() {
                return Some(frame);
            }
            let chunk = body.frame().await?.expect("body frame");
            if let Ok(data) = chunk.into_data() {
                self.push(&data);
            }
        }
    }
}
