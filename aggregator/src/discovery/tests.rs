use echomesh_proto::v1::Network;

use super::*;
use crate::discovery::fixtures;

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
