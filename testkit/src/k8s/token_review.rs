//! A fake TokenReview endpoint behind `tower-test`, answering with recorded API-server JSON.
//!
//! Why separate from [`super::mock_api`]: discovery only reads (that mock asserts GET), while a
//! review is a POST of its own; the aggregator can be given a second client for reviews, so each
//! mock asserts exactly the traffic its side may send. Answers are two recorded responses of a
//! real API server (`recorded/`): a token bound to a pod (its pod and node names substituted per
//! token) and a refused token. Every review is counted, so tests can see the cache working.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use parking_lot::Mutex;
use tower_test::mock;

type Body = UnsyncBoxBody<Bytes, Infallible>;

const AGENT: &str = include_str!("recorded/tokenreview-agent.json");
const REJECTED: &str = include_str!("recorded/tokenreview-rejected.json");

/// The fake review endpoint; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct MockTokenReview {
    /// token -> (pod, node) of the agent pod it was issued to.
    tokens: Arc<Mutex<HashMap<String, (String, String)>>>,
    reviews: Arc<AtomicUsize>,
    latency: Arc<Mutex<Duration>>,
}

impl MockTokenReview {
    /// Starts answering; returns the mock and a kube client pointed at it.
    pub fn start() -> (Self, kube::Client) {
        let me = Self::default();
        let (service, mut handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let m = me.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let m = m.clone();
                tokio::spawn(async move { m.serve(req, send).await });
            }
        });
        (me, kube::Client::new(service, "echomesh"))
    }

    /// `token` is a projected token of agent pod `pod` on `node`.
    pub fn issue(&self, token: &str, pod: &str, node: &str) {
        self.tokens
            .lock()
            .insert(token.into(), (pod.into(), node.into()));
    }

    /// Reviews answered so far.
    #[must_use]
    pub fn reviews(&self) -> usize {
        self.reviews.load(Ordering::Relaxed)
    }

    /// Every answer waits this long first (an API server's latency, for benches).
    pub fn set_latency(&self, d: Duration) {
        *self.latency.lock() = d;
    }

    async fn serve(
        &self,
        req: Request<kube::client::Body>,
        send: tower_test::mock::SendResponse<Response<Body>>,
    ) {
        assert_eq!(req.method(), http::Method::POST, "a review is a POST");
        assert_eq!(
            req.uri().path(),
            "/apis/authentication.k8s.io/v1/tokenreviews",
            "only TokenReviews are sent here"
        );
        let body = req
            .into_body()
            .collect()
            .await
            .expect("request body")
            .to_bytes();
        let review: serde_json::Value = serde_json::from_slice(&body).expect("review json");
        assert_eq!(
            review["spec"]["audiences"],
            serde_json::json!(["echomesh"]),
            "reviews ask for the echomesh audience"
        );
        let token = review["spec"]["token"].as_str().unwrap_or_default();
        let latency = *self.latency.lock();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.reviews.fetch_add(1, Ordering::Relaxed);
        let answer = match self.tokens.lock().get(token) {
            Some((pod, node)) => AGENT
                .replace("\"POD\"", &serde_json::to_string(pod).expect("json"))
                .replace("\"NODE\"", &serde_json::to_string(node).expect("json")),
            None => REJECTED.to_string(),
        };
        send.send_response(
            Response::builder()
                .status(StatusCode::CREATED)
                .header("content-type", "application/json")
                .body(
                    Full::new(Bytes::from(answer))
                        .map_err(|e| match e {})
                        .boxed_unsync(),
                )
                .expect("response"),
        );
    }
}
