//! An OTLP/HTTP trace receiver for tests and benches (feature `receiver`): accepts
//! `POST /v1/traces` (protobuf) and keeps the bodies; [`Receiver::spans`] decodes them with
//! `opentelemetry-proto` when asked (so a benchmark does not pay for decoding while it measures).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's SpanKind: 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    pub attributes: BTreeMap<String, String>,
}

/// A running receiver; its spans grow as exports arrive.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// The URL to export to (`http://127.0.0.1:PORT/v1/traces`).
    pub traces_url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Receiver {
    /// Binds a loopback port and serves until the process ends.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let traces_url = format!("http://{}/v1/traces", listener.local_addr()?);
        let receiver = Self {
            traces_url,
            bodies: Arc::default(),
        };
        let serving = receiver.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let receiver = serving.clone();
                tokio::spawn(async move { receiver.connection(stream).await });
            }
        });
        Ok(receiver)
    }

    /// Every span received so far (an export that does not decode is skipped).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        let bodies = self.bodies.lock().map(|b| b.clone()).unwrap_or_default();
        bodies
            .iter()
            .filter_map(|body| ExportTraceServiceRequest::decode(body.as_slice()).ok())
            .flat_map(flatten)
            .collect()
    }

    /// Export requests received so far.
    pub fn requests(&self) -> usize {
        self.bodies.lock().map(|b| b.len()).unwrap_or_default()
    }

    /// A minimal HTTP/1.1 server: keep-alive, `Content-Length` bodies (what the exporter sends).
    async fn connection(&self, mut stream: tokio::net::TcpStream) {
        let mut buf = Vec::new();
        loop {
            let Some(head_end) = find(&buf, b"\r\n\r\n") else {
                if !read_more(&mut stream, &mut buf).await {
                    return;
                }
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let body_start = head_end + 4;
            while buf.len() < body_start + length {
                if !read_more(&mut stream, &mut buf).await {
                    return;
                }
            }
            let ok = head.starts_with("post /v1/traces ");
            if ok {
                if let Ok(mut bodies) = self.bodies.lock() {
                    bodies.push(buf[body_start..body_start + length].to_vec());
                }
            }
            buf.drain(..body_start + length);
            let body = ExportTraceServiceResponse::default().encode_to_vec();
            let status = if ok { "200 OK" } else { "400 Bad Request" };
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            if stream.write_all(answer.as_bytes()).await.is_err()
                || stream.write_all(&body).await.is_err()
            {
                return;
            }
        }
    }
}

fn flatten(request: ExportTraceServiceRequest) -> Vec<ReceivedSpan> {
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(|v| text(v.value.as_ref()))
            .unwrap_or_default();
        for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
            received.push(ReceivedSpan {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                name: span.name,
                kind: span.kind,
                attributes: span
                    .attributes
                    .into_iter()
                    .map(|kv| {
                        let value = text(kv.value.as_ref().and_then(|v| v.value.as_ref()));
                        (kv.key, value)
                    })
                    .collect(),
            });
        }
    }
    received
}

async fn read_more(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
