use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

/// Each message's index and, when it failed, its errno.
type Results = Vec<(usize, Option<i32>)>;

/// Runs `send_each` over `len` messages against scripted `sendmmsg` results; returns the calls'
/// start indices, each message's result (errno for a failure) and how the batch ended.
fn run(len: usize, script: Vec<io::Result<usize>>) -> (Vec<usize>, Results, BatchEnd) {
    let mut script = script.into_iter();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    let end = send_each(
        len,
        |from| {
            calls.push(from);
            script
                .next()
                .expect("send_each called sendmmsg more often than scripted")
        },
        |i, r| results.push((i, r.err().map(|e| e.raw_os_error().unwrap_or(-1)))),
    );
    (calls, results, end)
}

fn all_ok(range: std::ops::Range<usize>) -> Results {
    range.map(|i| (i, None)).collect()
}

#[test]
fn a_batch_the_kernel_takes_whole_is_one_call() {
    let (calls, results, end) = run(5, vec![Ok(5)]);
    assert_eq!(calls, vec![0]);
    assert_eq!(results, all_ok(0..5));
    assert_eq!(end, BatchEnd::Done);
}

/// What `run` records for a message that failed without an errno.
const UNREPORTED: Option<i32> = Some(-1);

#[test]
fn the_message_a_short_count_stops_at_fails_unreported_and_is_not_sent_again() {
    // The kernel took three and dropped the fourth's error: resending the fourth could hide a
    // random drop on the way out, so it fails and the next call starts after it.
    let (calls, results, end) = run(5, vec![Ok(3), Ok(1)]);
    assert_eq!(calls, vec![0, 4]);
    assert_eq!(
        results,
        vec![(0, None), (1, None), (2, None), (3, UNREPORTED), (4, None)]
    );
    assert_eq!(end, BatchEnd::Done);
}

#[test]
fn emsgsize_first_in_its_call_fails_that_probe_only_with_its_errno() {
    let (calls, results, end) = run(3, vec![Err(os(libc::EMSGSIZE)), Ok(2)]);
    assert_eq!(calls, vec![0, 1]);
    assert_eq!(
        results,
        vec![(0, Some(libc::EMSGSIZE)), (1, None), (2, None)]
    );
    assert_eq!(end, BatchEnd::Done);
}

#[test]
fn batched_probes_are_small_enough_never_to_meet_emsgsize() {
    // 576 bytes is the smallest MTU an IPv4 path may have; larger probes go out alone.
    assert_eq!(MAX_BATCHED_PAYLOAD + 20 + 8, 576);
}

#[test]
fn errors_on_consecutive_messages_are_each_their_own() {
    let script = vec![
        Err(os(libc::EHOSTUNREACH)),
        Err(os(libc::ENETUNREACH)),
        Ok(1),
    ];
    let (calls, results, end) = run(3, script);
    assert_eq!(calls, vec![0, 1, 2]);
    assert_eq!(
        results,
        vec![
            (0, Some(libc::EHOSTUNREACH)),
            (1, Some(libc::ENETUNREACH)),
            (2, None)
        ]
    );
    assert_eq!(end, BatchEnd::Done);
}

#[test]
fn a_full_queue_leaves_the_rest_unattempted() {
    // The message the first call stopped at fails unreported; the queue is full at the next.
    let (calls, results, end) = run(5, vec![Ok(2), Err(os(libc::EAGAIN))]);
    assert_eq!(calls, vec![0, 3]);
    assert_eq!(
        results,
        vec![(0, None), (1, None), (2, UNREPORTED)],
        "no result for the messages never sent"
    );
    assert_eq!(end, BatchEnd::QueueFull(3));
}

#[test]
fn eagain_on_the_first_call_sends_nothing() {
    let (_, results, end) = run(4, vec![Err(os(libc::EAGAIN))]);
    assert!(results.is_empty());
    assert_eq!(end, BatchEnd::QueueFull(0));
}

#[test]
fn enobufs_and_eintr_mean_retry_later_not_a_send_error() {
    for errno in [libc::ENOBUFS, libc::EINTR] {
        let (_, results, end) = run(3, vec![Err(os(errno))]);
        assert!(results.is_empty(), "errno {errno}");
        assert_eq!(end, BatchEnd::QueueFull(0), "errno {errno}");
    }
}

#[test]
fn a_call_that_takes_nothing_without_an_error_stops_the_batch() {
    let (calls, results, end) = run(3, vec![Ok(0)]);
    assert_eq!(calls, vec![0]);
    assert!(results.is_empty());
    assert_eq!(end, BatchEnd::QueueFull(0));
}

#[test]
fn a_kernel_count_beyond_the_batch_is_clamped() {
    let (_, results, end) = run(2, vec![Ok(7)]);
    assert_eq!(results, all_ok(0..2));
    assert_eq!(end, BatchEnd::Done);
}

#[test]
fn an_empty_batch_makes_no_call() {
    let (calls, results, end) = run(0, vec![]);
    assert!(calls.is_empty() && results.is_empty());
    assert_eq!(end, BatchEnd::Done);
}

#[test]
fn packets_keep_their_own_bytes_destination_and_key() {
    let mut b = SendBatch::new(16);
    let v4 = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert!(b.push(v4, 7, |buf| {
        buf[..3].copy_from_slice(&[1, 2, 3]);
        3
    }));
    assert!(b.push(v6, 8, |buf| {
        buf[..16].fill(9);
        16
    }));
    assert_eq!(b.len(), 2);
    assert_eq!(b.packet(0), &[1, 2, 3]);
    assert_eq!(b.packet(1), &[9; 16]);
    assert_eq!(b.addrs[0].as_socket().map(|s| s.ip()), Some(v4));
    assert_eq!(b.addrs[1].as_socket().map(|s| s.ip()), Some(v6));
    assert_eq!(b.keys, vec![7, 8]);
    b.clear();
    assert!(b.is_empty());
}

#[test]
fn a_length_past_the_slot_is_cut_to_the_slot() {
    let mut b = SendBatch::new(8);
    b.push(IpAddr::V4(Ipv4Addr::LOCALHOST), 1, |_| 100);
    assert_eq!(b.packet(0).len(), 8);
}

#[test]
fn the_batch_is_full_at_its_capacity() {
    let mut b = SendBatch::new(64);
    for k in 0..SEND_BATCH {
        assert!(b.push(IpAddr::V4(Ipv4Addr::LOCALHOST), k as u32, |_| 8));
    }
    assert!(b.is_full());
    assert!(!b.push(IpAddr::V4(Ipv4Addr::LOCALHOST), 99, |_| 8));
    assert_eq!(b.len(), SEND_BATCH);
}

#[test]
fn huge_packets_make_smaller_batches() {
    let b = SendBatch::new(65_535);
    assert_eq!(b.capacity, BATCH_BYTES / 65_535);
    assert!(SendBatch::new(BATCH_BYTES * 2).capacity == 1);
}

#[test]
fn each_message_carries_its_key_as_scm_ts_opt_id() {
    let mut control = [0u64; 4];
    write_key_cmsg(&mut control, 0xdead_beef);
    let bytes: Vec<u8> = control.iter().flat_map(|w| w.to_ne_bytes()).collect();
    // struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; } then the data.
    let len = usize::from_ne_bytes(bytes[0..8].try_into().expect("in bounds"));
    let level = i32::from_ne_bytes(bytes[8..12].try_into().expect("in bounds"));
    let kind = i32::from_ne_bytes(bytes[12..16].try_into().expect("in bounds"));
    let key = u32::from_ne_bytes(bytes[16..20].try_into().expect("in bounds"));
    assert_eq!(len, 20, "CMSG_LEN(4)");
    assert_eq!(level, libc::SOL_SOCKET);
    assert_eq!(kind, 81, "SCM_TS_OPT_ID");
    assert_eq!(key, 0xdead_beef);
    assert_eq!(key_cmsg_space(), 24);
}

#[test]
fn sendmmsg_on_a_closed_descriptor_is_an_error_not_a_count() {
    let mut b = SendBatch::new(16);
    b.push(IpAddr::V4(Ipv4Addr::LOCALHOST), 1, |_| 8);
    let e = b.sendmmsg(-1, 0).expect_err("no such descriptor");
    assert_eq!(e.raw_os_error(), Some(libc::EBADF));
    assert_eq!(b.sendmmsg(-1, 1).ok(), Some(0), "nothing from the end");
}
