//! Agent authentication over real gRPC: a shared token outside Kubernetes, a TokenReview bound to
//! the agent pod inside it. Each refusal shows its code and message, is counted on `/metrics`,
//! and leaves the real agent's session and edges as they were.

use std::path::PathBuf;
use std::time::Duration;

use echomesh_proto::v1::{self, AgentMessage, Network};
use echomesh_testkit::http::get;
use echomesh_testkit::k8s::fixtures;
use echomesh_testkit::k8s::mock_api::MockApi;
use echomesh_testkit::k8s::token_review::MockTokenReview;
use echomesh_testkit::metrics::sample;
use echomesh_testkit::sim::{hello_message, message_of_hello};
use echomesh_testkit::{SimAgent, TestAggregator};
use tonic::Code;

/// A token file in the temp dir, removed on drop.
struct TokenFile(PathBuf);

impl TokenFile {
    fn new(name: &str, token: &str) -> Self {
        let p =
            std::env::temp_dir().join(format!("echomesh-auth-test-{}-{name}", std::process::id()));
        std::fs::write(&p, format!("{token}\n")).expect("write token");
        Self(p)
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens a session that must be refused, and returns the refusal.
async fn refused(s: &TestAggregator, first: AgentMessage, token: Option<&str>) -> tonic::Status {
    SimAgent::refusal(s.channel().await, first, token).await
}

async fn auth_failures(s: &TestAggregator, reason: &str) -> u64 {
    let text = get(s.http_addr, "/metrics").await.body;
    sample(
        &text,
        &format!("echomesh_agent_auth_failures_total{{reason=\"{reason}\"}} "),
    )
}

fn hello_as(node: &str, pod: &str, network: Network, addr: &str) -> AgentMessage {
    let mut h = echomesh_testkit::sim::hello(node, network, addr);
    h.pod = pod.into();
    message_of_hello(h)
}

#[tokio::test]
async fn shared_token_impersonators_are_refused_and_the_real_agents_edges_stay() {
    let file = TokenFile::new("shared", "lab-secret-token");
    let path = file.0.clone();
    let s = TestAggregator::start(move |c| c.agent_token_file = Some(path)).await;
    let tok = Some("lab-secret-token");
    let mut a = SimAgent::open_with_token(
        s.channel().await,
        hello_message("a", Network::Pod, "127.0.0.1"),
        tok,
    )
    .await
    .expect("a");
    let mut b = SimAgent::open_with_token(
        s.channel().await,
        hello_message("b", Network::Pod, "127.0.0.2"),
        tok,
    )
    .await
    .expect("b");
    a.wait_assignment(1).await;
    b.wait_assignment(1).await;
    let r = a.report(100, 0, &echomesh_proto::Histogram::default());
    a.send_report_acked(r).await;

    // No token, a wrong token, a malformed header: refused before the Hello is believed.
    let st = refused(&s, hello_message("a", Network::Pod, "10.9.9.9"), None).await;
    assert_eq!(st.code(), Code::Unauthenticated);
    assert_eq!(
        st.message(),
        "this aggregator requires an agent token: send \"authorization: Bearer <token>\" \
         (echomesh-agent --agent-token-file)"
    );
    let st = refused(
        &s,
        hello_message("a", Network::Pod, "10.9.9.9"),
        Some("guess"),
    )
    .await;
    assert_eq!(st.code(), Code::Unauthenticated);
    assert_eq!(
        st.message(),
        "the agent token does not match the aggregator's --agent-token-file"
    );
    assert_eq!(auth_failures(&s, "missing_token").await, 1);
    assert_eq!(auth_failures(&s, "bad_token").await, 1);

    // The real agent's session is the same one: it still reports and is acked.
    let r = a.report(100, 0, &echomesh_proto::Histogram::default());
    assert_eq!(r.seq, 2);
    a.send_report_acked(r).await;
    // Its edge carries exactly what it reported: nothing of the impersonators reached the graph.
    let edge = s.edge("a", "b").await;
    assert_eq!(edge.source_node, "a");
    assert_eq!(edge.target_node, "b");
    assert_eq!(
        edge.sent_total, 200,
        "a's two reports of 100 probes, nothing else"
    );
    let key = echomesh_aggregator::graph::AgentKey {
        node: "a".into(),
        network: Network::Pod,
    };
    let info = s
        .graph
        .agent(&key)
        .expect("agent a kept")
        .info
        .lock()
        .clone();
    assert_eq!(
        info.addresses,
        vec!["127.0.0.1".parse::<std::net::IpAddr>().expect("ip")]
    );
    assert!(info.connected);
    s.shutdown().await;
}

/// The mocked cluster of three nodes, a review endpoint that knows each agent pod's token, and
/// an aggregator verifying agents with it.
async fn cluster() -> (TestAggregator, MockTokenReview, MockApi) {
    let (nodes, pods) = fixtures::three_nodes();
    let (api, client) = MockApi::start(nodes, pods);
    let (review, review_client) = MockTokenReview::start();
    for n in ["a", "b", "c"] {
        review.issue(
            &format!("tok-pod-{n}"),
            &format!("echomesh-agent-pod-{n}"),
            n,
        );
        review.issue(
            &format!("tok-host-{n}"),
            &format!("echomesh-agent-host-{n}"),
            n,
        );
    }
    let s = TestAggregator::start_with_token_review(client, review_client, |_| {}).await;
    (s, review, api)
}

/// Opens a session, retrying while discovery has not listed the cluster yet (UNAVAILABLE).
async fn open_when_listed(
    s: &TestAggregator,
    first: &AgentMessage,
    token: &str,
) -> Result<SimAgent, tonic::Status> {
    let deadline = tokio::time::Instant::now() + echomesh_testkit::SOON;
    loop {
        let mut a =
            SimAgent::open_with_token(s.channel().await, first.clone(), Some(token)).await?;
        match a.next_within(Duration::from_secs(5)).await {
            Some(Err(st))
                if st.code() == Code::Unavailable && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Some(Err(st)) => return Err(st),
            Some(Ok(Some(m))) => {
                if let Some(v1::aggregator_message::Msg::Assignment(x)) = m.msg {
                    a.assignment = Some(x);
                }
                return Ok(a);
            }
            Some(Ok(None)) | None => panic!("no answer to the Hello"),
        }
    }
}

#[tokio::test]
async fn a_reviewed_token_binds_the_hello_to_its_pod_node_network_and_addresses() {
    let (s, review, _api) = cluster().await;
    let mut a = open_when_listed(
        &s,
        &hello_as("a", "echomesh-agent-pod-a", Network::Pod, "10.244.0.10"),
        "tok-pod-a",
    )
    .await
    .expect("the real agent of a is accepted");

    // Node b's agent pod claiming node a; a pod agent claiming the host network; a foreign address.
    let cases = [
        (
            hello_as("a", "echomesh-agent-pod-b", Network::Pod, "10.244.0.10"),
            "tok-pod-b",
            "pod \"echomesh-agent-pod-b\" runs on node \"b\"; it may not speak for node \"a\"",
            "wrong_node",
        ),
        (
            hello_as("a", "echomesh-agent-pod-a", Network::Host, "192.168.0.1"),
            "tok-pod-a",
            "pod \"echomesh-agent-pod-a\" is on the pod network (hostNetwork); its Hello claims the host network",
            "wrong_network",
        ),
        (
            hello_as("a", "echomesh-agent-pod-a", Network::Pod, "10.99.0.1"),
            "tok-pod-a",
            "pod \"echomesh-agent-pod-a\" announced 10.99.0.1 but the API server lists [10.244.0.10] for it",
            "foreign_address",
        ),
    ];
    for (hello, token, message, reason) in cases {
        let st = open_when_listed(&s, &hello, token).await.expect_err(reason);
        assert_eq!(st.code(), Code::PermissionDenied, "{reason}");
        assert_eq!(st.message(), message);
        assert_eq!(auth_failures(&s, reason).await, 1, "{reason}");
    }
    // A token the API server does not accept.
    let st = refused(
        &s,
        hello_as("a", "echomesh-agent-pod-a", Network::Pod, "10.244.0.10"),
        Some("stolen-or-expired"),
    )
    .await;
    assert_eq!(st.code(), Code::Unauthenticated);
    assert!(
        st.message()
            .starts_with("the API server did not accept the agent token: [invalid bearer token"),
        "{}",
        st.message()
    );
    // A refused token is remembered for a while: presenting it again costs the API server nothing.
    let reviewed = review.reviews();
    let st = refused(
        &s,
        hello_as("a", "echomesh-agent-pod-a", Network::Pod, "10.244.0.10"),
        Some("stolen-or-expired"),
    )
    .await;
    assert_eq!(st.code(), Code::Unauthenticated);
    assert_eq!(review.reviews(), reviewed, "refused verdict reused");

    // The real agent kept its session throughout.
    let r = a.report(10, 0, &echomesh_proto::Histogram::default());
    a.send_report_acked(r).await;

    // The verdict for a token is cached: reconnecting with it does not ask the API server again.
    let before = review.reviews();
    drop(a);
    let _again = open_when_listed(
        &s,
        &hello_as("a", "echomesh-agent-pod-a", Network::Pod, "10.244.0.10"),
        "tok-pod-a",
    )
    .await
    .expect("reconnect");
    assert_eq!(review.reviews(), before, "cached verdict reused");
    s.shutdown().await;
}

#[tokio::test]
async fn the_agent_socket_is_private_to_the_aggregators_user() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("echomesh-sock-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let sock = dir.join("agg.sock");
    // A stale socket file from an earlier run is replaced.
    std::fs::write(&sock, "stale").expect("stale");
    let path = sock.clone();
    let s = TestAggregator::start(move |c| c.agent_socket = Some(path)).await;
    let meta = std::fs::metadata(&sock).expect("socket exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("agg.sock")]);
    s.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
