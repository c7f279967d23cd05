//! The writer against a mocked API server (`echomesh_testkit::k8s::write_api`), with paused time
//! and a diagnosis the test sets.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::Network;
use echomesh_testkit::k8s::fixtures;
use echomesh_testkit::k8s::write_api::{Write, WriteApi};
use parking_lot::Mutex;

use super::*;
use crate::diagnose::{Culprit, Diagnosis, Direction, Kind};

const AFTER: Duration = Duration::from_secs(60);

fn culprit(kind: Kind, node: &str) -> Culprit {
    Culprit {
        kind,
        subject: node.into(),
        target: None,
        plane: Network::Unspecified,
        direction: Direction::Both,
        failing: 6,
        total: 6,
        explained: 6,
        confidence: 0.9,
        since_unix_ms: 1_000,
        agent_silent: false,
    }
}

struct Harness {
    api: WriteApi,
    verdict: Arc<Mutex<Diagnosis>>,
    counters: WriteCounters,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(nodes: Vec<k8s_openapi::api::core::v1::Node>, known: &[&'static str]) -> Self {
        let (api, client) = WriteApi::start(nodes);
        let verdict = Arc::new(Mutex::new(Diagnosis::default()));
        let counters = WriteCounters::default();
        let v = verdict.clone();
        let known: Vec<&'static str> = known.to_vec();
        let w = NodeConditions::new(
            NodeConditionConfig::new(AFTER),
            Some(client),
            Arc::new(move || (v.lock().clone(), 61_000)),
            Arc::new(move |n| known.contains(&n)),
            counters.clone(),
        );
        let (stop, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(w.run(async {
            let _ = rx.await;
        }));
        Self {
            api,
            verdict,
            counters,
            stop,
            task,
        }
    }

    fn blame(&self, culprits: Vec<Culprit>) {
        self.verdict.lock().culprits = culprits;
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.expect("writer ends cleanly");
    }
}

/// Lets `d` of (paused) time pass, cycle by cycle.
async fn pass(d: Duration) {
    let step = Duration::from_secs(1);
    let mut left = d;
    while !left.is_zero() {
        let s = step.min(left);
        tokio::time::sleep(s).await;
        left -= s;
    }
    // Let in-flight writes finish.
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

fn patches(w: &[Write]) -> Vec<&Write> {
    w.iter().filter(|w| w.method == "PATCH").collect()
}

fn events(w: &[Write]) -> Vec<&Write> {
    w.iter().filter(|w| w.method == "POST").collect()
}

#[tokio::test(start_paused = true)]
async fn blamed_past_the_threshold_gets_one_patch_and_one_event_then_false_when_healed() {
    let h = Harness::start(vec![fixtures::node("n1", &["192.168.0.1"])], &["n1"]);
    h.blame(vec![culprit(Kind::PodNetwork, "n1")]);
    pass(Duration::from_secs(50)).await;
    assert!(h.api.writes().is_empty(), "not yet: {:?}", h.api.writes());
    pass(Duration::from_secs(60)).await;
    let w = h.api.writes();
    let p = patches(&w);
    let e = events(&w);
    assert_eq!((p.len(), e.len()), (1, 1), "{w:?}");
    assert_eq!(p[0].path, "/api/v1/nodes/n1/status");
    assert_eq!(p[0].content_type, "application/strategic-merge-patch+json");
    assert!(
        p[0].query.contains("fieldManager=echomesh"),
        "{}",
        p[0].query
    );
    let conds = p[0].body["status"]["conditions"]
        .as_array()
        .expect("conditions");
    assert_eq!(conds.len(), 1, "only our condition is sent: {conds:?}");
    let c = &conds[0];
    assert_eq!(c["type"], "EchomeshNetworkProblem");
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "PodNetworkBroken");
    let msg = c["message"].as_str().expect("message");
    assert!(
        msg.contains("pod-network n1: 6/6 edges both failing") && msg.contains("confidence 90 %"),
        "{msg}"
    );
    let t = c["lastTransitionTime"]
        .as_str()
        .expect("lastTransitionTime");
    assert!(
        t.len() == 20 && t.ends_with('Z'),
        "RFC 3339, whole seconds: {t}"
    );
    assert_eq!(e[0].body["lastTimestamp"].as_str(), Some(t));
    assert_eq!(e[0].path, "/api/v1/namespaces/default/events");
    assert_eq!(e[0].body["involvedObject"]["kind"], "Node");
    assert_eq!(e[0].body["involvedObject"]["name"], "n1");
    assert_eq!(e[0].body["type"], "Warning");
    assert_eq!(e[0].body["reason"], "PodNetworkBroken");
    assert_eq!(e[0].body["message"], c["message"]);

    // Still blamed: nothing more.
    pass(Duration::from_secs(60)).await;
    assert_eq!(h.api.writes().len(), 2);

    // Healed: False, once.
    h.blame(vec![]);
    pass(Duration::from_secs(60)).await;
    let w = h.api.writes();
    let p = patches(&w);
    assert_eq!(p.len(), 2, "{w:?}");
    let c = &p[1].body["status"]["conditions"][0];
    assert_eq!(c["status"], "False");
    assert_eq!(c["reason"], "NetworkHealthy");
    assert_eq!(events(&w).len(), 2);
    assert_eq!(events(&w)[1].body["type"], "Normal");
    assert_eq!(h.counters.get(Object::Condition, Outcome::Ok), 2);
    assert_eq!(h.counters.get(Object::Event, Outcome::Ok), 2);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn blamed_for_less_than_the_threshold_writes_nothing() {
    let h = Harness::start(vec![], &["n1"]);
    for _ in 0..3 {
        h.blame(vec![culprit(Kind::Node, "n1")]);
        pass(Duration::from_secs(40)).await;
        h.blame(vec![]);
        pass(Duration::from_secs(20)).await;
    }
    assert!(h.api.writes().is_empty(), "{:?}", h.api.writes());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn forbidden_is_counted_and_retried_without_crashing() {
    let h = Harness::start(vec![], &["n1"]);
    h.api.set_forbidden(true);
    h.blame(vec![culprit(Kind::Node, "n1")]);
    pass(Duration::from_secs(100)).await;
    let forbidden = h.counters.get(Object::Condition, Outcome::Forbidden);
    assert!(forbidden >= 2, "retried each cycle: {forbidden}");
    assert_eq!(h.counters.get(Object::Condition, Outcome::Ok), 0);
    assert_eq!(
        events(&h.api.writes()).len(),
        0,
        "no event without the condition"
    );
    // The RBAC is granted: a following cycle succeeds, once. (The diagnosis runs on a blocking
    // thread, so paused time may run past one cycle while it works: allow a few.)
    h.api.set_forbidden(false);
    for _ in 0..6 {
        pass(Duration::from_secs(10)).await;
        if h.counters.get(Object::Condition, Outcome::Ok) > 0 {
            break;
        }
    }
    pass(Duration::from_secs(30)).await;
    assert_eq!(h.counters.get(Object::Condition, Outcome::Ok), 1);
    assert_eq!(h.counters.get(Object::Event, Outcome::Ok), 1);
    assert!(!h.task.is_finished());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn only_known_nodes_with_valid_names_and_node_culprits_are_written() {
    let h = Harness::start(vec![], &["n1", "Bad/../name"]);
    h.blame(vec![
        culprit(Kind::Node, "stranger"),
        culprit(Kind::Node, "Bad/../name"),
        culprit(Kind::Zone, "n1"),
        culprit(Kind::Link, "n1"),
        culprit(Kind::AgentSilent, "n1"),
    ]);
    pass(Duration::from_secs(120)).await;
    assert!(h.api.writes().is_empty(), "{:?}", h.api.writes());
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn writes_per_cycle_are_bounded() {
    let names: Vec<&'static str> = (0..25)
        .map(|i| &*Box::leak(format!("n{i}").into_boxed_str()))
        .collect();
    let h = Harness::start(vec![], &names);
    h.blame(names.iter().map(|n| culprit(Kind::Node, n)).collect());
    // The threshold is reached at the cycle of t = 60 s; that cycle writes 10.
    pass(Duration::from_secs(61)).await;
    assert_eq!(patches(&h.api.writes()).len(), 10);
    pass(Duration::from_secs(20)).await;
    assert_eq!(patches(&h.api.writes()).len(), 25);
    h.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_condition_left_true_by_a_previous_run_is_cleared() {
    let mut n = fixtures::node("n1", &["192.168.0.1"]);
    n.status
        .get_or_insert_with(Default::default)
        .conditions
        .get_or_insert_with(Vec::new)
        .push(k8s_openapi::api::core::v1::NodeCondition {
            type_: "EchomeshNetworkProblem".into(),
            status: "True".into(),
            ..Default::default()
        });
    let h = Harness::start(vec![n], &["n1"]);
    pass(Duration::from_secs(5)).await;
    let w = h.api.writes();
    assert_eq!(patches(&w).len(), 1, "{w:?}");
    assert_eq!(
        patches(&w)[0].body["status"]["conditions"][0]["status"],
        "False"
    );
    h.stop().await;
}

#[test]
fn the_threshold_flag_refuses_zero_and_absurd_values() {
    assert_eq!(parse_after("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_after("10s"), Ok(MIN_AFTER));
    for bad in ["0s", "0", "1s", "25h", "1000h", "soon"] {
        let e = parse_after(bad).expect_err(bad);
        assert!(!e.is_empty(), "{bad}");
    }
    assert!(parse_after("1s").expect_err("1s").contains("10s..=24h"));
}

#[test]
fn counters_are_exported_with_fixed_labels() {
    let c = WriteCounters::default();
    c.count(Object::Condition, Outcome::Forbidden);
    let mut reg = prometheus_client::registry::Registry::default();
    reg.register_collector(Box::new(c));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &reg).expect("encode");
    assert!(
        out.contains(
            "echomesh_node_condition_writes_total{object=\"condition\",result=\"forbidden\"} 1"
        ),
        "{out}"
    );
    assert_eq!(
        out.matches("echomesh_node_condition_writes_total{").count(),
        6
    );
}
