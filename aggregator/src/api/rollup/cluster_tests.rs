//! The roll-ups and the matrix limit on graphs filled in memory: 5,000 nodes in zones of 500,
//! each probing the next ten nodes, with one zone cut off.

use std::sync::Arc;
use std::time::Duration;

use echomesh_proto::v1::{self, NodeSort};
use echomesh_testkit::aggregator::mesh::{Mesh, node_name as name};
use tonic::{Code, Request};

use crate::api::Query;
use crate::api::matrix::MAX_NODES;
use crate::graph::{EventHub, Graph, GraphConfig};
use crate::ingest::{Ingest, IngestConfig};
use crate::policy::FullMesh;

const PEERS: usize = 10;
const ZONE: usize = 500;

fn zone(i: usize) -> String {
    format!("zone-{}", i / ZONE)
}

echomesh_testkit::graph_filler!(crate::graph);

/// `n` pod-network nodes in zones of [`ZONE`] (the last [`ZONE`] without a zone when
/// `unzoned_tail`), each probing the next [`PEERS`] nodes, after three reports; every probe from
/// or to zone-0 is lost.
fn cluster(n: usize, unzoned_tail: bool) -> Query {
    let graph = Arc::new(Graph::new(GraphConfig::default(), EventHub::new(16, 1)));
    Mesh {
        nodes: n,
        peers: &|i| (1..=PEERS).map(|d| (i + d) % n).collect(),
        lost: &|i, j| if i < ZONE || j < ZONE { 10 } else { 0 },
        sent: 10,
        rtt_us: &[150; 10],
        reports: 3,
        report_interval: Duration::from_secs(1),
    }
    .fill(&GraphFill(&graph));
    graph.set_node_zones(
        (0..n)
            .filter(|&i| !(unzoned_tail && i >= n - ZONE))
            .map(|i| (name(i).into(), zone(i).into()))
            .collect(),
    );
    let ingest = Ingest::new(graph.clone(), IngestConfig::default(), Arc::new(FullMesh));
    Query::new(graph, ingest)
}

fn matrix(q: &Query, zone: Option<&str>) -> Result<v1::MatrixResponse, tonic::Status> {
    q.matrix_blocking(Request::new(v1::MatrixRequest {
        zone: zone.map(str::to_string),
        ..v1::MatrixRequest::default()
    }))
    .map(tonic::Response::into_inner)
}

fn summary(
    q: &Query,
    req: v1::NodeSummaryRequest,
) -> Result<v1::NodeSummaryResponse, tonic::Status> {
    q.node_summary_blocking(Request::new(req))
        .map(tonic::Response::into_inner)
}

#[test]
fn at_5000_nodes_the_matrix_is_refused_without_a_zone_and_zooms_into_one() {
    let q = cluster(5_000, false);
    let e = matrix(&q, None).expect_err("5,000 nodes are above the limit");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().starts_with(&format!(
            "a matrix of 5000 nodes is above the limit of {MAX_NODES} nodes; zoom into one zone"
        )),
        "{}",
        e.message()
    );
    assert!(
        e.message()
            .contains("zones: zone-0 (500 nodes), zone-1 (500 nodes)"),
        "{}",
        e.message()
    );
    assert!(
        e.message().ends_with("zone-9 (500 nodes)"),
        "{}",
        e.message()
    );

    let m = matrix(&q, Some("zone-3")).expect("one zone");
    assert_eq!(m.nodes.len(), ZONE);
    assert_eq!(m.values.len(), ZONE * ZONE);
    assert_eq!(m.nodes[0], "node-1500");
    // node-1500 probes node-1501..=1510: measured, no loss.
    assert!(m.values[1].abs() < f64::EPSILON, "{}", m.values[1]);
    assert!(m.values[0].is_nan());

    let e = matrix(&q, Some("nowhere")).expect("an unknown zone is an empty matrix");
    assert!(e.nodes.is_empty());
}

#[test]
fn a_zone_too_large_for_the_matrix_is_refused_too() {
    // 1,500 nodes of which 1,000 have no zone: the unknown zone "" alone is above the limit.
    let mut q = cluster(1_500, false);
    q.graph
        .set_node_zones([(name(0).into(), zone(0).into())].into());
    let e = matrix(&q, Some("")).expect_err("the unknown zone holds 1,499 nodes");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(
        e.message().contains("zone \"-\" alone has that many"),
        "{}",
        e.message()
    );
    q = cluster(900, false);
    assert_eq!(matrix(&q, None).expect("small enough").nodes.len(), 900);
}

#[test]
fn the_node_summary_puts_the_cut_zone_first_and_pages() {
    let q = cluster(5_000, true);
    let r = summary(&q, v1::NodeSummaryRequest::default()).expect("summary");
    assert_eq!(r.total, 5_000);
    assert_eq!(r.nodes.len(), 100, "the default page");
    assert_eq!(r.next_page_token, "off:100");
    let first = &r.nodes[0];
    assert_eq!(first.zone, "zone-0");
    let (i, o) = (
        first.r#in.unwrap_or_default(),
        first.out.unwrap_or_default(),
    );
    assert_eq!((i.down, o.down), (PEERS as u32, PEERS as u32), "{first:?}");
    assert!((o.loss_pct - 100.0).abs() < 1e-9);
    assert!(first.badness >= 2e7, "{}", first.badness);
    assert_eq!(first.probers, 4_999, "full mesh: every other agent");
    assert!(r.nodes.iter().all(|n| n.zone == "zone-0"));

    // The last page: healthy nodes, UP both ways, the median p99 of their edges.
    let last = summary(
        &q,
        v1::NodeSummaryRequest {
            page_token: "off:4990".into(),
            ..v1::NodeSummaryRequest::default()
        },
    )
    .expect("last page");
    assert_eq!(last.nodes.len(), 10);
    assert!(last.next_page_token.is_empty());
    let h = last.nodes[9].r#in.unwrap_or_default();
    assert_eq!((h.up, h.down, h.unknown), (PEERS as u32, 0, 0));
    assert!((140.0..160.0).contains(&h.p99_us), "{}", h.p99_us);

    // One zone, by name; the nodes without a zone are the zone "".
    let z = summary(
        &q,
        v1::NodeSummaryRequest {
            zone: Some(String::new()),
            sort: NodeSort::Name as i32,
            limit: 10_000,
            ..v1::NodeSummaryRequest::default()
        },
    )
    .expect("unknown zone");
    assert_eq!(z.total as usize, ZONE);
    assert_eq!(z.nodes[0].node, "node-4500");
    assert!(z.nodes.iter().all(|n| n.zone.is_empty()));
}

#[test]
fn bad_node_summary_requests_say_what_is_wrong() {
    let q = cluster(20, false);
    let bad = |req: v1::NodeSummaryRequest| summary(&q, req).expect_err("refused");
    let e = bad(v1::NodeSummaryRequest {
        limit: 10_001,
        ..v1::NodeSummaryRequest::default()
    });
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.message(), "limit must be at most 10000, got 10001");
    let e = bad(v1::NodeSummaryRequest {
        page_token: "page 2".into(),
        ..v1::NodeSummaryRequest::default()
    });
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("not a token"), "{}", e.message());
    let e = bad(v1::NodeSummaryRequest {
        sort: 9,
        ..v1::NodeSummaryRequest::default()
    });
    assert_eq!(e.message(), "sort: unknown value 9");
    let e = bad(v1::NodeSummaryRequest {
        network: 7,
        ..v1::NodeSummaryRequest::default()
    });
    assert_eq!(e.message(), "network: unknown value 7");
}

#[test]
fn the_zone_matrix_shows_the_cut_zone_as_its_row_and_column() {
    let q = cluster(5_000, true);
    let z = q
        .zone_matrix_blocking(Request::new(v1::ZoneMatrixRequest::default()))
        .expect("zones")
        .into_inner();
    let names: Vec<&str> = z.zones.iter().map(String::as_str).collect();
    assert_eq!(names[0], "zone-0");
    assert_eq!(names.last().copied(), Some(""), "the unknown zone last");
    assert_eq!(names.len(), 10);
    let cell = |f: &str, t: &str| {
        z.cells
            .iter()
            .find(|c| c.from_zone == f && c.to_zone == t)
            .unwrap_or_else(|| panic!("no cell {f} -> {t}"))
    };
    let inside = cell("zone-0", "zone-0");
    assert_eq!((inside.edges, inside.down), (4_945, 4_945));
    let out = cell("zone-0", "zone-1");
    assert_eq!((out.edges, out.down, out.loss_pct as u32), (55, 55, 100));
    let fine = cell("zone-2", "zone-2");
    assert_eq!((fine.up, fine.down), (4_945, 0));
    assert!((140.0..160.0).contains(&fine.p99_us), "{}", fine.p99_us);
    // The ring wraps: the unknown zone (the last 500 nodes) probes zone-0.
    assert_eq!(cell("", "zone-0").down, 55);
    let total: u64 = z.cells.iter().map(|c| c.edges).sum();
    assert_eq!(total, 50_000);
    let e = q
        .zone_matrix_blocking(Request::new(v1::ZoneMatrixRequest { network: 9 }))
        .expect_err("bad network");
    assert_eq!(e.message(), "network: unknown value 9");
}
