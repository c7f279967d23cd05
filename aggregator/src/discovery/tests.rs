use echomesh_proto::v1::Network;

use super::*;
use echomesh_testkit::k8s::fixtures;

fn status(code: u16, reason: &str, message: &str) -> Box<kube::core::Status> {
    Box::new(kube::core::Status {
        code,
        reason: reason.into(),
        message: message.into(),
        ..kube::core::Status::default()
    })
}

#[test]
fn forbidden_list_names_the_verb_and_the_resource() {
    let e = watcher::Error::InitialListFailed(kube::Error::Api(status(
        403,
        "Forbidden",
        "nodes is forbidden: User \"system:serviceaccount:echomesh:echomesh-aggregator\" cannot list resource \"nodes\"",
    )));
    let msg = describe_watch_error("nodes (cluster scope)", &e);
    assert!(
        msg.starts_with(
            "forbidden: the aggregator's service account may not list nodes (cluster scope) \
             (RBAC needs get, list, watch on nodes)"
        ),
        "{msg}"
    );
    let e = watcher::Error::WatchStartFailed(kube::Error::Api(status(403, "Forbidden", "no")));
    let msg = describe_watch_error("pods (app=x) in namespace echomesh", &e);
    assert!(msg.contains("may not watch pods"), "{msg}");
}

#[test]
fn gone_and_other_statuses_are_described() {
    let e = watcher::Error::WatchError(status(410, "Expired", "too old resource version"));
    assert_eq!(
        describe_watch_error("nodes", &e),
        "watch of nodes expired (410 Gone); re-listing"
    );
    let e =
        watcher::Error::InitialListFailed(kube::Error::Api(status(500, "InternalError", "etcd")));
    assert_eq!(
        describe_watch_error("nodes", &e),
        "list nodes failed: HTTP 500 InternalError: etcd"
    );
    let e = watcher::Error::InitialListFailed(kube::Error::Service("connection refused".into()));
    assert!(
        describe_watch_error("nodes", &e).starts_with("API server unreachable (list nodes)"),
        "{}",
        describe_watch_error("nodes", &e)
    );
}

#[test]
fn pinglist_is_the_full_mesh_until_the_first_model() {
    let p = ModelPinglist::default();
    let a = AgentKey {
        node: "a".into(),
        network: Network::Pod,
    };
    let peers = vec![
        Peer {
            key: a.clone(),
            addresses: vec!["10.0.0.1".parse().expect("ip")],
        },
        Peer {
            key: AgentKey {
                node: "x".into(),
                network: Network::Pod,
            },
            addresses: vec!["10.0.9.1".parse().expect("ip")],
        },
    ];
    let before = p.targets(&a, &peers);
    assert_eq!(before.len(), 1);
    assert_eq!(&*before[0].node, "x");
    let (nodes, pods) = fixtures::three_nodes();
    let (m, _) = ClusterModel::build(&nodes, &pods);
    p.publish(Arc::new(m));
    // From the model: nodes b and c (pod + host each); the connected-only node x is not a target.
    let after = p.targets(&a, &peers);
    let nodes: BTreeSet<&str> = after.iter().map(|t| &*t.node).collect();
    assert_eq!(nodes, BTreeSet::from(["b", "c"]));
    assert_eq!(after.len(), 4);
}

use std::io::Write;

use crate::graph::EventHub;
use crate::graph::GraphConfig;
use crate::ingest::IngestConfig;
use echomesh_testkit::k8s::fixtures::NodeExt as _;
use echomesh_testkit::k8s::mock_api::{Fault, MockApi, Res};

struct Running {
    api: MockApi,
    pinglist: Arc<ModelPinglist>,
    graph: Arc<Graph>,
    readiness: Arc<Readiness>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(prepare: impl FnOnce(&MockApi)) -> Self {
        let (nodes, pods) = fixtures::three_nodes();
        Self::start_with(nodes, pods, prepare)
    }

    fn start_with(
        nodes: Vec<k8s_openapi::api::core::v1::Node>,
        pods: Vec<k8s_openapi::api::core::v1::Pod>,
        prepare: impl FnOnce(&MockApi),
    ) -> Self {
        let (api, client) = MockApi::start(nodes, pods);
        prepare(&api);
        let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(16, 4)));
        let pinglist = Arc::new(ModelPinglist::default());
        let ingest = Ingest::new(graph.clone(), IngestConfig::default(), pinglist.clone());
        let readiness = Arc::new(Readiness::default());
        let d = Discovery::new(
            DiscoveryConfig::default(),
            pinglist.clone(),
            ingest,
            graph.clone(),
            readiness.clone(),
        );
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(d.run(client, async {
            let _ = rx.await;
        }));
        Self {
            api,
            pinglist,
            graph,
            readiness,
            stop: Some(stop),
            task,
        }
    }

    /// Steps paused time 1 ms at a time until `f` holds; returns the virtual time it took.
    async fn until(&self, what: &str, f: impl Fn(&Self) -> bool) -> Duration {
        let t0 = Instant::now();
        for _ in 0..120_000 {
            if f(self) {
                return t0.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("never happened (120 s of virtual time): {what}");
    }

    fn nodes(&self) -> usize {
        self.pinglist.model().map_or(0, |m| m.nodes.len())
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

#[tokio::test(start_paused = true)]
async fn model_follows_api_events_within_the_debounce_and_ignores_heartbeats() {
    let r = Running::start(|_| {});
    r.until("first model", |r| r.nodes() == 3).await;
    assert_eq!(r.readiness.check(), Ok(()));
    let debounce = DiscoveryConfig::default().debounce;

    // A node joins: the model (and so the reassignment request) follows after one debounce.
    // With the ingest's own 200 ms assign debounce that is ~300 ms, well inside the 1 s promise.
    r.api.apply_node(fixtures::node("d", &["192.168.0.4"]));
    let took = r.until("node d in the model", |r| r.nodes() == 4).await;
    assert!(
        took >= debounce && took <= debounce + Duration::from_millis(5),
        "{took:?}"
    );

    // A kubelet heartbeat (only the resourceVersion changes) publishes nothing new.
    let before = r.pinglist.model().expect("model");
    r.api
        .apply_node(fixtures::node("d", &["192.168.0.4"]).rv(999));
    tokio::time::sleep(debounce * 3).await;
    let after = r.pinglist.model().expect("model");
    assert!(
        Arc::ptr_eq(&before, &after),
        "unchanged model is not republished"
    );

    // A cordon reaches the graph's expected-down set (what the query API reports).
    r.api
        .apply_node(fixtures::node("b", &["192.168.0.2"]).cordoned());
    r.until("b expected down", |r| r.graph.is_expected_down("b"))
        .await;
    assert!(!r.graph.is_expected_down("a"));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn drained_then_unreachable_stays_expected_but_unreachable_alone_alarms_with_evidence() {
    let r = Running::start(|_| {});
    r.until("first model", |r| r.nodes() == 3).await;
    let evidence = "Unknown since 2026-01-02T03:04:05Z (NodeStatusUnknown)";

    // A partition: Ready goes Unknown, nobody drained the node. Evidence, no silencing.
    r.api
        .apply_node(fixtures::node("b", &["192.168.0.2"]).unreachable());
    r.until("b's Ready evidence", |r| r.graph.not_ready("b").is_some())
        .await;
    assert_eq!(r.graph.not_ready("b").as_deref(), Some(evidence));
    assert!(!r.graph.is_expected_down("b"), "a partition must alarm");
    let model = r.pinglist.model().expect("model");
    let a = AgentKey {
        node: "a".into(),
        network: Network::Pod,
    };
    assert!(model.targets(&a, &[]).iter().all(|t| !t.expected_down));

    // Ready again, then a planned reboot: cordoned first, then the kubelet goes away.
    r.api.apply_node(fixtures::node("b", &["192.168.0.2"]));
    r.until("b Ready again", |r| r.graph.not_ready("b").is_none())
        .await;
    r.api
        .apply_node(fixtures::node("b", &["192.168.0.2"]).cordoned());
    r.until("b expected down", |r| r.graph.is_expected_down("b"))
        .await;
    r.api.apply_node(
        fixtures::node("b", &["192.168.0.2"])
            .cordoned()
            .unreachable(),
    );
    r.until("b's Ready evidence", |r| r.graph.not_ready("b").is_some())
        .await;
    assert!(
        r.graph.is_expected_down("b"),
        "a drained node stays expected"
    );
    let model = r.pinglist.model().expect("model");
    for t in model.targets(&a, &[]) {
        assert_eq!(t.expected_down, &*t.node == "b", "{t:?}");
    }
    r.stop().await;
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn forbidden_list_logs_the_missing_permission_and_retries_with_backoff() {
    let logs = Captured::default();
    let sub = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    // The test runtime is single-threaded, so every task logs into this subscriber.
    let _guard = tracing::subscriber::set_default(sub);
    let r = Running::start(|api| api.set_fault(Res::Pods, Some(Fault::Status(403))));
    r.until("three failed lists", |r| r.api.lists(Res::Pods) >= 3)
        .await;
    let why = r.readiness.check().expect_err("not ready");
    assert_eq!(why.len(), 1);
    assert!(
        why[0].starts_with(
            "kubernetes: forbidden: the aggregator's service account may not list pods \
             (app.kubernetes.io/name=echomesh-agent) in namespace echomesh"
        ),
        "{why:?}"
    );
    assert!(
        r.pinglist.model().is_none(),
        "no partial model from nodes alone"
    );
    let text = String::from_utf8_lossy(&logs.0.lock()).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("Kubernetes watch failed"))
        .unwrap_or_else(|| panic!("no warning logged:\n{text}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("may not list pods"), "{line}");
    assert!(
        line.contains("RBAC needs get, list, watch on pods"),
        "{line}"
    );
    // Logged once per cause, not once per retry.
    assert_eq!(
        text.lines()
            .filter(|l| l.contains("Kubernetes watch failed"))
            .count(),
        1,
        "{text}"
    );

    r.api.set_fault(Res::Pods, None);
    r.until("model after RBAC is fixed", |r| r.nodes() == 3)
        .await;
    assert_eq!(r.readiness.check(), Ok(()));
    r.stop().await;
}

mod scale;
