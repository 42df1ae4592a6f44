//! How an upstream answer goes back to the host: streamed as it arrives, in as few writes as
//! what has already arrived allows.
//!
//! For a POST (whose answer is nearly always one JSON-RPC response, as JSON or as a short SSE
//! stream):
//!
//! 1. the head waits up to [`FIRST_BYTES_WAIT`] for the first body bytes, so both go out in
//!    one write;
//! 2. frames already received behind them are taken too (never waited for), up to
//!    [`MAX_WHOLE`];
//! 3. a body that has ended by then goes back whole, with its length; any other streams on:
//!    the frames taken, then the rest as it comes.
//!
//! The end of an SSE answer is not waited for, even once its response has passed: hosts (the
//! bridge, the SDK clients) act on each event as it arrives, and waiting for the end cost them
//! 20–40 µs a call on a 2-core machine (docs/BENCHMARKS.md). Other methods (the GET stream,
//! DELETE) stream from the start.

use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use http::Method;
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Frame;

use super::headers;
use super::upstream::UpstreamBody;

/// How long the answer's head waits for its first body bytes.
const FIRST_BYTES_WAIT: Duration = Duration::from_millis(20);

/// The most that is held back to be sent whole.
const MAX_WHOLE: usize = 256 * 1024;

type Chunk = Result<Frame<Bytes>, Box<dyn std::error::Error + Send + Sync>>;

/// Pass the upstream answer to the host.
pub async fn pass_back(resp: http::Response<UpstreamBody>, method: &Method) -> axum::response::Response {
    let (parts, body) = resp.into_parts();
    let body = match *method {
        Method::POST => gather(body).await,
        _ => Body::new(body),
    };
    let mut out = axum::response::Response::new(body);
    *out.status_mut() = parts.status;
    *out.headers_mut() = headers::to_host(&parts.headers);
    out
}

/// The answer's first frame (waited for) and those already behind it (not waited for).
async fn gather(mut body: UpstreamBody) -> Body {
    let mut frames: Vec<Bytes> = Vec::new();
    let mut len = 0;
    let held: Option<Chunk> = loop {
        let next = match body.frame().now_or_never() {
            Some(next) => Some(next),
            None if frames.is_empty() => tokio::time::timeout(FIRST_BYTES_WAIT, body.frame()).await.ok(),
            None => None,
        };
        match next {
            None => break None,
            Some(None) => return whole(frames, len),
            Some(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) => {
                    len += data.len();
                    frames.push(data);
                }
                Err(trailers) => break Some(Ok(trailers)),
            },
            Some(Some(Err(e))) => break Some(Err(e)),
        }
        if len > MAX_WHOLE {
            break None;
        }
    };
    let taken = frames.into_iter().map(|b| Ok(Frame::data(b))).chain(held);
    Body::new(StreamBody::new(futures_util::stream::iter(taken).chain(BodyStream::new(body))))
}

/// A body that has ended, in one piece (its length known to the host).
fn whole(mut frames: Vec<Bytes>, len: usize) -> Body {
    match frames.len() {
        0 => Body::empty(),
        1 => Body::from(frames.pop().unwrap_or_default()),
        _ => {
            let mut all = BytesMut::with_capacity(len);
            frames.iter().for_each(|f| all.extend_from_slice(f));
            Body::from(all.freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;
    use std::time::Instant;

    const RESPONSE: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{}}\n\n";
    const PROGRESS: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n";

    /// An upstream body: each chunk after its delay (0: already there), then the end, or
    /// nothing more (`open`).
    fn upstream(chunks: &[(u64, &'static str)], open: bool) -> UpstreamBody {
        let chunks: Vec<_> = chunks.to_vec();
        let frames = futures_util::stream::iter(chunks).then(|(ms, text)| async move {
            if ms > 0 {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Frame::data(Bytes::from_static(text.as_bytes())))
        });
        let tail = futures_util::stream::iter(open.then_some(())).then(|()| std::future::pending());
        BodyExt::boxed(StreamBody::new(frames.chain(tail)))
    }

    async fn read_all(body: Body) -> String {
        String::from_utf8(axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn an_answer_already_whole_goes_back_with_its_length() {
        let body = gather(upstream(&[(0, RESPONSE), (0, "")], false)).await;
        assert_eq!(body.size_hint().exact(), Some(RESPONSE.len() as u64));
        assert_eq!(read_all(body).await, RESPONSE);
    }

    #[tokio::test]
    async fn progress_first_streams_at_once() {
        let started = Instant::now();
        let body = gather(upstream(&[(0, PROGRESS), (300, RESPONSE)], false)).await;
        assert!(started.elapsed() < Duration::from_millis(150), "the head went out before the response: {:?}", started.elapsed());
        assert_eq!(body.size_hint().exact(), None);
        assert_eq!(read_all(body).await, format!("{PROGRESS}{RESPONSE}"));
    }

    #[tokio::test]
    async fn the_end_of_a_stream_is_not_waited_for() {
        let started = Instant::now();
        let mut body = gather(upstream(&[(0, RESPONSE)], true)).await;
        assert!(started.elapsed() < Duration::from_millis(15), "{:?}", started.elapsed());
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, RESPONSE.as_bytes());
    }

    #[tokio::test]
    async fn a_slow_first_byte_streams_after_the_wait() {
        let started = Instant::now();
        let body = gather(upstream(&[(200, RESPONSE)], false)).await;
        let waited = started.elapsed();
        assert!(waited >= FIRST_BYTES_WAIT && waited < Duration::from_millis(150), "{waited:?}");
        assert_eq!(read_all(body).await, RESPONSE);
    }
}
