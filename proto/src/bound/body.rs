//! A gRPC body that checks every message with a [`Check`] before passing it on to be decoded.
//!
//! Why a body and not a codec: the generated services build their codec with `Default`, so a
//! codec cannot carry a per-server cap. The body sits between the connection and tonic's
//! decoder: it collects each length-prefixed gRPC frame (5-byte header, then the message), runs
//! the check on the message bytes and hands the whole frame on only if it passes. A refused
//! frame ends the stream with the check's [`Status`]; the handler sees it as its stream's error.
//! A frame over `max_message` bytes or a compressed one is passed through unchecked: tonic
//! refuses it itself (size limit, no compression accepted) without decoding it.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

/// The check run on each message's bytes.
pub type Check = Arc<dyn Fn(&[u8]) -> Result<(), Status> + Send + Sync>;

/// The gRPC message header: a compression flag and a big-endian u32 length.
const HEADER: usize = 5;

/// Wraps a request or response body; see the module docs.
pub struct CheckedBody<B> {
    inner: B,
    check: Check,
    max_message: usize,
    buf: BytesMut,
    /// Bytes of an unchecked (oversized or compressed) message still to pass through.
    passthrough: usize,
    done: bool,
}

impl<B> std::fmt::Debug for CheckedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedBody")
            .field("max_message", &self.max_message)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl<B> CheckedBody<B> {
    /// Checks every message of `inner` with `check`; `max_message` is the server's decoding
    /// limit (larger messages are left to tonic to refuse, and never buffered here).
    pub fn new(inner: B, check: Check, max_message: usize) -> Self {
        Self {
            inner,
            check,
            max_message,
            buf: BytesMut::new(),
            passthrough: 0,
            done: false,
        }
    }

    /// The next complete, checked frame in `buf`, or bytes to pass through.
    fn next_ready(&mut self) -> Option<Result<Bytes, Status>> {
        if self.passthrough > 0 && !self.buf.is_empty() {
            let n = self.passthrough.min(self.buf.len());
            self.passthrough -= n;
            return Some(Ok(self.buf.split_to(n).freeze()));
        }
        if self.buf.len() < HEADER {
            return None;
        }
        let compressed = self.buf[0] != 0;
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if compressed || len > self.max_message {
            self.passthrough = HEADER + len;
            return self.next_ready();
        }
        if self.buf.len() < HEADER + len {
            self.buf.reserve(HEADER + len - self.buf.len());
            return None;
        }
        if let Err(status) = (self.check)(&self.buf[HEADER..HEADER + len]) {
            return Some(Err(status));
        }
        Some(Ok(self.buf.split_to(HEADER + len).freeze()))
    }
}

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match this.next_ready() {
                Some(Ok(b)) => return Poll::Ready(Some(Ok(Frame::data(b)))),
                Some(Err(status)) => {
                    this.done = true;
                    this.buf.clear();
                    return Poll::Ready(Some(Err(Box::new(status))));
                }
                None => {}
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut data) => {
                        if this.passthrough > 0 && this.buf.is_empty() {
                            let n = this.passthrough.min(data.len());
                            this.passthrough -= n;
                            let head = data.split_to(n);
                            this.buf.extend_from_slice(&data);
                            return Poll::Ready(Some(Ok(Frame::data(head))));
                        }
                        this.buf.extend_from_slice(&data);
                    }
                    Err(other) => return Poll::Ready(Some(Ok(other))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => {
                    this.done = true;
                    // A truncated message: hand the rest on and let tonic say so.
                    if !this.buf.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || (self.buf.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A tower service whose bodies on one [`Side`] `D` are [`CheckedBody`]s: the requests of a server
/// ([`CheckedService`]) or the responses a client receives ([`CheckedClient`]). One type for both,
/// so that both carry the check and the size limit the same way.
pub struct Checked<S, D> {
    inner: S,
    check: Check,
    max_message: usize,
    side: PhantomData<fn() -> D>,
}

/// Which bodies a [`Checked`] service checks.
pub trait Side {
    /// The name the service goes by in `Debug` output.
    const NAME: &'static str;
}

/// The side of [`CheckedService`]: every request body it receives is checked.
#[derive(Debug, Clone, Copy)]
pub struct Requests;

impl Side for Requests {
    const NAME: &'static str = "CheckedService";
}

/// The side of [`CheckedClient`]: every response body it receives is checked.
#[derive(Debug, Clone, Copy)]
pub struct Responses;

impl Side for Responses {
    const NAME: &'static str = "CheckedClient";
}

/// A gRPC service whose every request body is a [`CheckedBody`] (wraps a generated server).
pub type CheckedService<S> = Checked<S, Requests>;

/// A gRPC client transport whose every response body is a [`CheckedBody`] (wraps a channel).
pub type CheckedClient<S> = Checked<S, Responses>;

impl<S: Clone, D> Clone for Checked<S, D> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            check: self.check.clone(),
            max_message: self.max_message,
            side: PhantomData,
        }
    }
}

impl<S, D: Side> std::fmt::Debug for Checked<S, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(D::NAME)
            .field("max_message", &self.max_message)
            .finish_non_exhaustive()
    }
}

impl<S, D> Checked<S, D> {
    /// Checks every message `inner` receives on this side with `check`; `max_message` as in
    /// [`CheckedBody::new`].
    pub fn new(inner: S, check: Check, max_message: usize) -> Self {
        Self {
            inner,
            check,
            max_message,
            side: PhantomData,
        }
    }

    /// `body`, checked.
    fn checked<B>(&self, body: B) -> CheckedBody<B> {
        CheckedBody::new(body, self.check.clone(), self.max_message)
    }
}

impl<S, B> tower::Service<http::Request<B>> for CheckedService<S>
where
    S: tower::Service<http::Request<CheckedBody<B>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let req = req.map(|b| self.checked(b));
        self.inner.call(req)
    }
}

impl<S: tonic::server::NamedService> tonic::server::NamedService for CheckedService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, B, R> tower::Service<http::Request<B>> for CheckedClient<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<CheckedBody<R>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let (check, max) = (self.check.clone(), self.max_message);
        let fut = self.inner.call(req);
        Box::pin(async move {
            fut.await
                .map(|r| r.map(|b| CheckedBody::new(b, check, max)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn frame(msg: &[u8]) -> Vec<u8> {
        let mut v = vec![0];
        v.extend_from_slice(&u32::try_from(msg.len()).expect("ok").to_be_bytes());
        v.extend_from_slice(msg);
        v
    }

    fn body(
        chunks: Vec<Vec<u8>>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        StreamBody::new(futures::stream::iter(
            chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c)))),
        ))
    }

    /// The next frame of `b`, which must be data.
    async fn next_data<B>(b: &mut B) -> Bytes
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: std::fmt::Debug,
    {
        b.frame()
            .await
            .expect("a frame")
            .expect("not an error")
            .into_data()
            .expect("data")
    }

    fn refuse_x() -> Check {
        Arc::new(|m: &[u8]| {
            if m.contains(&b'x') {
                Err(Status::resource_exhausted("x"))
            } else {
                Ok(())
            }
        })
    }

    #[tokio::test]
    async fn frames_split_anywhere_pass_whole_and_a_refused_one_ends_the_stream() {
        let mut wire = frame(b"hello");
        wire.extend(frame(b"world"));
        wire.extend(frame(b"xx"));
        wire.extend(frame(b"never"));
        // One byte per chunk: the worst split.
        let chunks = wire.iter().map(|b| vec![*b]).collect();
        let mut b = CheckedBody::new(body(chunks), refuse_x(), 1024);
        let f1 = next_data(&mut b).await;
        assert_eq!(&f1[..], &frame(b"hello")[..]);
        let f2 = next_data(&mut b).await;
        assert_eq!(&f2[..], &frame(b"world")[..]);
        let e = b.frame().await.expect("ok").expect_err("refused");
        let s = e.downcast::<Status>().expect("a Status");
        assert_eq!(s.code(), tonic::Code::ResourceExhausted);
        assert!(b.frame().await.is_none(), "nothing after a refusal");
    }

    #[tokio::test]
    async fn a_client_refuses_an_assignment_over_the_cap_before_decoding_it() {
        use prost::Message as _;

        use crate::v1::{self, aggregator_message};
        let assignment = v1::AggregatorMessage {
            msg: Some(aggregator_message::Msg::Assignment(v1::Assignment {
                targets: vec![v1::Target::default(); 6],
                ..v1::Assignment::default()
            })),
        }
        .encode_to_vec();
        let wire = Bytes::from(frame(&assignment));
        let peer = tower::service_fn(move |_: http::Request<tonic::body::Body>| {
            let wire = wire.clone();
            async move {
                http::Response::builder()
                    .header("content-type", "application/grpc")
                    .body(http_body_util::Full::new(wire))
            }
        });
        let check: Check = Arc::new(|m: &[u8]| {
            crate::bound::check_aggregator_message(m, 5).map_err(|e| e.to_status())
        });
        let mut grpc = tonic::client::Grpc::new(CheckedClient::new(peer, check, 1 << 20));
        grpc.ready().await.expect("ready");
        let mut replies = grpc
            .server_streaming(
                tonic::Request::new(v1::Ack::default()),
                http::uri::PathAndQuery::from_static("/echomesh.v1.AgentService/Session"),
                tonic_prost::ProstCodec::<v1::Ack, v1::AggregatorMessage>::default(),
            )
            .await
            .expect("a response")
            .into_inner();
        let e = replies.message().await.expect_err("refused");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            e.message(),
            "refused before decoding: Assignment.targets carries more than 5 entries (more than \
             the largest assignment this peer hands out)"
        );
    }

    #[tokio::test]
    async fn an_oversized_message_passes_through_unchecked_and_unbuffered() {
        let mut wire = frame(b"xxxxxxxxxxxxxxxx");
        wire.extend(frame(b"ok"));
        let mut b = CheckedBody::new(body(vec![wire.clone()]), refuse_x(), 8);
        let mut got = Vec::new();
        while let Some(f) = b.frame().await {
            got.extend_from_slice(&f.expect("ok").into_data().expect("ok"));
        }
        assert_eq!(got, wire);
    }

    #[tokio::test]
    async fn a_truncated_message_is_handed_on_for_tonic_to_refuse() {
        let wire = frame(b"hello");
        let mut b = CheckedBody::new(body(vec![wire[..7].to_vec()]), refuse_x(), 1024);
        let f = next_data(&mut b).await;
        assert_eq!(&f[..], &wire[..7]);
        assert!(b.frame().await.is_none());
    }
}
