//! The identity rule: node, network and family make a target; the address does not.

use std::net::IpAddr;

use echomesh_proto::v1::Network;

use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

#[test]
fn a_new_address_of_the_same_family_keeps_the_id() {
    assert_eq!(
        endpoint_id("n", Network::Pod, ip("10.244.1.7")),
        endpoint_id("n", Network::Pod, ip("10.244.1.42"))
    );
    assert_eq!(
        endpoint_id("n", Network::Pod, ip("fd00::7")),
        endpoint_id("n", Network::Pod, ip("fd00::42"))
    );
}

#[test]
fn node_network_and_family_each_make_a_distinct_target() {
    let base = endpoint_id("n", Network::Pod, ip("10.0.0.1"));
    assert_ne!(base, endpoint_id("m", Network::Pod, ip("10.0.0.1")));
    assert_ne!(base, endpoint_id("n", Network::Host, ip("10.0.0.1")));
    // Dual stack: one IPv4 and one IPv6 edge per node and network.
    assert_ne!(base, endpoint_id("n", Network::Pod, ip("fd00::1")));
    // An IPv4-mapped IPv6 address is an IPv6 target.
    assert_ne!(base, endpoint_id("n", Network::Pod, ip("::ffff:10.0.0.1")));
    assert_ne!(base, 0);
}

#[test]
fn ids_are_fixed_values_so_every_aggregator_agrees() {
    // Replayed reports are matched by id on whichever aggregator receives them: the hash (keys
    // and input layout) must not change between builds or runs, or with the address.
    for pod_ip in ["10.244.1.7", "10.244.9.9"] {
        assert_eq!(
            endpoint_id("kind-worker", Network::Pod, ip(pod_ip)),
            0x21e2_2962_853d_885b
        );
    }
    assert_eq!(
        endpoint_id("kind-worker", Network::Host, ip("fd00::1")),
        0x65b8_4756_f82a_bf6c
    );
}

#[test]
fn only_the_first_address_of_each_family_is_a_target() {
    let addrs = [ip("10.0.0.1"), ip("fd00::1"), ip("10.0.0.2"), ip("fd00::2")];
    assert_eq!(first_per_family(&addrs), [ip("10.0.0.1"), ip("fd00::1")]);
    assert_eq!(
        first_per_family(&[ip("fd00::1"), ip("10.0.0.1")]),
        [ip("fd00::1"), ip("10.0.0.1")]
    );
    assert!(first_per_family(&[]).is_empty());
}
