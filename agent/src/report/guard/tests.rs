use super::*;
use proptest::prelude::*;

fn target(id: u64, address: &str) -> v1::Target {
    v1::Target {
        id,
        address: address.into(),
        ..v1::Target::default()
    }
}

fn assignment(addrs: &[&str]) -> v1::Assignment {
    v1::Assignment {
        generation: 7,
        targets: addrs
            .iter()
            .enumerate()
            .map(|(i, a)| target(i as u64 + 1, a))
            .collect(),
        probe_interval_ms: 100,
        timeout_ms: 1000,
        payload_sizes: vec![56],
        report_interval_ms: 1000,
        down_after: 3,
    }
}

fn own() -> Vec<IpAddr> {
    vec!["198.18.0.1".parse().expect("ip")]
}

fn why(g: &Guard, a: &v1::Assignment) -> String {
    g.check(a).map(|_| ()).expect_err("refused").to_string()
}

#[test]
fn private_ranges_and_own_addresses_pass_by_default() {
    let g = Guard::new(&GuardArgs::default(), &own());
    let (s, t) = g
        .check(&assignment(&[
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "100.64.0.9",
            "fd00::2",
            "198.18.0.1",
        ]))
        .expect("allowed");
    assert_eq!(t.len(), 6);
    assert_eq!(s.interval, Duration::from_millis(100));
}

#[test]
fn public_and_special_addresses_are_refused_with_the_reason() {
    let g = Guard::new(&GuardArgs::default(), &own());
    assert_eq!(
        why(&g, &assignment(&["10.0.0.1", "198.51.100.7"])),
        "target 198.51.100.7 is outside --allow-cidr (10.0.0.0/8, 172.16.0.0/12, \
         192.168.0.0/16, 100.64.0.0/10, fc00::/7, 198.18.0.1/32)"
    );
    for (addr, kind) in [
        ("0.0.0.0", "unspecified"),
        ("127.0.0.1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("fe80::1", "link-local"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "IPv4-mapped"),
    ] {
        assert_eq!(
            why(&g, &assignment(&[addr])),
            format!(
                "target {addr} is a {kind} address; only unicast addresses are probed unless \
                 --allow-cidr names its block"
            ),
            "{addr}"
        );
    }
}

#[test]
fn a_broad_network_does_not_allow_special_blocks_but_a_narrow_one_does() {
    let g = Guard::new(&GuardArgs::allowing(&["0.0.0.0/0", "::/0"]), &[]);
    assert!(
        g.check(&assignment(&["198.51.100.7", "2001:db8::1"]))
            .is_ok()
    );
    for a in ["127.0.0.1", "224.0.0.1", "ff02::1", "::1", "0.0.0.0"] {
        assert!(g.check(&assignment(&[a])).is_err(), "{a}");
    }
    let g = Guard::new(&GuardArgs::allowing(&["127.0.0.0/8", "::1"]), &[]);
    assert!(g.check(&assignment(&["127.0.0.2", "::1"])).is_ok());
    assert!(
        g.check(&assignment(&["10.0.0.1"])).is_err(),
        "--allow-cidr replaces the defaults"
    );
}

#[test]
fn sizes_and_rates_are_bounded() {
    let args = GuardArgs {
        max_targets: 3,
        max_pps: 25,
        ..GuardArgs::default()
    };
    let g = Guard::new(&args, &[]);
    assert_eq!(
        why(&g, &assignment(&["10.0.0.1"; 4])),
        "4 targets exceed --max-targets 3"
    );
    let mut a = assignment(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    a.probe_interval_ms = 100;
    assert_eq!(
        why(&g, &a),
        "3 targets every 100 ms is 30 probes/s, above --max-pps 25"
    );
    a.probe_interval_ms = 200;
    assert!(g.check(&a).is_ok());
    a.targets[2].id = a.targets[0].id;
    assert_eq!(why(&g, &a), "target id 0000000000000001 appears twice");
}

#[test]
fn loose_settings_are_refused() {
    let g = Guard::new(&GuardArgs::default(), &[]);
    type Edit = fn(&mut v1::Assignment);
    let cases: [(Edit, &str); 6] = [
        (
            |a| a.probe_interval_ms = 0,
            "probe interval 0 ms: it must be at least 1 ms",
        ),
        (
            |a| a.timeout_ms = 3_600_000,
            "probe timeout 3600000 ms is above 60 s",
        ),
        (
            |a| a.report_interval_ms = 0,
            "report interval 0 ms is outside 1 ms..=600 s",
        ),
        (|a| a.down_after = 0, "down_after 0 is outside 1..=10000"),
        (|a| a.payload_sizes.clear(), "no payload size"),
        (
            |a| a.payload_sizes = vec![5],
            "invalid probe settings: payload size 5 is out of range",
        ),
    ];
    for (edit, want) in cases {
        let mut a = assignment(&["10.0.0.1"]);
        edit(&mut a);
        let got = why(&g, &a);
        assert!(got.starts_with(want), "{got} / {want}");
    }
    let mut a = assignment(&["10.0.0.1", "not-an-ip"]);
    a.targets[1].address = "x\u{1b}]0;".into();
    assert_eq!(
        why(&g, &a),
        "target 0000000000000002: \"x\\u{1b}]0;\" is not an IP address"
    );
}

#[test]
fn allow_cidr_flag_parses_networks_and_addresses() {
    assert_eq!(
        parse_cidr("10.1.2.3/8"),
        Ok("10.0.0.0/8".parse().expect("net"))
    );
    assert_eq!(parse_cidr("::1"), Ok("::1/128".parse().expect("net")));
    assert_eq!(
        parse_cidr("10.0.0.0/33"),
        Err("\"10.0.0.0/33\" is not a network (like 10.0.0.0/8) or an address".into())
    );
}

fn any_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|v| IpAddr::from(std::net::Ipv4Addr::from(v))),
        any::<u128>().prop_map(|v| IpAddr::from(std::net::Ipv6Addr::from(v))),
        // Bias towards the blocks with rules.
        (0u32..=0xff, any::<u32>())
            .prop_map(|(hi, lo)| IpAddr::from(std::net::Ipv4Addr::from((hi << 24) | (lo >> 8)))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    /// Whatever the assignment, the guard never panics, and what it lets through is within the
    /// bounds: no special address under the default allow list, no more targets or probes/s than
    /// allowed.
    #[test]
    fn intake_keeps_its_bounds(
        addrs in proptest::collection::vec(any_ip(), 0..40),
        junk in proptest::collection::vec(".{0,12}", 0..3),
        interval in 0u32..2000,
        timeout in 0u32..100_000,
        report in 0u32..1_000_000,
        down_after in 0u32..20_000,
        payload in proptest::collection::vec(0u32..100_000, 0..3),
        max_targets in 1u32..50,
        max_pps in 1u32..2000,
    ) {
        let args = GuardArgs { max_targets, max_pps, ..GuardArgs::default() };
        let g = Guard::new(&args, &[]);
        let mut texts: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        texts.extend(junk);
        let a = v1::Assignment {
            generation: 1,
            targets: texts.iter().enumerate().map(|(i, t)| target(i as u64, t)).collect(),
            probe_interval_ms: interval,
            timeout_ms: timeout,
            payload_sizes: payload,
            report_interval_ms: report,
            down_after,
        };
        if let Ok((s, targets)) = g.check(&a) {
            prop_assert!(targets.len() <= max_targets as usize);
            prop_assert!(targets.len() as u64 * 1000 <= u64::from(max_pps) * s.interval.as_millis() as u64);
            prop_assert!(s.timeout <= MAX_TIMEOUT && !s.timeout.is_zero());
            for t in &targets {
                let private = DEFAULT_ALLOW.iter().any(|c| c.parse::<IpNet>().is_ok_and(|n| n.contains(&t.addr)));
                prop_assert!(private, "{} let through", t.addr);
                prop_assert!(!t.addr.is_loopback() && !t.addr.is_multicast() && !t.addr.is_unspecified());
            }
        }
    }
}
