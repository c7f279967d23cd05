//! Discovery of a 5,000-node cluster from the mocked API: paged lists followed to the end, watch
//! bookmarks that spare a re-list, a `410 Gone` that costs one paged re-list and nothing worse.
//!
//! Why through the mock and kube's real watcher: paging and bookmarks are settings whose effect
//! only shows in the requests the client makes, and a watcher that silently stopped paging would
//! still pass every small-cluster test.

use super::*;
use echomesh_testkit::k8s::mock_api::ListPage;

const NODES: u32 = 5_000;
const AGENTS: usize = 2 * NODES as usize;

/// The resident set of this process, bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The pages of `res` from index `from` on form exactly one list: the first without a token,
/// each next one sending the token the previous one answered, every one with the limit, the last
/// without a token, one resourceVersion throughout. Returns the objects listed.
fn one_paged_list(pages: &[ListPage], res: Res) -> usize {
    let pages: Vec<&ListPage> = pages.iter().filter(|p| p.res == res).collect();
    assert!(!pages.is_empty(), "{res:?} was never listed");
    let limit = Some(LIST_PAGE_SIZE as usize);
    assert_eq!(pages[0].continue_in, None, "{res:?}: first page");
    for (i, p) in pages.iter().enumerate() {
        assert_eq!(p.limit, limit, "{res:?} page {i} asked without the limit");
        assert!(p.items <= LIST_PAGE_SIZE as usize, "{p:?}");
        assert_eq!(p.resource_version, pages[0].resource_version, "{p:?}");
        if i > 0 {
            assert_eq!(
                p.continue_in,
                pages[i - 1].continue_out,
                "{res:?} page {i} did not follow the continue token"
            );
        }
    }
    assert_eq!(pages.last().expect("pages").continue_out, None);
    pages.iter().map(|p| p.items).sum()
}

#[tokio::test(start_paused = true)]
async fn five_thousand_nodes_list_in_pages_resume_from_bookmarks_and_relist_after_gone() {
    let (nodes, pods) = fixtures::cluster(NODES);
    let rss_before = rss();
    let wall = std::time::Instant::now();
    let r = Running::start_with(nodes, pods, |_| {});
    r.until("the 5,000-node model", |r| r.nodes() == NODES as usize)
        .await;
    let took = wall.elapsed();
    let grew = rss().saturating_sub(rss_before);

    // Every page asked with the limit, the continue token followed to the last page.
    let pages = r.api.pages();
    assert_eq!(one_paged_list(&pages, Res::Nodes), NODES as usize);
    assert_eq!(one_paged_list(&pages, Res::Pods), AGENTS);
    assert_eq!(
        pages.iter().filter(|p| p.res == Res::Nodes).count(),
        (NODES / LIST_PAGE_SIZE) as usize
    );

    // The model: every node, every agent, and each agent's targets are the other nodes' two.
    let model = r.pinglist.model().expect("model");
    assert_eq!(model.agents.len(), AGENTS);
    assert_eq!(model.endpoints().len(), AGENTS);
    let (_, pod_ip) = fixtures::cluster_addresses(17);
    let agent = AgentKey {
        node: fixtures::cluster_node_name(17).into(),
        network: Network::Pod,
    };
    let targets = model.targets(&agent, &[IpAddr::V4(pod_ip)]);
    assert_eq!(targets.len(), AGENTS - 2);
    assert!(targets.iter().all(|t| *t.node != *agent.node));

    // Generous bounds: a debug build on a loaded 2-core machine lists and models 15,000 objects
    // in a few seconds and well under a gigabyte (objects, stores and model together).
    assert!(
        took < Duration::from_secs(120),
        "initial sync took {took:?}"
    );
    assert!(grew < 1 << 30, "initial sync grew the RSS by {grew} bytes");

    // Watches ask for bookmarks; a bookmark is taken as the version to resume from, so a watch
    // that ends resumes there without listing again.
    r.until("node watch open", |r| r.api.open_watches(Res::Nodes) == 1)
        .await;
    let watches = |r: &Running| -> Vec<String> {
        r.api
            .requests()
            .into_iter()
            .filter(|q| q.contains("/api/v1/nodes?") && q.contains("watch=true"))
            .collect()
    };
    assert!(
        watches(&r)
            .iter()
            .all(|q| q.contains("allowWatchBookmarks=true")),
        "{:?}",
        watches(&r)
    );
    let lists_before = r.api.lists(Res::Nodes);
    let watched = watches(&r).len();
    let rv = r.api.bookmark(Res::Nodes);
    tokio::time::sleep(Duration::from_millis(10)).await;
    r.api.close_watches(Res::Nodes);
    r.until("the watch resumed", |r| watches(r).len() > watched)
        .await;
    let resumed = watches(&r).last().cloned().expect("watch");
    assert!(
        resumed.contains(&format!("resourceVersion={rv}&"))
            || resumed.ends_with(&format!("resourceVersion={rv}")),
        "the watch did not resume from the bookmark's version {rv}: {resumed}"
    );
    assert_eq!(
        r.api.lists(Res::Nodes),
        lists_before,
        "no re-list after a bookmark"
    );

    // 410 Gone: one paged re-list (not a crash), which sees a change the watch never carried.
    r.until("node watch open", |r| r.api.open_watches(Res::Nodes) == 1)
        .await;
    let pages_before = r.api.pages().len();
    r.api
        .silently_delete_node(&fixtures::cluster_node_name(4_999));
    r.api.expire_watches(Res::Nodes);
    r.until("the re-listed model", |r| r.nodes() == NODES as usize - 1)
        .await;
    let relist = r.api.pages()[pages_before..].to_vec();
    assert_eq!(one_paged_list(&relist, Res::Nodes), NODES as usize - 1);
    assert!(!r.task.is_finished(), "discovery still runs");
    r.stop().await;
}
