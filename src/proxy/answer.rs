//! How an upstream answer goes back to the host: streamed as it arrives, except when it is
//! already whole.
//!
//! The answer to a POST is nearly always one JSON-RPC response: a JSON body, or an SSE
//! stream that carries the response and then ends (a server SHOULD close the stream once the
//! response is sent). Passing such an answer through frame by frame costs the host one
//! write per frame, the chunked terminator included. So for a POST:
//!
//! 1. the first bytes are awaited up to [`FIRST_BYTES_WAIT`]; frames already received
//!    behind them are taken too, up to [`MAX_WHOLE`];
//! 2. once an SSE stream has delivered the response to this request's `id`, its end is
//!    awaited up to [`END_WAIT`];
//! 3. a body that ended goes back whole, with its length, in one write. Anything else (a
//!    progress notification first, a stream kept open, a large body) streams: the frames
//!    taken so far, then the rest as it comes.
//!
//! Other methods (the GET stream, DELETE) stream from the start.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::headers;
use super::upstream::UpstreamBody;
use crate::sse;

/// How long the answer's head waits for its first body bytes.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(20);

/// How long an SSE answer that carried its response may take to end.
const END_WAIT: Duration = Duration::from_millis(5);

/// The most that is held back to be sent whole.
const MAX_WHOLE: usize = 256 * 1024;

type Chunk = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;

/// Pass the upstream answer to the host; `id` is the JSON-RPC id of the host's request.
pub async fn pass_back(resp: http::Response<UpstreamBody>, method: &Method, id: Option<&Value>) -> axum::response::Response {
    let (parts, body) = resp.into_parts();
    let body = match *method {
        Method::POST => gather(body, &parts.headers, id).await,
        _ => Body::new(body),
    };
    let mut out = axum::response::Response::new(body);
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers::to_host(&parts.headers);
    out
}

/// What has arrived of a POST answer, and whether it holds the response.
struct Gathered {
    frames: Vec<Bytes>,
    len: usize,
    sse: Option<sse::Parser>,
    answered: bool,
}

impl Gathered {
    fn push(&mut self, data: Bytes, id: Option<&Value>) {
        if let Some(parser) = self.sse.as_mut().filter(|_| !self.answered) {
            self.answered = parser.feed(&data).iter().any(|e| responds_to(&e.data, id));
        }
        self.len += data.len();
        self.frames.push(data);
    }

    /// How long to wait for the next frame before streaming; `None`: only if already here.
    fn patience(&self) -> Option<Duration> {
        if self.frames.is_empty() {
            Some(FIRST_BYTES_WAIT)
        } else if self.answered {
            Some(END_WAIT)
        } else {
            None
        }
    }

    fn whole(mut self) -> Body {
        match self.frames.len() {
            0 => Body::empty(),
            1 => Body::from(self.frames.pop().unwrap_or_default()),
            _ => {
                let mut all = BytesMut::with_capacity(self.len);
                self.frames.iter().for_each(|f| all.extend_from_slice(f));
                Body::from(all.freeze())
            }
        }
    }
}

async fn gather(mut body: UpstreamBody, headers: &HeaderMap, id: Option<&Value>) -> Body {
    let sse = headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("text/event-stream"));
    let mut got = Gathered { frames: Vec::new(), len: 0, sse: sse.then(sse::Parser::default), answered: false };
    let held: Option<Chunk> = loop {
        // Most answers are already here: no timer unless one must wait.
        let next = match (body.frame().now_or_never(), got.patience()) {
            (Some(next), _) => Some(next),
            (None, Some(wait)) => tokio::time::timeout(wait, body.frame()).await.ok(),
            (None, None) => None,
        };
        match next {
            None => break None,
            Some(None) => return got.whole(),
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => got.push(data, id),
                Err(trailers) => break Some(Ok(trailers)),
            },
            Some(Some(Err(e))) => break Some(Err(e)),
        }
        if got.len > MAX_WHOLE {
            break None;
        }
    };
    let taken = got.frames.into_iter().map(|b| Ok(Frame::data(b))).chain(held);
    Body::new(StreamBody::new(futures_util::stream::iter(taken).chain(BodyStream::new(body))))
}

/// Whether an SSE event's data is the JSON-RPC response (result or error) to request `id`.
fn responds_to(data: &str, id: Option<&Value>) -> bool {
    #[derive(serde::Deserialize)]
    struct Reply {
        id: Option<Value>,
        result: Option<IgnoredAny>,
        error: Option<IgnoredAny>,
    }
    let Some(id) = id.filter(|_| data.trim_start().starts_with('{')) else { return false };
    match serde_json::from_str::<Reply>(data) {
        Ok(r) => r.id.as_ref() == Some(id) && (r.result.is_some() || r.error.is_some()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;
    use serde_json::json;
    use std::time::Instant;

    const RESPONSE: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
    const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";

    /// An upstream body: each chunk after its delay, then the end (or no end: `open`).
    fn upstream(chunks: &[(u64, &'static str)], open: bool) -> UpstreamBody {
        let chunks: Vec<_> = chunks.to_vec();
        let frames = futures_util::stream::iter(chunks).then(|(ms, text)| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(text.as_bytes())))
        });
        let tail = futures_util::stream::iter(open.then(|| ())).then(|()| std::future::pending());
        BodyExt::boxed(StreamBody::new(frames.chain(tail)))
    }

    fn sse() -> HeaderMap {
        HeaderMap::from_iter([(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/event-stream"))])
    }

    async fn read_all(body: Body) -> String {
        String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn a_whole_answer_goes_back_with_its_length() {
        let body = gather(upstream(&[(0, RESPONSE), (1, "")], false), &sse(), Some(&json!(7))).await;
        assert_eq!(body.size_hint().exact(), Some(RESPONSE.len() as u64));
        assert_eq!(read_all(body).await, RESPONSE);
    }

    #[tokio::test]
    async fn progress_first_streams_at_once() {
        let started = Instant::now();
        let body = gather(upstream(&[(0, PROGRESS), (300, RESPONSE)], false), &sse(), Some(&json!(7))).await;
        assert!(started.elapsed() < Duration::from_millis(150), "the head went out before the response: {:?}", started.elapsed());
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(read_all(body).await, format!("{PROGRESS}{RESPONSE}"));
    }

    #[tokio::test]
    async fn a_stream_kept_open_after_its_response_streams() {
        let started = Instant::now();
        let mut body = gather(upstream(&[(0, RESPONSE)], true), &sse(), Some(&json!(7))).await;
        assert!(started.elapsed() < FIRST_BYTES_WAIT + END_WAIT + Duration::from_millis(100));
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, RESPONSE.as_bytes());
    }

    #[tokio::test]
    async fn a_slow_first_byte_streams_after_the_wait() {
        let started = Instant::now();
        let body = gather(upstream(&[(200, RESPONSE)], false), &sse(), Some(&json!(7))).await;
        let waited = started.elapsed();
        assert!(waited >= FIRST_BYTES_WAIT && waited < Duration::from_millis(150), "{waited:?}");
        assert_eq!(read_all(body).await, RESPONSE);
    }

    #[test]
    fn knows_its_response() {
        let id = json!(7);
        assert!(responds_to(r#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#, Some(&id)));
        assert!(responds_to(r#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"x"}}"#, Some(&id)));
        assert!(!responds_to(r#"{"jsonrpc":"2.0","id":8,"result":{}}"#, Some(&id)));
        assert!(!responds_to(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#, Some(&id)));
        assert!(!responds_to(r#"{"jsonrpc":"2.0","id":7,"method":"sampling/createMessage"}"#, Some(&id)));
        assert!(!responds_to(r#"[{"jsonrpc":"2.0","id":7,"result":{}}]"#, Some(&id)));
        assert!(!responds_to(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#, None));
        assert!(responds_to(r#" {"jsonrpc":"2.0","id":"a","result":{}}"#, Some(&json!("a"))));
    }
}
