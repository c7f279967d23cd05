//! The rule on generated fault patterns: each pattern names what it should, gray loss names no
//! node, and precision and recall over many seeded cases stay above a floor.

use std::sync::Arc;

use echomesh_proto::v1::{EdgeState, Network};

use super::model::{AgentObs, Direction, EdgeObs, Kind, Snapshot};
use super::scenarios::{self, Cluster, Fault, PATTERNS, Rng, node_name};
use super::{Settings, diagnose};

fn run(pattern: &str, seed: u64) -> (super::Diagnosis, Vec<scenarios::Truth>) {
    let (snap, truth) = scenarios::case(pattern, seed);
    (diagnose(&snap, &Settings::default()), truth)
}

fn cluster(nodes: usize) -> Cluster {
    Cluster {
        nodes,
        zones: 3,
        both_planes: true,
        dual_stack: true,
    }
}

#[test]
fn a_healthy_cluster_says_so_in_one_line() {
    let (snap, _) = cluster(4).generate(&[], &mut Rng::new(1));
    let d = diagnose(&snap, &Settings::default());
    assert!(d.healthy());
    assert_eq!(d.summary(0), "healthy: 4 nodes, 48 edges UP");
}

#[test]
fn a_node_down_is_one_node_culprit_with_its_silent_agent() {
    let (snap, _) = cluster(30).generate(&[Fault::NodeDown(7)], &mut Rng::new(2));
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    let c = &d.culprits[0];
    assert_eq!((c.kind, &*c.subject), (Kind::Node, "node07"));
    assert_eq!(c.direction, Direction::In);
    assert!(c.agent_silent);
    assert_eq!((c.failing, c.total), (29 * 2 * 2, 29 * 2 * 2));
    assert!(c.confidence > 0.9, "{c:?}");
    assert_eq!(d.unexplained(), 0);
    assert!(c.since_unix_ms > 0);
}

#[test]
fn a_broken_cni_names_the_pod_network_only() {
    let (snap, _) = cluster(20).generate(&[Fault::CniBroken(3)], &mut Rng::new(3));
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    let c = &d.culprits[0];
    assert_eq!((c.kind, &*c.subject), (Kind::PodNetwork, "node03"));
    assert_eq!((c.plane, c.direction), (Network::Pod, Direction::Both));
}

#[test]
fn one_way_loss_names_the_node_and_the_direction() {
    for dir in [Direction::In, Direction::Out] {
        let (snap, _) = cluster(25).generate(&[Fault::OneWay(11, dir)], &mut Rng::new(4));
        let d = diagnose(&snap, &Settings::default());
        assert_eq!(d.culprits.len(), 1, "{dir:?}: {:#?}", d.culprits);
        let c = &d.culprits[0];
        assert_eq!(
            (c.kind, &*c.subject, c.direction),
            (Kind::Node, "node11", dir)
        );
        assert!(!c.agent_silent);
    }
}

#[test]
fn a_zone_partition_is_one_zone_culprit() {
    let (snap, _) = cluster(30).generate(&[Fault::ZonePartition(1)], &mut Rng::new(5));
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    let c = &d.culprits[0];
    assert_eq!((c.kind, &*c.subject), (Kind::Zone, "zone-b"));
    assert_eq!(c.direction, Direction::Both);
    assert_eq!(d.unexplained(), 0);
}

#[test]
fn a_single_bad_link_is_a_link() {
    let (snap, _) = cluster(20).generate(&[Fault::BadLink(2, 9)], &mut Rng::new(6));
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    let c = &d.culprits[0];
    assert_eq!(c.kind, Kind::Link);
    assert_eq!(
        (&*c.subject, c.target.as_deref()),
        ("node02", Some("node09"))
    );
    assert_eq!(c.plane, Network::Unspecified, "both networks fail");
    assert_eq!((c.failing, c.total), (4, 4));
}

#[test]
fn gray_loss_on_random_links_never_names_a_node_or_zone() {
    for seed in 0..200 {
        let (d, _) = run("gray loss", seed);
        for c in &d.culprits {
            assert_eq!(c.kind, Kind::Link, "seed {seed}: {c:?}");
        }
    }
    // Heavy gray loss: a third of all links lossy still names no node.
    let mut rng = Rng::new(77);
    let faults = scenarios::random_links(30, 300, &[], &mut rng);
    let (snap, _) = cluster(30).generate(&faults, &mut rng);
    let d = diagnose(&snap, &Settings::default());
    assert!(d.culprits.iter().all(|c| c.kind == Kind::Link));
}

#[test]
fn several_faults_at_once_are_each_named() {
    let faults = [
        Fault::NodeDown(1),
        Fault::CniBroken(5),
        Fault::OneWay(9, Direction::In),
        Fault::BadLink(12, 13),
        Fault::BadLink(20, 3),
    ];
    let (snap, truth) = cluster(40).generate(&faults, &mut Rng::new(8));
    let d = diagnose(&snap, &Settings::default());
    let (correct, named, found, total) = scenarios::score(&d, &truth);
    assert_eq!(
        (correct, named, found, total),
        (5, 5, 5, 5),
        "{:#?}",
        d.culprits
    );
}

#[test]
fn edges_towards_expected_down_nodes_are_no_culprit() {
    let (mut snap, _) = cluster(10).generate(&[Fault::NodeDown(4)], &mut Rng::new(9));
    for e in &mut snap.edges {
        e.expected_down = &*e.target == "node04";
    }
    for a in &mut snap.agents {
        a.expected_down = &*a.node == "node04";
    }
    let d = diagnose(&snap, &Settings::default());
    assert!(d.healthy(), "{:#?}", d.culprits);
    assert!(d.summary(0).contains("expected down"), "{}", d.summary(0));
}

#[test]
fn a_silent_agent_alone_is_named_and_most_agents_silent_is_a_stale_view() {
    let mut snap = Snapshot::default();
    let n = |i: usize| -> Arc<str> { Arc::from(node_name(i)) };
    for i in 0..6 {
        snap.agents.push(AgentObs {
            node: n(i),
            plane: Network::Host,
            stale: i == 0,
            expected_down: false,
            last_report_unix_ms: 1000,
        });
        for j in 0..6 {
            if i != j {
                snap.edges.push(EdgeObs {
                    source: n(i),
                    target: n(j),
                    plane: Network::Host,
                    state: if i == 0 {
                        EdgeState::Unknown
                    } else {
                        EdgeState::Up
                    },
                    loss_pct: 0.0,
                    expected_down: false,
                    since_unix_ms: 0,
                });
            }
        }
    }
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    assert_eq!(
        (d.culprits[0].kind, &*d.culprits[0].subject),
        (Kind::AgentSilent, "node00")
    );
    for a in &mut snap.agents[..4] {
        a.stale = true;
    }
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    assert_eq!(d.culprits[0].kind, Kind::ViewStale);
    assert_eq!((d.culprits[0].failing, d.culprits[0].total), (4, 6));
}

#[test]
fn an_empty_snapshot_is_healthy_with_nothing_to_say() {
    let d = diagnose(&Snapshot::default(), &Settings::default());
    assert!(d.healthy());
    assert_eq!(d.summary(0), "healthy: 0 nodes, 0 edges UP");
}

#[test]
fn precision_and_recall_stay_above_the_floor_on_every_pattern() {
    for pattern in PATTERNS {
        let (mut correct, mut named, mut found, mut total) = (0, 0, 0, 0);
        for seed in 0..40 {
            let (d, truth) = run(pattern, seed);
            let s = scenarios::score(&d, &truth);
            correct += s.0;
            named += s.1;
            found += s.2;
            total += s.3;
        }
        let precision = correct as f64 / named.max(1) as f64;
        let recall = found as f64 / total.max(1) as f64;
        assert!(
            precision >= 0.9 && recall >= 0.9,
            "{pattern}: precision {precision:.3}, recall {recall:.3}"
        );
    }
}

#[test]
fn edges_between_the_networks_of_one_node_are_left_out() {
    let (mut snap, _) = cluster(6).generate(&[Fault::NodeDown(2)], &mut Rng::new(10));
    // A pod agent probing its own node's host address (failing, to make it count if it did).
    snap.edges.push(EdgeObs {
        source: Arc::from(node_name(1)),
        target: Arc::from(node_name(1)),
        plane: Network::Pod,
        state: EdgeState::Down,
        loss_pct: 100.0,
        expected_down: false,
        since_unix_ms: 1,
    });
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    assert_eq!(&*d.culprits[0].subject, "node02");
    assert_eq!(d.unexplained(), 0);
}

#[test]
fn a_flaky_node_is_one_node_not_its_links() {
    let (snap, _) = cluster(30).generate(&[Fault::Flaky(4, 65)], &mut Rng::new(11));
    let d = diagnose(&snap, &Settings::default());
    assert_eq!(d.culprits.len(), 1, "{:#?}", d.culprits);
    assert_eq!(
        (d.culprits[0].kind, &*d.culprits[0].subject),
        (Kind::Node, "node04")
    );
    assert_eq!(d.unexplained(), 0);
}
