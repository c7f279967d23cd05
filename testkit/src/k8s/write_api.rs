//! A fake Kubernetes API server for the aggregator's writes (Node status patches and Events),
//! behind `tower-test`: kube's real `Client` talks to it unchanged.
//!
//! Why separate from [`super::mock_api`]: that server asserts discovery only ever reads; this one
//! records every write (method, path, query, content type and JSON body) so a test can assert the
//! exact bodies, lists the nodes it was started with (for the writer's start-up look at existing
//! conditions), and can answer every write with `403 Forbidden`, as an API server does when the
//! RBAC for the writes is missing.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use k8s_openapi::api::core::v1::Node;
use parking_lot::Mutex;
use tower_test::mock;

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Write {
    /// `GET`, `PATCH`, `POST`.
    pub method: String,
    /// The URI path.
    pub path: String,
    /// The URI query (empty when none).
    pub query: String,
    /// The `content-type` header.
    pub content_type: String,
    /// The JSON body (`Null` when none).
    pub body: serde_json::Value,
}

#[derive(Default)]
struct State {
    nodes: Vec<Node>,
    forbidden: bool,
    requests: Vec<Write>,
}

/// The fake API server; cheap to clone.
#[derive(Clone, Default)]
pub struct WriteApi {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for WriteApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteApi").finish_non_exhaustive()
    }
}

impl WriteApi {
    /// Starts serving; `nodes` answer `GET /api/v1/nodes`. Returns the server and a kube client.
    pub fn start(nodes: Vec<Node>) -> (Self, kube::Client) {
        let api = Self::default();
        api.state.lock().nodes = nodes;
        let (service, mut handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let me = api.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let resp = me.serve(req).await;
                    send.send_response(resp);
                });
            }
        });
        (api, kube::Client::new(service, "echomesh"))
    }

    async fn serve(&self, req: Request<kube::client::Body>) -> Response<Body> {
        let method = req.method().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = req
            .into_body()
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let body = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request bodies are JSON")
        };
        let mut s = self.state.lock();
        s.requests.push(Write {
            method: method.clone(),
            path: path.clone(),
            query,
            content_type,
            body: body.clone(),
        });
        if method == "GET" && path == "/api/v1/nodes" {
            let items: Vec<serde_json::Value> = s
                .nodes
                .iter()
                .map(|n| serde_json::to_value(n).expect("json"))
                .collect();
            return json_response(
                StatusCode::OK,
                &serde_json::json!({
                    "apiVersion": "v1", "kind": "NodeList",
                    "metadata": {"resourceVersion": "1"}, "items": items,
                }),
            );
        }
        if s.forbidden {
            return json_response(
                StatusCode::FORBIDDEN,
                &serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "reason": "Forbidden", "code": 403,
                    "message": format!("{path} is forbidden: User \"system:serviceaccount:echomesh:echomesh-aggregator\" cannot {method} it"),
                }),
            );
        }
        match method.as_str() {
            "PATCH" if path.starts_with("/api/v1/nodes/") && path.ends_with("/status") => {
                let name = path
                    .trim_start_matches("/api/v1/nodes/")
                    .trim_end_matches("/status");
                json_response(
                    StatusCode::OK,
                    &serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}),
                )
            }
            "POST" if path.ends_with("/events") => {
                let mut echo = body;
                echo["metadata"]["name"] = serde_json::json!("event-1");
                json_response(StatusCode::CREATED, &echo)
            }
            _ => panic!("unexpected API request {method} {path}"),
        }
    }

    /// Answers every later write (not the node list) with `403 Forbidden`, or stops doing so.
    pub fn set_forbidden(&self, forbidden: bool) {
        self.state.lock().forbidden = forbidden;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Write> {
        self.state.lock().requests.clone()
    }

    /// Every request except the node list, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.requests()
            .into_iter()
            .filter(|w| w.method != "GET")
            .collect()
    }
}

fn json_response(code: StatusCode, v: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(serde_json::to_vec(v).expect("json")))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("response")
}
