//! The `run` loop against a scripted aggregator, without root: a fake engine returns scripted
//! windows, and real gRPC runs over in-memory streams (`tokio::io::duplex`). Time is paused, so
//! report intervals and reconnect backoff are measured exactly and the tests take no wall time.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use echomesh_agent::metrics::{AgentMetrics, ReplayStatus};
use echomesh_agent::prober::{TargetFlip, TargetSpec};
use echomesh_agent::report::{self, ConnectError, Connector, RunArgs, RunError};
use echomesh_proto::v1::agent_service_server::{AgentService, AgentServiceServer};
use echomesh_proto::v1::{
    self, AgentMessage, AggregatorMessage, Network, agent_message, aggregator_message,
};
use echomesh_testkit::duplex;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status, Streaming};

use support::engine::{FakeStarter, Shared, lock};

// ---- the in-memory transport ----------------------------------------------------------------

/// Connects through the test kit's in-memory dialer; `Harness::down` refuses connections.
struct Duplex(duplex::Dialer);

impl Connector for Duplex {
    fn connect(&mut self) -> impl Future<Output = Result<Channel, ConnectError>> + Send {
        let dialer = self.0.clone();
        async move {
            Ok(dialer
                .connect(Endpoint::from_static("http://in-memory"))
                .await?)
        }
    }

    fn target(&self) -> &str {
        "in-memory"
    }
}

// ---- the scripted aggregator ----------------------------------------------------------------

/// One Session as the test sees it: what the agent sends, and a way to answer.
struct Side {
    opened: Instant,
    inbound: Streaming<AgentMessage>,
    outbound: mpsc::Sender<Result<AggregatorMessage, Status>>,
}

impl Side {
    async fn next(&mut self) -> AgentMessage {
        match self.inbound.message().await {
            Ok(Some(m)) => m,
            other => panic!("agent stream ended: {other:?}"),
        }
    }

    async fn hello(&mut self) -> v1::Hello {
        match self.next().await.msg {
            Some(agent_message::Msg::Hello(h)) => h,
            other => panic!("expected Hello first, got {other:?}"),
        }
    }

    /// The next Report (alerts are skipped) and when it arrived.
    async fn report(&mut self) -> (Instant, v1::Report) {
        loop {
            if let Some(agent_message::Msg::Report(r)) = self.next().await.msg {
                return (Instant::now(), r);
            }
        }
    }

    /// The next message if one comes within `d`.
    async fn within(&mut self, d: Duration) -> Option<AgentMessage> {
        tokio::time::timeout(d, self.next()).await.ok()
    }

    /// The reports that arrive until none has come for 10 ms (alerts are skipped).
    async fn drain_reports(&mut self) -> Vec<v1::Report> {
        let mut got = Vec::new();
        while let Some(m) = self.within(Duration::from_millis(10)).await {
            if let Some(agent_message::Msg::Report(r)) = m.msg {
                got.push(r);
            }
        }
        got
    }

    async fn send(&self, msg: aggregator_message::Msg) {
        self.outbound
            .send(Ok(AggregatorMessage { msg: Some(msg) }))
            .await
            .expect("agent still listening");
    }

    async fn assign(&self, a: v1::Assignment) {
        self.send(aggregator_message::Msg::Assignment(a)).await;
    }

    async fn ack(&self, seq: u64) {
        self.send(aggregator_message::Msg::Ack(v1::Ack { seq }))
            .await;
    }
}

struct Scripted {
    sessions: mpsc::UnboundedSender<Side>,
}

#[tonic::async_trait]
impl AgentService for Scripted {
    type SessionStream = ReceiverStream<Result<AggregatorMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let (outbound, rx) = mpsc::channel(64);
        let side = Side {
            opened: Instant::now(),
            inbound: request.into_inner(),
            outbound,
        };
        self.sessions
            .send(side)
            .map_err(|_| Status::unavailable("test over"))?;
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

// ---- the harness ----------------------------------------------------------------------------

struct Harness {
    sessions: mpsc::UnboundedReceiver<Side>,
    log: Shared,
    flips: mpsc::Sender<TargetFlip>,
    down: duplex::Dialer,
    metrics: AgentMetrics,
    stop: Option<oneshot::Sender<()>>,
    agent: tokio::task::JoinHandle<Result<(), RunError>>,
}

fn args(replay_buffer: usize, max_backoff: Duration) -> RunArgs {
    RunArgs {
        pod: "agent-xyz".into(),
        network: Network::Host,
        addresses: vec![
            "10.0.0.1".parse().expect("ip"),
            "fd00::1".parse().expect("ip"),
        ],
        replay_buffer,
        max_backoff,
        ..support::run_args("http://unused.invalid:1", "node-a", "10.0.0.1")
    }
}

fn start(args: RunArgs) -> Harness {
    let (dialer, incoming) = duplex::pair();
    let (side_tx, sessions) = mpsc::unbounded_channel();
    tokio::spawn(
        Server::builder()
            .add_service(AgentServiceServer::new(Scripted { sessions: side_tx }))
            .serve_with_incoming(incoming),
    );
    let log = Shared::default();
    let (flips, flip_rx) = mpsc::channel(16);
    let metrics = AgentMetrics::new();
    let down = dialer.clone();
    let connector = Duplex(dialer);
    let starter = FakeStarter {
        flips: Some(flip_rx),
        ..FakeStarter::new(&log)
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let m = metrics.clone();
    let agent = tokio::spawn(async move {
        report::run_over(&args, connector, starter, m, async {
            let _ = stopped.await;
        })
        .await
    });
    Harness {
        sessions,
        log,
        flips,
        down,
        metrics,
        stop: Some(stop),
        agent,
    }
}

impl Harness {
    async fn session(&mut self) -> Side {
        let mut s = self.sessions.recv().await.expect("a session");
        let _ = s.hello().await;
        s
    }

    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.agent
            .await
            .expect("agent task")
            .expect("agent stops cleanly");
    }

    /// Lets the agent handle what was sent to it.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn target(id: u64, address: &str) -> v1::Target {
    v1::Target {
        id,
        address: address.into(),
        ..Default::default()
    }
}

/// An assignment of targets `ids` (at 127.0.0.x) reporting every `report_ms`.
fn assignment(generation: u64, ids: &[u64], report_ms: u32) -> v1::Assignment {
    v1::Assignment {
        generation,
        targets: ids
            .iter()
            .map(|&id| target(id, &format!("127.0.0.{}", id % 250 + 1)))
            .collect(),
        probe_interval_ms: 50,
        timeout_ms: 500,
        payload_sizes: vec![64],
        report_interval_ms: report_ms,
        down_after: 2,
    }
}

fn seqs(reports: &[v1::Report]) -> Vec<u64> {
    reports.iter().map(|r| r.seq).collect()
}

// ---- the tests ------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn hello_says_who_the_agent_is() {
    let mut h = start(args(10, Duration::from_secs(1)));
    let mut s = h.sessions.recv().await.expect("a session");
    let hello = s.hello().await;
    assert_eq!(hello.node, "node-a");
    assert_eq!(hello.pod, "agent-xyz");
    assert_eq!(hello.network, Network::Host as i32);
    assert_eq!(hello.addresses, ["10.0.0.1", "fd00::1"]);
    assert_eq!(hello.version, env!("CARGO_PKG_VERSION"));
    // The process start orders two agents of one node and network (wall clock, not paused).
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        hello.started_at_unix_ms > 0 && now_ms.saturating_sub(hello.started_at_unix_ms) < 60_000,
        "{} vs {now_ms}",
        hello.started_at_unix_ms
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn too_many_addresses_are_refused_before_connecting() {
    let mut a = args(10, Duration::from_secs(1));
    a.addresses = (1..=17u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
    let h = start(a);
    let err = h.agent.await.expect("task").expect_err("refused");
    assert!(matches!(err, RunError::Addresses(17)), "{err}");
}

#[tokio::test(start_paused = true)]
async fn assignments_reach_the_engine_and_reports_follow_every_interval() {
    let mut h = start(args(10, Duration::from_secs(1)));
    let mut s = h.session().await;
    // An assignment with one unusable target is refused whole, told to the aggregator and
    // counted; the agent keeps running and takes the next one.
    let mut bad = assignment(6, &[11, 12], 500);
    bad.targets.push(target(13, "not-an-address"));
    s.assign(bad).await;
    match s.next().await.msg {
        Some(agent_message::Msg::AssignmentRejected(r)) => {
            assert_eq!(r.generation, 6);
            assert_eq!(
                r.reason,
                "target 000000000000000d: \"not-an-address\" is not an IP address"
            );
        }
        other => panic!("expected AssignmentRejected, got {other:?}"),
    }
    assert!(
        lock(&h.log).started.is_empty(),
        "no engine for a refused assignment"
    );
    assert_eq!(h.metrics.assignments_rejected(), 1);
    s.assign(assignment(7, &[11, 12], 500)).await;
    let (t1, r1) = s.report().await;
    let (t2, r2) = s.report().await;
    let (t3, r3) = s.report().await;
    assert_eq!(seqs(&[r1.clone(), r2, r3]), [1, 2, 3]);
    assert_eq!(t2 - t1, Duration::from_millis(500));
    assert_eq!(t3 - t2, Duration::from_millis(500));
    assert_eq!(r1.generation, 7);
    let slots: Vec<(u64, u32)> = r1.targets.iter().map(|t| (t.target_id, t.slot)).collect();
    assert_eq!(slots, [(11, 0), (12, 1)]);
    assert_eq!((r1.targets[0].sent, r1.targets[0].received), (1, 1));
    {
        let l = lock(&h.log);
        let (settings, targets) = &l.started[0];
        assert_eq!(settings.interval, Duration::from_millis(50));
        assert_eq!(settings.timeout, Duration::from_millis(500));
        assert_eq!(settings.payload_size, 64);
        assert_eq!(settings.down_after, 2);
        let ids: Vec<u64> = targets.iter().map(|t| t.id).collect();
        assert_eq!(ids, [11, 12]);
    }

    // A new assignment goes to the running engine; reports follow its generation and interval.
    s.assign(assignment(8, &[12], 200)).await;
    let (t4, r4) = s.report().await;
    let (t5, r5) = s.report().await;
    assert_eq!(t5 - t4, Duration::from_millis(200));
    assert_eq!((r4.generation, r5.generation), (8, 8));
    assert_eq!(r5.targets.len(), 1);
    assert_eq!((r5.targets[0].target_id, r5.targets[0].slot), (12, 0));
    {
        let l = lock(&h.log);
        assert_eq!(l.started.len(), 1, "one engine for the whole run");
        assert_eq!(l.assigned.len(), 1);
    }

    // A reachability flip goes out at once as an Alert with the slot and generation in force.
    h.flips
        .send(TargetFlip {
            id: 12,
            addr: "127.0.0.13".parse().expect("ip"),
            reachable: false,
            consecutive_losses: 2,
        })
        .await
        .expect("engine flips");
    let sent_at = Instant::now();
    match s.next().await.msg {
        Some(agent_message::Msg::Alert(a)) => {
            assert_eq!((a.target_id, a.slot, a.generation), (12, 0, 8));
            assert!(!a.reachable);
            assert_eq!(a.consecutive_losses, 2);
        }
        other => panic!("expected an Alert, got {other:?}"),
    }
    assert_eq!(
        Instant::now(),
        sent_at,
        "alerts do not wait for the report tick"
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn acks_remove_reports_from_the_buffer() {
    let mut h = start(args(10, Duration::from_secs(1)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[1], 100)).await;
    for _ in 0..3 {
        s.report().await;
    }
    h.settle().await;
    assert_eq!(h.metrics.replay().buffered, 3);
    s.ack(2).await;
    h.settle().await;
    assert_eq!(h.metrics.replay().buffered, 1);

    // Only the unacknowledged report is replayed on the next session.
    drop(s);
    let mut s = h.session().await;
    s.assign(assignment(2, &[1], 100)).await;
    let (_, r) = s.report().await;
    assert_eq!(r.seq, 3);
    assert_eq!(h.metrics.replay().dropped, 0);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn reconnects_back_off_more_each_time_and_start_over_after_a_good_session() {
    let mut h = start(args(10, Duration::from_millis(400)));
    // Sessions that end before any assignment: each wait is in [d/2, d], d = 100, 200, 400, 400 ms.
    let mut s = h.session().await;
    for cap in [100u64, 200, 400, 400] {
        let dropped_at = Instant::now();
        drop(s);
        s = h.session().await;
        let waited = s.opened - dropped_at;
        let cap = Duration::from_millis(cap);
        assert!(
            waited >= cap / 2 && waited <= cap + Duration::from_millis(1),
            "waited {waited:?}, expected within [{:?}, {cap:?}]",
            cap / 2
        );
    }
    // A refused connection backs off the same way.
    h.down.set_down(true);
    let dropped_at = Instant::now();
    drop(s);
    tokio::time::sleep(Duration::from_millis(900)).await;
    h.down.set_down(false);
    let s2 = h.session().await;
    assert!(s2.opened - dropped_at >= Duration::from_millis(900));

    // A session ended right after its assignment (kicked by an impostor, say) keeps backing off.
    s2.assign(assignment(1, &[1], 1000)).await;
    h.settle().await;
    let dropped_at = Instant::now();
    drop(s2);
    let s2 = h.session().await;
    assert!(
        s2.opened - dropped_at >= Duration::from_millis(200),
        "waited {:?} after a session that did not last",
        s2.opened - dropped_at
    );

    // An assigned session that lasted was good: the next wait starts over at the minimum.
    s2.assign(assignment(2, &[1], 1000)).await;
    tokio::time::sleep(report::session::STABLE_SESSION).await;
    let dropped_at = Instant::now();
    drop(s2);
    let s3 = h.session().await;
    let waited = s3.opened - dropped_at;
    assert!(
        waited >= Duration::from_millis(50) && waited <= Duration::from_millis(101),
        "waited {waited:?} after a good session"
    );
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn replay_waits_for_an_assignment_covering_the_buffer() {
    let mut h = start(args(100, Duration::from_millis(100)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[1, 2], 1000)).await;
    for _ in 0..3 {
        s.report().await;
    }
    // The aggregator restarts; its first assignment holds only the peer that is back.
    drop(s);
    let mut s = h.session().await;
    s.assign(assignment(1, &[1], 1000)).await;
    assert!(
        s.within(Duration::from_millis(1500)).await.is_none(),
        "a replay now would drop the entries for target 2"
    );
    // Target 2 is back: everything goes out at once, in order, old reports first.
    s.assign(assignment(2, &[1, 2], 1000)).await;
    let got = s.drain_reports().await;
    assert_eq!(seqs(&got), [1, 2, 3, 4]);
    assert!(got[..3].iter().all(|r| r.targets.len() == 2));
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn replay_goes_out_after_the_grace_period_if_a_peer_never_returns() {
    let mut h = start(args(100, Duration::from_millis(100)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[1, 2], 1000)).await;
    s.report().await;
    s.report().await;
    drop(s);
    let mut s = h.session().await;
    s.assign(assignment(1, &[1], 1000)).await;
    // Grace: three report intervals (at least 2 s) after the session opened; the buffer goes out
    // on the first report tick past it.
    let (at, first) = s.report().await;
    let waited = at - s.opened;
    assert!(
        waited >= Duration::from_secs(3) && waited <= Duration::from_secs(4),
        "replayed after {waited:?}"
    );
    assert_eq!(first.seq, 1);
    let (_, second) = s.report().await;
    assert_eq!(second.seq, 2);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_drops_the_oldest_reports_and_counts_them() {
    let mut h = start(args(5, Duration::from_millis(200)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[1], 100)).await;
    let (_, r) = s.report().await;
    s.ack(r.seq).await;
    h.settle().await;
    // The aggregator is gone for 12 report intervals.
    h.down.set_down(true);
    drop(s);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = h.metrics.replay();
    assert_eq!(status.buffered, 5);
    assert!(status.dropped >= 6, "{status:?}");
    h.down.set_down(false);
    let mut s = h.session().await;
    s.assign(assignment(2, &[1], 100)).await;
    let mut got = vec![s.report().await.1];
    // The replay went out with the assignment, before another report tick.
    let dropped = h.metrics.replay().dropped;
    for _ in 0..4 {
        got.push(s.report().await.1);
    }
    // The oldest went first: what is left is the newest five, in order.
    let first = got[0].seq;
    assert_eq!(first, 2 + dropped, "reports 2..{first} were dropped");
    assert_eq!(seqs(&got), (first..first + 5).collect::<Vec<_>>());
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_aggregator_delays_reports_but_loses_none() {
    // Large reports (200 targets) so the transport's windows fill within a few reports.
    let ids: Vec<u64> = (1..=200).collect();
    let mut h = start(args(1000, Duration::from_secs(1)));
    let mut s = h.session().await;
    s.assign(assignment(1, &ids, 100)).await;
    s.report().await;
    // It stops reading for 60 s: 600 reports, more than the transport and the send queue hold.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let stalled = h.metrics.replay();
    assert!(stalled.buffered >= 600, "{stalled:?}");
    assert_eq!(stalled.dropped, 0);
    // It reads again and acks: every report arrives once, in order, and the buffer empties.
    let mut next = 2;
    while next <= 620 {
        let (_, r) = s.report().await;
        assert_eq!(r.seq, next, "reports arrive in order without gaps");
        s.ack(r.seq).await;
        next += 1;
    }
    h.settle().await;
    assert!(h.metrics.replay().buffered <= 2, "{:?}", h.metrics.replay());
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_aggregator_cannot_grow_the_agent_without_bound() {
    let mut h = start(args(50, Duration::from_secs(1)));
    let mut s = h.session().await;
    s.assign(assignment(1, &(1..=200).collect::<Vec<_>>(), 100))
        .await;
    s.report().await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    // 1,200 windows taken; only the newest 50 are kept, the rest counted as dropped.
    let windows = lock(&h.log).windows_taken;
    assert!(windows >= 1200, "{windows}");
    assert_eq!(
        h.metrics.replay(),
        ReplayStatus {
            buffered: 50,
            dropped: windows - 50,
        }
    );
    drop(s);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn told_a_newer_agent_is_active_it_stands_by_and_replays_when_it_takes_over() {
    let mut h = start(args(100, Duration::from_millis(400)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[1], 1000)).await;
    let (_, r) = s.report().await;
    assert_eq!(r.seq, 1);
    // A newer pod of the same node and network took the session.
    let refused_at = Instant::now();
    s.outbound
        .send(Err(Status::already_exists(
            "a newer agent of the same node and network is active (pod \"agent-new\"); standing by until it goes away",
        )))
        .await
        .expect("send");
    drop(s);
    // Not the 100 ms backoff: it asks again only after the standby wait.
    let s = h.session().await;
    let waited = s.opened - refused_at;
    assert!(
        waited >= report::standby::STANDBY_WAIT
            && waited <= report::standby::STANDBY_WAIT + Duration::from_millis(10),
        "asked again after {waited:?}"
    );
    // Still refused: it stands by again instead of retrying.
    let refused_at = Instant::now();
    s.outbound
        .send(Err(Status::already_exists("a newer agent is active")))
        .await
        .expect("send");
    drop(s);
    let mut s = h.session().await;
    assert!(s.opened - refused_at >= report::standby::STANDBY_WAIT);
    // The newer agent is gone: this session is accepted, and what was measured meanwhile
    // (it kept probing) is replayed in order.
    s.assign(assignment(2, &[1], 1000)).await;
    let got = seqs(&s.drain_reports().await);
    // Report 1 was never acked; everything from it on goes out.
    assert!(got.len() >= 60, "{got:?}");
    assert_eq!(got[0], 1);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1), "{got:?}");
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_refused_open_for_standby_also_waits_long() {
    let mut h = start(args(100, Duration::from_millis(400)));
    let s = h.sessions.recv().await.expect("a session");
    let refused_at = Instant::now();
    // Refused before the Hello is read: the agent sees the status when it opens the stream.
    s.outbound
        .send(Err(Status::already_exists("a newer agent is active")))
        .await
        .expect("send");
    drop(s);
    let s = h.session().await;
    assert!(s.opened - refused_at >= report::standby::STANDBY_WAIT);
    h.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_target_that_changes_address_under_its_id_is_probed_at_the_new_one() {
    let mut h = start(args(100, Duration::from_millis(400)));
    let mut s = h.session().await;
    s.assign(assignment(1, &[7], 1000)).await;
    s.report().await;
    // The target's agent moved to a new pod IP: the id stays, only the address changes.
    let mut a = assignment(2, &[7], 1000);
    a.targets[0].address = "127.0.0.99".into();
    s.assign(a).await;
    h.settle().await;
    let assigned = lock(&h.log).assigned.last().cloned().expect("assigned");
    assert_eq!(
        assigned.1,
        [TargetSpec {
            id: 7,
            addr: "127.0.0.99".parse().expect("ip")
        }]
    );
    let (_, r) = s.report().await;
    assert_eq!(r.generation, 2);
    assert_eq!(r.targets.len(), 1);
    assert_eq!((r.targets[0].target_id, r.targets[0].slot), (7, 0));
    h.finish().await;
}
