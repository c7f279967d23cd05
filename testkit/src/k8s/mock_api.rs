//! A fake Kubernetes API server behind `tower-test`: kube's real `Client`, `watcher` and
//! `reflector` run against it unchanged.
//!
//! It serves LIST and WATCH for nodes (cluster scope) and pods (one namespace), keeps an event
//! log so a watch started at resourceVersion R replays what happened after R (no race between a
//! test's change and the watcher's reconnect), and asserts every request it gets: only GET, only
//! the two resources, the agent label selector on pods. Faults are switched per resource: a
//! status code for the next lists/watches (403, 500), "unreachable" (transport errors), and
//! `expire_watches` (a `410 Gone` ERROR event on the open watch, which forces a re-list).
//!
//! Lists page like the real API server's (`limit` and `continue`, sorted by name, one
//! resourceVersion for every page of a list, each page recorded in [`MockApi::pages`]), and
//! watches can be sent a `BOOKMARK` ([`MockApi::bookmark`]) and closed cleanly
//! ([`MockApi::close_watches`]), so the cost of a large cluster's first list and of a watch that
//! resumes instead of re-listing can be checked, not assumed.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, StreamBody};
use k8s_openapi::api::core::v1::{Node, Pod};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tower_test::mock;

type Body = UnsyncBoxBody<Bytes, Infallible>;

use super::fixtures::AGENT_LABEL;

/// Which resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Res {
    /// Nodes (cluster scope).
    Nodes,
    /// Agent pods (one namespace).
    Pods,
}

/// A fault injected into every request for one resource until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and a Kubernetes `Status` body.
    Status(u16),
    /// Fail at the transport (connection refused).
    Unreachable,
}

#[derive(Default)]
struct State {
    rv: u64,
    nodes: BTreeMap<String, Node>,
    pods: BTreeMap<String, Pod>,
    /// (resource, resourceVersion, watch event line).
    log: Vec<(Res, u64, Bytes)>,
    watches: Vec<(Res, mpsc::UnboundedSender<Bytes>)>,
    faults: BTreeMap<Res, Fault>,
    /// "GET /api/v1/nodes?..." for every request, in order.
    requests: Vec<String>,
    /// Every LIST answered, in order.
    pages: Vec<ListPage>,
}

/// One LIST request as the mock answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Which resource.
    pub res: Res,
    /// The `limit` it asked for (`None`: everything at once).
    pub limit: Option<usize>,
    /// The `continue` token it sent (`None`: the first page).
    pub continue_in: Option<String>,
    /// The `continue` token answered (`None`: the last page).
    pub continue_out: Option<String>,
    /// Objects in the page.
    pub items: usize,
    /// The list's `resourceVersion` (the same on every page of one list).
    pub resource_version: String,
}

/// The paging part of a LIST query.
struct Page {
    limit: Option<usize>,
    token: Option<String>,
}

impl Page {
    fn of_query(query: &str) -> Self {
        let get = |key: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .filter(|v| !v.is_empty())
        };
        Self {
            limit: get("limit").map(|v| v.parse().expect("limit is a number")),
            token: get("continue").map(str::to_string),
        }
    }
}

/// A continue token as a real API server makes one: opaque to the client, here the list's
/// resourceVersion and the hex of the last name served (names sort, so the next page starts
/// after it).
fn continue_token(rv: &str, last: &str) -> String {
    let hex: String = last.bytes().map(|b| format!("{b:02x}")).collect();
    format!("{rv}-{hex}")
}

fn parse_token(token: &str) -> (String, String) {
    let (rv, hex) = token
        .split_once('-')
        .expect("a continue token this mock made");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    (
        rv.to_string(),
        String::from_utf8(bytes).expect("utf-8 name"),
    )
}

impl State {
    /// One page of `res` (everything without a limit), the way the API server pages: sorted by
    /// name, at most `limit` objects, a continue token while more remain, and the first page's
    /// resourceVersion on every page of the list.
    fn list_page(&self, res: Res, page: &Page) -> (serde_json::Value, ListPage) {
        let (rv, after) = match &page.token {
            Some(t) => {
                let (rv, last) = parse_token(t);
                (rv, Some(last))
            }
            None => (self.rv.to_string(), None),
        };
        let objects: Vec<(&String, serde_json::Value)> = match res {
            Res::Nodes => self
                .nodes
                .iter()
                .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
                .take(page.limit.unwrap_or(usize::MAX))
                .map(|(k, n)| (k, serde_json::to_value(n).expect("json")))
                .collect(),
            Res::Pods => self
                .pods
                .iter()
                .filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a))
                .take(page.limit.unwrap_or(usize::MAX))
                .map(|(k, p)| (k, serde_json::to_value(p).expect("json")))
                .collect(),
        };
        let remaining = match res {
            Res::Nodes => self
                .nodes
                .keys()
                .filter(|k| after.as_ref().is_none_or(|a| *k > a))
                .count(),
            Res::Pods => self
                .pods
                .keys()
                .filter(|k| after.as_ref().is_none_or(|a| *k > a))
                .count(),
        };
        let continue_out = (remaining > objects.len())
            .then(|| objects.last().map(|(k, _)| continue_token(&rv, k)))
            .flatten();
        let kind = match res {
            Res::Nodes => "NodeList",
            Res::Pods => "PodList",
        };
        let mut metadata = serde_json::json!({"resourceVersion": rv});
        if let Some(c) = &continue_out {
            metadata["continue"] = serde_json::json!(c);
            metadata["remainingItemCount"] = serde_json::json!(remaining - objects.len());
        }
        let served = ListPage {
            res,
            limit: page.limit,
            continue_in: page.token.clone(),
            continue_out,
            items: objects.len(),
            resource_version: rv,
        };
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": kind,
            "metadata": metadata,
            "items": objects.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        });
        (body, served)
    }
}

/// The fake API server; cheap to clone.
#[derive(Clone)]
pub struct MockApi {
    state: Arc<Mutex<State>>,
    /// The namespace agent pods live in.
    pub namespace: String,
}

impl std::fmt::Debug for MockApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockApi")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl MockApi {
    /// Starts serving `nodes` and `pods`; returns the server and a kube client pointed at it.
    pub fn start(nodes: Vec<Node>, pods: Vec<Pod>) -> (Self, kube::Client) {
        let api = Self {
            state: Arc::new(Mutex::new(State {
                rv: 100,
                ..State::default()
            })),
            namespace: "echomesh".into(),
        };
        {
            let mut s = api.state.lock();
            for n in nodes {
                s.nodes.insert(n.metadata.name.clone().expect("name"), n);
            }
            for p in pods {
                s.pods.insert(p.metadata.name.clone().expect("name"), p);
            }
        }
        let (service, mut handle) = mock::pair::<Request<kube::client::Body>, Response<Body>>();
        let me = api.clone();
        tokio::spawn(async move {
            while let Some((req, send)) = handle.next_request().await {
                me.serve(req, send);
            }
        });
        (api, kube::Client::new(service, "echomesh"))
    }

    fn serve(
        &self,
        req: Request<kube::client::Body>,
        send: tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let uri = req.uri().to_string();
        assert_eq!(
            req.method(),
            http::Method::GET,
            "discovery only reads: {uri}"
        );
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let res = if path == "/api/v1/nodes" {
            Res::Nodes
        } else if path == format!("/api/v1/namespaces/{}/pods", self.namespace) {
            let selector = format!("labelSelector={}={}", AGENT_LABEL.0, AGENT_LABEL.1);
            let decoded = query
                .replace("%2F", "/")
                .replace("%2f", "/")
                .replace("%3D", "=")
                .replace("%3d", "=");
            assert!(
                decoded.contains(&selector),
                "pods must be selected by the agent label: {uri}"
            );
            Res::Pods
        } else {
            panic!("unexpected API request {uri}");
        };
        let watch = query.split('&').any(|kv| kv == "watch=true");
        let mut s = self.state.lock();
        s.requests.push(format!("GET {uri}"));
        match s.faults.get(&res).copied() {
            Some(Fault::Unreachable) => {
                send.send_error("connection refused (mock API server unreachable)");
                return;
            }
            Some(Fault::Status(code)) => {
                send.send_response(status_response(code, res, watch));
                return;
            }
            None => {}
        }
        if watch {
            let from: u64 = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let (tx, rx) = mpsc::unbounded_channel();
            for (r, rv, line) in &s.log {
                if *r == res && *rv > from {
                    let _ = tx.send(line.clone());
                }
            }
            s.watches.push((res, tx));
            let stream = UnboundedReceiverStream::new(rx)
                .map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)));
            send.send_response(
                Response::builder()
                    .status(StatusCode::OK)
                    .body(StreamBody::new(stream).boxed_unsync())
                    .expect("response"),
            );
        } else {
            let page = Page::of_query(&query);
            let (body, served) = s.list_page(res, &page);
            s.pages.push(served);
            send.send_response(json_response(StatusCode::OK, &body));
        }
    }

    fn push(&self, res: Res, kind: &str, object: serde_json::Value) {
        let mut s = self.state.lock();
        let rv = s.rv;
        let mut line =
            serde_json::to_vec(&serde_json::json!({"type": kind, "object": object})).expect("json");
        line.push(b'\n');
        let line = Bytes::from(line);
        s.log.push((res, rv, line.clone()));
        s.watches
            .retain(|(r, tx)| *r != res || tx.send(line.clone()).is_ok());
    }

    fn bump(&self) -> u64 {
        let mut s = self.state.lock();
        s.rv += 1;
        s.rv
    }

    /// Adds or replaces a node (ADDED or MODIFIED on open watches).
    pub fn apply_node(&self, mut n: Node) {
        let rv = self.bump();
        n.metadata.resource_version = Some(rv.to_string());
        let name = n.metadata.name.clone().expect("name");
        let existed = self.state.lock().nodes.insert(name, n.clone()).is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        self.push(Res::Nodes, kind, serde_json::to_value(&n).expect("json"));
    }

    /// Deletes a node (DELETED on open watches).
    pub fn delete_node(&self, name: &str) {
        let rv = self.bump();
        let Some(mut n) = self.state.lock().nodes.remove(name) else {
            return;
        };
        n.metadata.resource_version = Some(rv.to_string());
        self.push(
            Res::Nodes,
            "DELETED",
            serde_json::to_value(&n).expect("json"),
        );
    }

    /// Adds or replaces a pod.
    pub fn apply_pod(&self, mut p: Pod) {
        let rv = self.bump();
        p.metadata.resource_version = Some(rv.to_string());
        let name = p.metadata.name.clone().expect("name");
        let existed = self.state.lock().pods.insert(name, p.clone()).is_some();
        let kind = if existed { "MODIFIED" } else { "ADDED" };
        self.push(Res::Pods, kind, serde_json::to_value(&p).expect("json"));
    }

    /// Deletes a pod.
    pub fn delete_pod(&self, name: &str) {
        let rv = self.bump();
        let Some(mut p) = self.state.lock().pods.remove(name) else {
            return;
        };
        p.metadata.resource_version = Some(rv.to_string());
        self.push(
            Res::Pods,
            "DELETED",
            serde_json::to_value(&p).expect("json"),
        );
    }

    /// Changes the stored objects without telling any watcher (as if the events were lost while
    /// the watch was down); only a re-list can see it.
    pub fn silently_delete_node(&self, name: &str) {
        self.bump();
        self.state.lock().nodes.remove(name);
    }

    /// Sends `410 Gone` on every open watch of `res` and closes them; the event log before now is
    /// dropped, so only a re-list sees past changes.
    pub fn expire_watches(&self, res: Res) {
        let mut s = self.state.lock();
        let mut line = serde_json::to_vec(&serde_json::json!({
            "type": "ERROR",
            "object": status_json(410, "Expired", "too old resource version: 100 (200)"),
        }))
        .expect("json");
        line.push(b'\n');
        let line = Bytes::from(line);
        s.watches.retain(|(r, tx)| {
            if *r == res {
                let _ = tx.send(line.clone());
                false
            } else {
                true
            }
        });
        s.log.retain(|(r, _, _)| *r != res);
    }

    /// Sends a `BOOKMARK` at the current resourceVersion on every open watch of `res`, as the API
    /// server does about once a minute to a watch that asked for them (`allowWatchBookmarks`);
    /// returns that resourceVersion. The version moves on first, as if other resources had
    /// changed, so a watcher that resumes from the bookmark asks for a version no event carried.
    pub fn bookmark(&self, res: Res) -> String {
        let rv = self.bump().to_string();
        let kind = match res {
            Res::Nodes => "Node",
            Res::Pods => "Pod",
        };
        let mut line = serde_json::to_vec(&serde_json::json!({
            "type": "BOOKMARK",
            "object": {"kind": kind, "apiVersion": "v1", "metadata": {"resourceVersion": rv}},
        }))
        .expect("json");
        line.push(b'\n');
        let line = Bytes::from(line);
        let mut s = self.state.lock();
        s.watches
            .retain(|(r, tx)| *r != res || tx.send(line.clone()).is_ok());
        rv
    }

    /// Ends every open watch of `res` cleanly, as the API server does when a watch's timeout
    /// passes; the watcher then watches again from the last resourceVersion it saw.
    pub fn close_watches(&self, res: Res) {
        self.state.lock().watches.retain(|(r, _)| *r != res);
    }

    /// Every LIST answered so far, in order.
    pub fn pages(&self) -> Vec<ListPage> {
        self.state.lock().pages.clone()
    }

    /// Injects `fault` into every later request for `res`; `None` clears it.
    pub fn set_fault(&self, res: Res, fault: Option<Fault>) {
        let mut s = self.state.lock();
        match fault {
            Some(f) => {
                s.faults.insert(res, f);
                // Open watches end too, so the fault is seen promptly.
                s.watches.retain(|(r, _)| *r != res);
            }
            None => {
                s.faults.remove(&res);
            }
        }
    }

    /// Number of open watches of `res`.
    pub fn open_watches(&self, res: Res) -> usize {
        let mut s = self.state.lock();
        s.watches.retain(|(_, tx)| !tx.is_closed());
        s.watches.iter().filter(|(r, _)| *r == res).count()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().requests.clone()
    }

    /// LIST requests of `res` so far.
    pub fn lists(&self, res: Res) -> usize {
        let needle = match res {
            Res::Nodes => "/api/v1/nodes?",
            Res::Pods => "/pods?",
        };
        self.requests()
            .iter()
            .filter(|r| r.contains(needle) && !r.contains("watch=true"))
            .count()
    }
}

fn status_json(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn status_response(code: u16, res: Res, watch: bool) -> Response<Body> {
    let (resource, scope) = match res {
        Res::Nodes => ("nodes", "at the cluster scope".to_string()),
        Res::Pods => ("pods", "in the namespace \"echomesh\"".to_string()),
    };
    let verb = if watch { "watch" } else { "list" };
    let (reason, message) = match code {
        403 => (
            "Forbidden",
            format!(
                "{resource} is forbidden: User \"system:serviceaccount:echomesh:echomesh-aggregator\" \
                 cannot {verb} resource \"{resource}\" in API group \"\" {scope}"
            ),
        ),
        _ => ("InternalError", "an error on the server".to_string()),
    };
    json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &status_json(code, reason, &message),
    )
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
