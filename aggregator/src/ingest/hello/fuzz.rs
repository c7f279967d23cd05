//! Randomized Hellos: validation never panics, and whatever it accepts is safe to keep and show.

use proptest::prelude::*;

use super::*;

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z0-9.-]{0,300}",
        "\\PC{0,70}",
        Just("\u{1b}]0;pwned\u{7}".to_string()),
    ]
}

fn any_address() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|v| std::net::Ipv4Addr::from(v).to_string()),
        any::<u128>().prop_map(|v| std::net::Ipv6Addr::from(v).to_string()),
        any_text(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512)
    ))]

    #[test]
    fn accepted_hellos_are_bounded_printable_and_unicast(
        node in any_text(),
        pod in any_text(),
        version in any_text(),
        network in -1i32..4,
        addresses in proptest::collection::vec(any_address(), 0..20),
        started in any::<u64>(),
    ) {
        let h = v1::Hello {
            node,
            pod,
            network,
            addresses,
            version,
            boot_id: 1,
            started_at_unix_ms: started,
            zone: String::new(),
        };
        if let Ok((key, info)) = validate_hello_at(&h, 1_800_000_000_000) {
            prop_assert!(!key.node.is_empty() && key.node.len() <= 253);
            prop_assert!(!key.node.chars().any(char::is_control));
            prop_assert!(!info.version.chars().any(char::is_control) && info.version.len() <= 64);
            prop_assert!(!info.pod.chars().any(char::is_control) && info.pod.len() <= 253);
            prop_assert!((1..=16).contains(&info.addresses.len()));
            for a in &info.addresses {
                prop_assert!(not_unicast(*a).is_none(), "{a}");
            }
        }
    }
}
