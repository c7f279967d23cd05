//! Byte fixtures for every packet the engine can meet.

use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const AUTH: Authenticator = Authenticator::from_parts(0xbeef, 0x1111, 0x2222);
const ME: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 1);
const TARGET: Ipv4Addr = Ipv4Addr::new(10, 250, 7, 9);
const ROUTER: Ipv4Addr = Ipv4Addr::new(10, 250, 0, 254);
const STAMP: ProbeStamp = ProbeStamp {
    global: 0x0001_0000_0000_2a2b,
    target: 3,
    seq: 17,
    sent_ns: 1_764_000_000_000_000_000,
};

fn internet_checksum(b: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in b.chunks(2) {
        let w = if c.len() == 2 {
            u16::from_be_bytes([c[0], c[1]])
        } else {
            u16::from(c[0]) << 8
        };
        sum += u32::from(w);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (with `options` appended) around `body`.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, options: &[u8], body: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 20 + options.len();
    let total = ihl + body.len();
    let mut h = vec![0u8; ihl];
    h[0] = 0x40 | (ihl / 4) as u8;
    h[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    h[8] = 64;
    h[9] = proto;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    h[20..].copy_from_slice(options);
    let ck = internet_checksum(&h);
    h[10..12].copy_from_slice(&ck.to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn request_v4(payload_len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let n = build_echo_request(&mut buf, &AUTH, IpAddr::V4(TARGET), &STAMP, payload_len);
    buf.truncate(n);
    buf
}

fn fix_icmp_checksum(icmp: &mut [u8]) {
    icmp[2..4].fill(0);
    let ck = internet_checksum(icmp);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
}

fn reply_from(req: &[u8]) -> Vec<u8> {
    let mut r = req.to_vec();
    r[0] = 0;
    fix_icmp_checksum(&mut r);
    r
}

fn reply_v4() -> Vec<u8> {
    ipv4(TARGET, ME, 1, &[], &reply_from(&request_v4(56)))
}

/// An ICMP error (type, code, 4 bytes of "rest") from ROUTER quoting `quoted`.
fn error_v4(t: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut icmp = vec![t, code, 0, 0];
    icmp.extend_from_slice(&rest);
    icmp.extend_from_slice(quoted);
    fix_icmp_checksum(&mut icmp);
    ipv4(ROUTER, ME, 1, &[], &icmp)
}

fn quoted_request() -> Vec<u8> {
    ipv4(ME, TARGET, 1, &[], &request_v4(56))
}

#[test]
fn request_has_valid_checksum_and_our_fields() {
    let req = request_v4(56);
    assert_eq!(req.len(), 64);
    assert_eq!(req[0], 8);
    assert_eq!(internet_checksum(&req), 0, "checksum must verify");
    assert_eq!(&req[4..6], &0xbeefu16.to_be_bytes());
    assert_eq!(&req[6..8], &0x2a2bu16.to_be_bytes());
}

#[test]
fn echo_reply_yields_the_stamp() {
    assert_eq!(
        parse_v4(&reply_v4(), &AUTH),
        Ok(Inbound::Reply {
            from: IpAddr::V4(TARGET),
            stamp: STAMP
        })
    );
}

#[test]
fn every_truncation_is_rejected_without_panic() {
    let full = reply_v4();
    for n in 0..full.len() {
        let r = parse_v4(&full[..n], &AUTH);
        assert!(r.is_err(), "length {n} parsed as {r:?}");
    }
}

#[test]
fn total_length_beyond_buffer_is_truncated() {
    let mut p = reply_v4();
    p.truncate(p.len() - 1);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::Truncated));
}

#[test]
fn ihl_larger_than_packet_is_truncated() {
    let mut p = reply_v4();
    p[0] = 0x4f; // IHL 60 bytes
    p.truncate(40);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::Truncated));
}

#[test]
fn wrong_ip_version_or_tiny_ihl_is_bad_header() {
    let mut p = reply_v4();
    p[0] = 0x65;
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadIpHeader));
    let mut p = reply_v4();
    p[0] = 0x44;
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadIpHeader));
}

#[test]
fn ipv4_options_are_rejected() {
    // A record-route option (type 7, len 7, ptr 4) + end-of-options pad.
    let opts = [7, 7, 4, 0, 0, 0, 0, 0];
    let p = ipv4(TARGET, ME, 1, &opts, &reply_from(&request_v4(56)));
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::IpOptions));
}

#[test]
fn non_icmp_is_rejected() {
    let p = ipv4(TARGET, ME, 17, &[], &[0u8; 16]);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::NotIcmp));
}

#[test]
fn wrong_checksum_is_rejected() {
    let mut p = reply_v4();
    let last = p.len() - 1;
    p[last] ^= 0xff;
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadChecksum));
}

#[test]
fn foreign_identifier_is_rejected() {
    let mut icmp = reply_from(&request_v4(56));
    icmp[4] ^= 0x01;
    fix_icmp_checksum(&mut icmp);
    let p = ipv4(TARGET, ME, 1, &[], &icmp);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::ForeignIdent));
}

#[test]
fn spoofed_payload_with_valid_checksum_fails_the_mac() {
    let mut icmp = reply_from(&request_v4(56));
    icmp[ICMP_HEADER_LEN + 20] ^= 0x40; // alter the send time
    fix_icmp_checksum(&mut icmp);
    let p = ipv4(TARGET, ME, 1, &[], &icmp);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadMac));
}

#[test]
fn reply_from_another_address_fails_the_mac() {
    let p = ipv4(
        Ipv4Addr::new(10, 250, 7, 10),
        ME,
        1,
        &[],
        &reply_from(&request_v4(56)),
    );
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadMac));
}

#[test]
fn header_sequence_must_match_the_signed_id() {
    let mut icmp = reply_from(&request_v4(56));
    icmp[7] ^= 0x01;
    fix_icmp_checksum(&mut icmp);
    let p = ipv4(TARGET, ME, 1, &[], &icmp);
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::BadMac));
}

#[test]
fn request_from_ourselves_is_uninteresting() {
    let p = quoted_request();
    assert_eq!(parse_v4(&p, &AUTH), Err(Reject::Uninteresting));
}

#[test]
fn host_unreachable_quoting_the_full_request() {
    let p = error_v4(3, 1, [0; 4], &quoted_request());
    assert_eq!(
        parse_v4(&p, &AUTH),
        Ok(Inbound::Error {
            reporter: IpAddr::V4(ROUTER),
            target: IpAddr::V4(TARGET),
            kind: IcmpErrorKind::HostUnreachable,
            seq16: 0x2a2b,
            stamp: Some(STAMP),
        })
    );
}

#[test]
fn rfc792_error_quoting_only_eight_bytes_matches_by_sequence() {
    let q = quoted_request();
    let p = error_v4(11, 0, [0; 4], &q[..20 + 8]);
    match parse_v4(&p, &AUTH) {
        Ok(Inbound::Error {
            kind,
            seq16,
            stamp,
            target,
            ..
        }) => {
            assert_eq!(kind, IcmpErrorKind::TimeExceeded);
            assert_eq!(seq16, 0x2a2b);
            assert_eq!(stamp, None);
            assert_eq!(target, IpAddr::V4(TARGET));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn fragmentation_needed_carries_the_mtu() {
    let p = error_v4(3, 4, [0, 0, 0x05, 0x78], &quoted_request());
    match parse_v4(&p, &AUTH) {
        Ok(Inbound::Error { kind, .. }) => {
            assert_eq!(kind, IcmpErrorKind::FragmentationNeeded { mtu: 1400 });
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn every_unreachable_code_maps() {
    let cases = [
        (0, IcmpErrorKind::NetUnreachable),
        (2, IcmpErrorKind::ProtocolUnreachable),
        (3, IcmpErrorKind::PortUnreachable),
        (13, IcmpErrorKind::AdminProhibited),
        (
            5,
            IcmpErrorKind::Other {
                icmp_type: 3,
                code: 5,
            },
        ),
    ];
    for (code, want) in cases {
        match parse_v4(&error_v4(3, code, [0; 4], &quoted_request()), &AUTH) {
            Ok(Inbound::Error { kind, .. }) => assert_eq!(kind, want, "code {code}"),
            other => panic!("code {code}: {other:?}"),
        }
    }
}

#[test]
fn quoted_header_with_options_is_read_at_its_real_length() {
    let q = ipv4(ME, TARGET, 1, &[1, 1, 1, 0], &request_v4(56));
    match parse_v4(&error_v4(3, 1, [0; 4], &q), &AUTH) {
        Ok(Inbound::Error { stamp, .. }) => assert_eq!(stamp, Some(STAMP)),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn error_quoting_someone_elses_request_is_not_ours() {
    let mut req = request_v4(56);
    req[4] ^= 0xff;
    let q = ipv4(ME, TARGET, 1, &[], &req);
    assert_eq!(
        parse_v4(&error_v4(3, 1, [0; 4], &q), &AUTH),
        Err(Reject::NotOurs)
    );
}

#[test]
fn error_quoting_udp_is_not_ours() {
    let q = ipv4(ME, TARGET, 17, &[], &[0u8; 8]);
    assert_eq!(
        parse_v4(&error_v4(3, 3, [0; 4], &q), &AUTH),
        Err(Reject::NotOurs)
    );
}

#[test]
fn error_quoting_garbage_or_nothing_is_not_ours() {
    assert_eq!(
        parse_v4(&error_v4(3, 1, [0; 4], &[]), &AUTH),
        Err(Reject::NotOurs)
    );
    assert_eq!(
        parse_v4(&error_v4(3, 1, [0; 4], &[0x45, 0, 0]), &AUTH),
        Err(Reject::NotOurs)
    );
}

#[test]
fn error_quoting_a_forged_payload_fails_the_mac() {
    let mut req = request_v4(56);
    req[ICMP_HEADER_LEN + 9] ^= 1;
    let q = ipv4(ME, TARGET, 1, &[], &req);
    assert_eq!(
        parse_v4(&error_v4(3, 1, [0; 4], &q), &AUTH),
        Err(Reject::BadMac)
    );
}

#[test]
fn other_icmp_types_are_uninteresting() {
    let mut icmp = vec![13u8, 0, 0, 0, 0, 0, 0, 0]; // timestamp request
    fix_icmp_checksum(&mut icmp);
    assert_eq!(
        parse_v4(&ipv4(TARGET, ME, 1, &[], &icmp), &AUTH),
        Err(Reject::Uninteresting)
    );
}

// ---- IPv6 ----

const ME6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const TARGET6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 7, 9);
const ROUTER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0xfe);

fn v6_checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &mut [u8]) {
    icmp[2..4].fill(0);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(icmp.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(icmp);
    let ck = internet_checksum(&pseudo);
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
}

fn request_v6() -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let n = build_echo_request(&mut buf, &AUTH, IpAddr::V6(TARGET6), &STAMP, 56);
    buf.truncate(n);
    buf
}

fn reply_v6() -> Vec<u8> {
    let mut r = request_v6();
    r[0] = 129;
    v6_checksum(TARGET6, ME6, &mut r);
    r
}

fn ipv6_header(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload_len: usize) -> Vec<u8> {
    let mut h = vec![0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    h[6] = next;
    h[7] = 64;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    h
}

fn error_v6(t: u8, code: u8, rest: [u8; 4], quoted: &[u8]) -> Vec<u8> {
    let mut m = vec![t, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(quoted);
    v6_checksum(ROUTER6, ME6, &mut m);
    m
}

fn quoted_request_v6() -> Vec<u8> {
    let req = request_v6();
    let mut q = ipv6_header(ME6, TARGET6, 58, req.len());
    q.extend_from_slice(&req);
    q
}

#[test]
fn v6_request_leaves_checksum_to_the_kernel() {
    let req = request_v6();
    assert_eq!(req[0], 128);
    assert_eq!(&req[2..4], &[0, 0]);
}

#[test]
fn v6_echo_reply_with_checksum() {
    let r = reply_v6();
    let want = Ok(Inbound::Reply {
        from: IpAddr::V6(TARGET6),
        stamp: STAMP,
    });
    assert_eq!(parse_v6(&r, TARGET6, Some(ME6), &AUTH), want);
    assert_eq!(parse_v6(&r, TARGET6, None, &AUTH), want);
}

#[test]
fn v6_bad_checksum_and_truncation() {
    let mut r = reply_v6();
    r[20] ^= 1;
    assert_eq!(
        parse_v6(&r, TARGET6, Some(ME6), &AUTH),
        Err(Reject::BadChecksum)
    );
    let r = reply_v6();
    for n in 0..r.len() {
        // With the checksum checked any cut is caught; without it, a cut inside the signed stamp
        // still is (the padding after it carries nothing).
        assert!(
            parse_v6(&r[..n], TARGET6, Some(ME6), &AUTH).is_err(),
            "length {n}"
        );
        if n < ICMP_HEADER_LEN + PAYLOAD_HEADER_LEN {
            assert!(
                parse_v6(&r[..n], TARGET6, None, &AUTH).is_err(),
                "length {n}"
            );
        }
    }
}

#[test]
fn v6_packet_too_big_and_unreachable() {
    let m = error_v6(2, 0, 1280u32.to_be_bytes(), &quoted_request_v6());
    assert_eq!(
        parse_v6(&m, ROUTER6, Some(ME6), &AUTH),
        Ok(Inbound::Error {
            reporter: IpAddr::V6(ROUTER6),
            target: IpAddr::V6(TARGET6),
            kind: IcmpErrorKind::FragmentationNeeded { mtu: 1280 },
            seq16: 0x2a2b,
            stamp: Some(STAMP),
        })
    );
    for (code, want) in [
        (0, IcmpErrorKind::NetUnreachable),
        (1, IcmpErrorKind::AdminProhibited),
        (3, IcmpErrorKind::HostUnreachable),
        (4, IcmpErrorKind::PortUnreachable),
    ] {
        let m = error_v6(1, code, [0; 4], &quoted_request_v6());
        match parse_v6(&m, ROUTER6, None, &AUTH) {
            Ok(Inbound::Error { kind, .. }) => assert_eq!(kind, want),
            other => panic!("code {code}: {other:?}"),
        }
    }
    let m = error_v6(3, 0, [0; 4], &quoted_request_v6());
    assert!(matches!(
        parse_v6(&m, ROUTER6, None, &AUTH),
        Ok(Inbound::Error {
            kind: IcmpErrorKind::TimeExceeded,
            ..
        })
    ));
}

#[test]
fn v6_error_quoting_extension_headers_or_others_is_not_ours() {
    let req = request_v6();
    let mut q = ipv6_header(ME6, TARGET6, 0 /* hop-by-hop */, req.len());
    q.extend_from_slice(&req);
    assert_eq!(
        parse_v6(&error_v6(1, 3, [0; 4], &q), ROUTER6, None, &AUTH),
        Err(Reject::NotOurs)
    );
    let mut q = quoted_request_v6();
    q[44] ^= 0xff; // quoted identifier
    assert_eq!(
        parse_v6(&error_v6(1, 3, [0; 4], &q), ROUTER6, None, &AUTH),
        Err(Reject::NotOurs)
    );
    assert_eq!(
        parse_v6(&error_v6(1, 3, [0; 4], &[]), ROUTER6, None, &AUTH),
        Err(Reject::NotOurs)
    );
}

#[test]
fn v6_neighbour_discovery_is_uninteresting() {
    let mut ns = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    ns.extend_from_slice(&TARGET6.octets());
    assert_eq!(parse_v6(&ns, ME6, None, &AUTH), Err(Reject::Uninteresting));
}

proptest! {
    // 4096 cases in CI; `bench/fuzz.sh` sets PROPTEST_CASES for a longer run.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(4096)
    ))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        let _ = parse_v4(&bytes, &AUTH);
        let _ = parse_v6(&bytes, TARGET6, Some(ME6), &AUTH);
        let _ = parse_v6(&bytes, TARGET6, None, &AUTH);
    }

    #[test]
    fn mutated_replies_never_yield_a_wrong_sample(pos in 0usize..84, val in any::<u8>(),
                                                  cut in 0usize..90) {
        let mut p = reply_v4();
        if pos < p.len() { p[pos] = val; }
        p.truncate(cut.max(1).min(p.len()));
        if let Ok(Inbound::Reply { stamp, from }) = parse_v4(&p, &AUTH) {
            prop_assert_eq!(stamp, STAMP);
            prop_assert_eq!(from, IpAddr::V4(TARGET));
        }
    }

    #[test]
    fn mutated_errors_never_panic(pos in 0usize..120, val in any::<u8>()) {
        let mut p = error_v4(3, 1, [0; 4], &quoted_request());
        if pos < p.len() { p[pos] = val; }
        let _ = parse_v4(&p, &AUTH);
        let mut m = error_v6(1, 3, [0; 4], &quoted_request_v6());
        if pos < m.len() { m[pos] = val; }
        let _ = parse_v6(&m, ROUTER6, None, &AUTH);
    }
}

// ---- every error kind, from bytes to the wire ----

/// Parses `bytes` (an IPv4 datagram or an ICMPv6 message from the router), hands the result to an
/// engine probing the fixture target, and converts the window to the protocol's `TargetStats`.
fn through_the_wire(bytes: &[u8], v6: bool) -> echomesh_proto::v1::TargetStats {
    use crate::prober::state::Core;
    use crate::prober::{ProbeSettings, TargetSpec};
    use crate::report::wire;
    let target = if v6 {
        IpAddr::V6(TARGET6)
    } else {
        IpAddr::V4(TARGET)
    };
    let parsed = if v6 {
        parse_v6(bytes, ROUTER6, Some(ME6), &AUTH)
    } else {
        parse_v4(bytes, &AUTH)
    };
    let pkt = parsed.unwrap_or_else(|e| panic!("fixture refused: {e:?}"));
    let spec = TargetSpec {
        id: 77,
        addr: target,
    };
    let mut core = Core::new(ProbeSettings::default(), vec![spec], 0, None);
    core.inbound(pkt, 1, 1);
    let windows = core.take_window();
    let cur = wire::InForce::for_ids(1, &[77], std::time::Duration::from_secs(1));
    wire::target_stats(&windows[0], &cur).expect("assigned")
}

#[test]
fn every_error_kind_of_both_families_reaches_the_wire_in_its_own_field() {
    use echomesh_proto::v1::{IcmpErrorKind as K, IcmpErrors};
    type Field = fn(&IcmpErrors) -> u64;
    let cases: [(bool, u8, u8, [u8; 4], K, Field); 16] = [
        (false, 3, 0, [0; 4], K::NetUnreachable, |e| {
            e.net_unreachable
        }),
        (false, 3, 1, [0; 4], K::HostUnreachable, |e| {
            e.host_unreachable
        }),
        (false, 3, 2, [0; 4], K::ProtocolUnreachable, |e| {
            e.protocol_unreachable
        }),
        (false, 3, 3, [0; 4], K::PortUnreachable, |e| {
            e.port_unreachable
        }),
        (false, 3, 4, [0, 0, 0x05, 0x78], K::FragNeeded, |e| {
            e.frag_needed
        }),
        (false, 3, 13, [0; 4], K::AdminProhibited, |e| {
            e.admin_prohibited
        }),
        (false, 3, 5, [0; 4], K::Other, |e| e.other),
        (false, 11, 0, [0; 4], K::TimeExceeded, |e| e.time_exceeded),
        (false, 12, 0, [0; 4], K::ParameterProblem, |e| {
            e.parameter_problem
        }),
        (true, 1, 0, [0; 4], K::NetUnreachable, |e| e.net_unreachable),
        (true, 1, 3, [0; 4], K::HostUnreachable, |e| {
            e.host_unreachable
        }),
        (true, 1, 4, [0; 4], K::PortUnreachable, |e| {
            e.port_unreachable
        }),
        (true, 1, 1, [0; 4], K::AdminProhibited, |e| {
            e.admin_prohibited
        }),
        (true, 2, 0, [0, 0, 0x05, 0x00], K::FragNeeded, |e| {
            e.frag_needed
        }),
        (true, 3, 0, [0; 4], K::TimeExceeded, |e| e.time_exceeded),
        (true, 4, 0, [0; 4], K::ParameterProblem, |e| {
            e.parameter_problem
        }),
    ];
    for (v6, t, code, rest, want, field) in cases {
        let bytes = if v6 {
            error_v6(t, code, rest, &quoted_request_v6())
        } else {
            error_v4(t, code, rest, &quoted_request())
        };
        let ts = through_the_wire(&bytes, v6);
        let e = ts.errors.expect("errors are always sent");
        let name = format!("v{} type {t} code {code}", if v6 { 6 } else { 4 });
        assert_eq!(field(&e), 1, "{name}: {e:?}");
        assert_eq!(e.last_kind, want as i32, "{name}");
        let fine = e.net_unreachable
            + e.host_unreachable
            + e.protocol_unreachable
            + e.port_unreachable
            + e.frag_needed
            + e.admin_prohibited;
        assert_eq!(
            e.dest_unreachable, fine,
            "{name}: the total is the sum of its kinds"
        );
        let total = e.dest_unreachable + e.time_exceeded + e.parameter_problem + e.other;
        assert_eq!(total, 1, "{name}: counted once");
        let mtu = match (v6, want) {
            (false, K::FragNeeded) => 1400,
            (true, K::FragNeeded) => 1280,
            _ => 0,
        };
        assert_eq!(e.last_mtu, mtu, "{name}");
        assert_eq!(
            (ts.received, ts.lost),
            (0, 0),
            "{name}: an error is not a reply"
        );
    }
}
