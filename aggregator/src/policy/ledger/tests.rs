//! The ledger over a real graph in paused time: pairs dropped by a reassignment keep their time,
//! overdue pairs are counted only once both ends have had a whole period, old stamps clamp.

use std::time::Duration;

use echomesh_proto::v1::{self, Network};

use super::*;
use crate::graph::{AgentInfo, EventHub, GraphConfig};

const PERIOD: Duration = Duration::from_secs(60);

fn key(node: &str) -> AgentKey {
    AgentKey {
        node: node.into(),
        network: Network::Pod,
    }
}

fn addr(node: &str) -> IpAddr {
    let i = node.as_bytes()[0] - b'a' + 1;
    format!("10.0.0.{i}").parse().expect("ip")
}

fn id(node: &str) -> u64 {
    endpoint_id(node, Network::Pod, addr(node))
}

struct Cluster {
    g: Graph,
    agents: Vec<Arc<AgentEntry>>,
    generation: u64,
    seq: u64,
}

impl Cluster {
    fn new(nodes: &[&str]) -> Self {
        let g = Graph::new(GraphConfig::default(), EventHub::new(16, 4));
        let agents = nodes
            .iter()
            .map(|n| {
                g.upsert_agent(
                    key(n),
                    AgentInfo {
                        addresses: vec![addr(n)],
                        boot_id: 7,
                        connected: true,
                        ..AgentInfo::default()
                    },
                )
            })
            .collect();
        Self {
            g,
            agents,
            generation: 0,
            seq: 0,
        }
    }

    fn agent(&self, node: &str) -> &Arc<AgentEntry> {
        self.agents
            .iter()
            .find(|a| &*a.key.node == node)
            .expect("agent")
    }

    /// `prober` gets `targets` (folding its old records into `ledger` first, as the assigner does).
    fn assign(&mut self, ledger: &PairLedger, prober: &str, targets: &[&str]) {
        self.generation += 1;
        let a = self.agent(prober).clone();
        ledger.absorb(&self.g, &a, PERIOD);
        let ids: Vec<u64> = targets.iter().map(|t| id(t)).collect();
        self.g
            .apply_assignment(&a, self.generation, &ids, Duration::from_secs(1));
    }

    /// One report from `prober` with probes sent to every target of its assignment.
    fn report(&mut self, prober: &str) {
        self.seq += 1;
        let a = self.agent(prober).clone();
        let (generation, ids) = {
            let s = a.slab.lock();
            (
                s.generation,
                s.records.iter().map(|r| r.target_id).collect::<Vec<_>>(),
            )
        };
        let targets = ids
            .iter()
            .enumerate()
            .map(|(slot, &target_id)| v1::TargetStats {
                target_id,
                slot: slot as u32,
                sent: 10,
                received: 10,
                ..v1::TargetStats::default()
            })
            .collect();
        let r = v1::Report {
            seq: self.seq,
            generation,
            targets,
            ..v1::Report::default()
        };
        self.g.merge_report(&a, &r).expect("merged");
    }
}

async fn pass(d: Duration) {
    tokio::time::sleep(d).await;
}

#[tokio::test(start_paused = true)]
async fn a_pair_rotated_out_keeps_its_last_probe_and_turns_overdue_after_the_period() {
    let ledger = PairLedger::default();
    let mut c = Cluster::new(&["a", "b", "c"]);
    c.assign(&ledger, "a", &["b"]);
    c.report("a");
    pass(Duration::from_secs(10)).await;
    // The rotation moves a on from b to c: the a -> b record goes, its time stays.
    c.assign(&ledger, "a", &["c"]);
    c.report("a");

    let towards_b = ledger.inbound(&c.g, "b", PERIOD).expect("b is connected");
    assert_eq!(towards_b.len(), 2, "{towards_b:?}");
    // Never probed first, then by age.
    assert_eq!(towards_b[0].prober, key("c"));
    assert_eq!(towards_b[0].age, None);
    assert_eq!(towards_b[1].prober, key("a"));
    assert!(!towards_b[1].in_pinglist);
    let age = towards_b[1].age.expect("probed");
    assert!(
        age >= Duration::from_secs(10) && age <= Duration::from_secs(11),
        "{age:?}"
    );
    // The live pair is exact.
    let towards_c = ledger.inbound(&c.g, "c", PERIOD).expect("c");
    let a_c = towards_c.iter().find(|p| p.prober == key("a")).expect("a");
    assert_eq!(a_c.age, Some(Duration::ZERO));
    assert!(a_c.in_pinglist);

    // 3 agents, 2 targets each. Nobody has had a whole period yet: nothing is overdue.
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!((s.pairs, s.never, s.overdue), (6, 4, 0), "{s:?}");
    assert_eq!(s.period, PERIOD);

    // A period later every pair is overdue: four never probed, a -> b and a -> c too old.
    pass(PERIOD + Duration::from_secs(2)).await;
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!((s.pairs, s.never, s.overdue), (6, 4, 6), "{s:?}");
    assert!(s.oldest_age > PERIOD, "{s:?}");

    // Probing a pair again takes it out of the count at the next computation.
    c.report("a");
    let cached = ledger.summary(&c.g, PERIOD);
    assert_eq!(cached.overdue, 6, "figures are cached for a few seconds");
    pass(SUMMARY_MAX_AGE).await;
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!((s.never, s.overdue), (4, 5), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn every_pair_probed_within_the_period_means_nothing_overdue_and_oldest_below_it() {
    let ledger = PairLedger::default();
    let nodes = ["a", "b", "c", "d"];
    let mut c = Cluster::new(&nodes);
    // Each agent probes one peer per 10 s, round robin: every pair every 30 s.
    for round in 0..12 {
        for (i, p) in nodes.iter().enumerate() {
            let others: Vec<&str> = nodes.iter().copied().filter(|n| n != p).collect();
            let t = others[(round + i) % others.len()];
            c.assign(&ledger, p, &[t]);
            c.report(p);
        }
        pass(Duration::from_secs(10)).await;
    }
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!((s.pairs, s.never, s.overdue), (12, 0, 0), "{s:?}");
    assert!(s.oldest_age <= Duration::from_secs(32), "{s:?}");
    assert!(s.oldest_age >= Duration::from_secs(20), "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn old_stamps_clamp_to_overdue_and_gone_agents_leave() {
    let ledger = PairLedger::default();
    let mut c = Cluster::new(&["a", "b", "c"]);
    // Ends count from when the ledger first saw them connected (a scrape, a Coverage call).
    let _ = ledger.summary(&c.g, PERIOD);
    c.assign(&ledger, "a", &["b"]);
    c.report("a");
    c.assign(&ledger, "a", &[]);
    // Far beyond the stamps' range (about two periods): the stamp clamps, still overdue.
    pass(PERIOD * 10).await;
    let towards_b = ledger.inbound(&c.g, "b", PERIOD).expect("b");
    let a_b = towards_b.iter().find(|p| p.prober == key("a")).expect("a");
    let age = a_b.age.expect("still known to have been probed");
    assert!(age >= PERIOD, "{age:?}");
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!((s.pairs, s.never, s.overdue), (6, 5, 6), "{s:?}");

    // A disconnected agent is no longer a pair end; after two periods it leaves the ledger.
    c.g.disconnect_agent(&key("c"));
    assert_eq!(ledger.inbound(&c.g, "c", PERIOD), None);
    pass(SUMMARY_MAX_AGE).await;
    let s = ledger.summary(&c.g, PERIOD);
    assert_eq!(s.pairs, 2, "{s:?}");
    pass(PERIOD * 5).await;
    let _ = ledger.summary(&c.g, PERIOD);
    let m = ledger.m.lock();
    assert_eq!(m.rows.len(), 2);
    assert!(m.cols.iter().all(|col| &*col.node_name != "c"));
    assert!(m.rows.iter().all(|r| r.stamps.len() <= m.cols.len()));
}
