//! The engine's rules with exact, injected times (milliseconds written as `ms(n)`).

use super::*;
use crate::icmp::{IcmpErrorKind, Inbound, ProbeStamp};
use std::net::IpAddr;

const fn ms(n: u64) -> u64 {
    n * 1_000_000
}

fn addr(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn specs(n: u8) -> Vec<TargetSpec> {
    (1..=n)
        .map(|i| TargetSpec {
            id: u64::from(i) * 100,
            addr: addr(i),
        })
        .collect()
}

fn settings() -> ProbeSettings {
    ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(250),
        payload_size: 56,
        alt_payload_size: 0,
        down_after: 3,
    }
}

/// Sends everything due at `now` (send time = now, as realtime too); returns the probes sent.
fn send_all(core: &mut Core, now: u64) -> Vec<Due> {
    let mut out = Vec::new();
    while let Some(d) = core.next_due(now) {
        core.sent(d, now, now);
        out.push(d);
    }
    out
}

fn reply(core: &mut Core, d: &Due, sent_at: u64, rx: u64) {
    let stamp = ProbeStamp {
        global: d.global,
        target: d.target,
        seq: d.seq,
        sent_ns: sent_at,
    };
    core.inbound(
        Inbound::Reply {
            from: d.addr,
            stamp,
        },
        rx,
        rx,
    );
}

fn stats_of(core: &mut Core) -> Vec<TargetStats> {
    core.take_window().into_iter().map(|w| w.stats).collect()
}

#[test]
fn probes_are_spread_evenly_and_answered() {
    let mut core = Core::new(settings(), specs(4), 0, Some(2));
    let first = send_all(&mut core, 0);
    assert_eq!(first.len(), 1, "only target 0 is due at t=0");
    assert_eq!(core.next_due_at(), Some(ms(25)));
    let mut all = first;
    for t in [25, 50, 75, 100, 125, 150, 175] {
        all.extend(send_all(&mut core, ms(t)));
    }
    assert_eq!(
        all.iter().map(|d| d.target).collect::<Vec<_>>(),
        [0, 1, 2, 3, 0, 1, 2, 3]
    );
    for (i, d) in all.iter().enumerate() {
        let sent = ms(25 * i as u64);
        reply(&mut core, d, sent, sent + 40_000);
    }
    assert!(core.finished());
    for s in stats_of(&mut core) {
        assert_eq!((s.sent, s.received, s.lost), (2, 2, 0));
        assert_eq!(s.rtt.quantile(0.5), Some(Duration::from_micros(40)));
    }
}

#[test]
fn timeout_counts_loss_exactly_at_the_deadline() {
    let mut core = Core::new(settings(), specs(1), 0, Some(1));
    send_all(&mut core, 0);
    core.expire(ms(250) - 1);
    assert!(!core.finished());
    assert_eq!(core.next_deadline(), Some(ms(250)));
    core.expire(ms(250));
    assert!(core.finished());
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.sent, s.received, s.lost), (1, 0, 1));
}

#[test]
fn duplicates_late_and_reordered_are_counted_beside() {
    let mut core = Core::new(settings(), specs(1), 0, None);
    let a = send_all(&mut core, 0)[0];
    let b = send_all(&mut core, ms(100))[0];
    let c = send_all(&mut core, ms(200))[0];
    reply(&mut core, &b, ms(100), ms(201));
    reply(&mut core, &a, 0, ms(202)); // answered after b: reordered, still a sample
    reply(&mut core, &a, 0, ms(203)); // again: duplicate
    core.expire(ms(450));
    reply(&mut core, &c, ms(200), ms(460)); // after its deadline: late
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.sent, s.received, s.lost), (3, 2, 1));
    assert_eq!((s.duplicates, s.reordered, s.late), (1, 1, 1));
    assert_eq!(s.rtt.count(), 2);
}

#[test]
fn reply_with_wrong_source_or_send_time_is_not_a_sample() {
    let mut core = Core::new(settings(), specs(2), 0, None);
    let a = send_all(&mut core, 0)[0];
    let stamp = ProbeStamp {
        global: a.global,
        target: a.target,
        seq: a.seq,
        sent_ns: 0,
    };
    core.inbound(
        Inbound::Reply {
            from: addr(2),
            stamp,
        },
        ms(1),
        ms(1),
    );
    let forged = ProbeStamp {
        sent_ns: 5,
        ..stamp
    };
    core.inbound(
        Inbound::Reply {
            from: a.addr,
            stamp: forged,
        },
        ms(1),
        ms(1),
    );
    let far = ProbeStamp {
        global: 999_999,
        ..stamp
    };
    core.inbound(
        Inbound::Reply {
            from: a.addr,
            stamp: far,
        },
        ms(1),
        ms(1),
    );
    assert_eq!(core.counters().untracked_replies, 3);
    let s = &stats_of(&mut core)[0];
    assert_eq!(s.received, 0);
    assert_eq!(s.rtt.count(), 0);
}

#[test]
fn unanswered_probes_flip_down_before_their_timeout_and_a_reply_flips_back_up() {
    // down_after 3, timeout 250 ms: the third unanswered probe (sent at 200 ms) counts once it has
    // been out for the 200 ms floor, seen when the probe at 400 ms leaves; no loss is counted yet.
    let mut core = Core::new(settings(), specs(1), 0, None);
    for t in 0..4 {
        send_all(&mut core, ms(100 * t));
    }
    assert_eq!(
        core.drain_flips().count(),
        0,
        "the third has been out 100 ms"
    );
    send_all(&mut core, ms(400));
    let flips: Vec<_> = core.drain_flips().collect();
    assert_eq!(flips.len(), 1);
    assert!(!flips[0].reachable);
    assert_eq!(flips[0].consecutive_losses, 4);
    send_all(&mut core, ms(500));
    assert_eq!(core.drain_flips().count(), 0, "flipped once");
    let d = send_all(&mut core, ms(600))[0];
    reply(&mut core, &d, ms(600), ms(601));
    let flips: Vec<_> = core.drain_flips().collect();
    assert_eq!(flips.len(), 1);
    assert!(flips[0].reachable);
}

/// The defaults the aggregator hands out: 10 Hz, 1 s timeout, DOWN after 6 unanswered probes.
fn ten_hz() -> ProbeSettings {
    ProbeSettings {
        interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        payload_size: 56,
        alt_payload_size: 0,
        down_after: 6,
    }
}

/// A small deterministic generator, so loss patterns are random-looking and repeatable.
fn lcg(state: &mut u64) -> f64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// Runs one target at 10 Hz for `probes` probes, 1 ms RTT, each probe lost when `lost(k)`;
/// returns (time of each flip, reachable).
fn run_ten_hz(probes: u64, mut lost: impl FnMut(u64) -> bool) -> Vec<(u64, bool)> {
    let mut core = Core::new(ten_hz(), specs(1), 0, None);
    let mut out = Vec::new();
    for k in 0..probes {
        let now = ms(100 * k);
        // Replies of the previous probe arrive 1 ms after it left.
        for d in send_all(&mut core, now) {
            if !lost(k) {
                reply(&mut core, &d, now, now + ms(1));
            }
        }
        core.expire(now);
        out.extend(core.drain_flips().map(|f| (now, f.reachable)));
    }
    out
}

#[test]
fn a_cut_is_down_within_one_second_at_10_hz_whatever_its_phase() {
    // The cut falls at 10 s + phase; the first probe it swallows leaves at the next 100 ms step.
    for phase_ms in [0, 1, 30, 50, 99] {
        let cut = ms(10_000 + phase_ms);
        let flips = run_ten_hz(200, |k| ms(100 * k) >= cut);
        assert_eq!(flips.len(), 1, "phase {phase_ms}: {flips:?}");
        let (at, reachable) = flips[0];
        assert!(!reachable);
        let took = at - cut;
        assert!(
            took <= ms(800),
            "phase {phase_ms} ms: DOWN {} ms after the cut",
            took / 1_000_000
        );
    }
}

#[test]
fn five_percent_random_loss_never_flips_down_in_ten_minutes() {
    // 20 runs of 6,000 probes; the chance of a false DOWN per run is ~9e-5 (docs/aggregator.md).
    for seed in 1..=20u64 {
        let mut rng = seed;
        let flips = run_ten_hz(6_000, |_| lcg(&mut rng) < 0.05);
        assert!(flips.is_empty(), "seed {seed}: {flips:?}");
    }
}

#[test]
fn a_slow_path_waits_longer_before_a_probe_counts_as_missing() {
    // 150 ms RTTs: a probe counts as missing only after 3 x 150 ms, so the probes in flight
    // (always one or two) never make six unanswered ones.
    let mut core = Core::new(ten_hz(), specs(1), 0, None);
    let mut pending = std::collections::VecDeque::new();
    for k in 0..600u64 {
        let now = ms(100 * k);
        while let Some(&(d, sent)) = pending.front() {
            if sent + ms(150) > now {
                break;
            }
            reply(&mut core, &d, sent, sent + ms(150));
            pending.pop_front();
        }
        for d in send_all(&mut core, now) {
            pending.push_back((d, now));
        }
        core.expire(now);
        assert_eq!(core.drain_flips().count(), 0, "probe {k}");
    }
    let second = Duration::from_secs(1);
    assert_eq!(miss_after(ms(150), 0, second), ms(200));
    assert_eq!(miss_after(ms(150), ms(50), second), ms(350));
    assert_eq!(miss_after(0, 0, second), ms(200));
    assert_eq!(miss_after(ms(900), ms(100), second), ms(1000));
}

#[test]
fn one_slow_reply_does_not_hold_detection_back() {
    // A reply 900 ms late (an ARP wait after a heal, a stalled node) raises the miss time to the
    // timeout for a moment; one second of ordinary replies later a cut is again DOWN within 0.8 s.
    let mut core = Core::new(ten_hz(), specs(1), 0, None);
    let slow = send_all(&mut core, 0)[0];
    let mut flips = Vec::new();
    for k in 1..60u64 {
        let now = ms(100 * k);
        if k == 9 {
            reply(&mut core, &slow, 0, ms(900));
        }
        for d in send_all(&mut core, now) {
            if k < 20 {
                reply(&mut core, &d, now, now + ms(1));
            }
        }
        core.expire(now);
        flips.extend(core.drain_flips().map(|f| (now, f.reachable)));
    }
    // The cut: probes from 2 s on are lost.
    assert_eq!(flips.len(), 1, "{flips:?}");
    assert!(!flips[0].1);
    assert!(
        flips[0].0 - ms(2_000) <= ms(800),
        "DOWN at {} ms",
        flips[0].0 / 1_000_000
    );
}

#[test]
fn a_wall_clock_step_during_a_flight_is_neither_loss_nor_a_negative_rtt() {
    // The wall clock (what kernel stamps use) jumps by +/- 10 s while probes are out; monotonic
    // time goes on. Every probe is answered 1 ms after it left.
    let mut core = Core::new(settings(), specs(1), 0, None);
    let step = ms(10_000);
    let wall = |mono: u64, stepped: i8| match stepped {
        1 => mono + step,
        -1 => mono + ms(20_000) - step,
        _ => mono + ms(20_000),
    };
    // Sent before a forward step, answered after it.
    let a = core.next_due(0).expect("due");
    core.sent(a, wall(0, 0), 0);
    let stamp = |d: &Due, sent_ns| ProbeStamp {
        global: d.global,
        target: d.target,
        seq: d.seq,
        sent_ns,
    };
    core.inbound(
        Inbound::Reply {
            from: a.addr,
            stamp: stamp(&a, wall(0, 0)),
        },
        wall(ms(1), 1),
        ms(1),
    );
    // Sent before a backward step, answered after it: the wall clock says -9.999 s.
    let b = core.next_due(ms(100)).expect("due");
    core.sent(b, wall(ms(100), 0), ms(100));
    core.inbound(
        Inbound::Reply {
            from: b.addr,
            stamp: stamp(&b, wall(ms(100), 0)),
        },
        wall(ms(101), -1),
        ms(101),
    );
    // An ordinary probe after the step still gives its sample.
    let c = core.next_due(ms(200)).expect("due");
    core.sent(c, wall(ms(200), -1), ms(200));
    core.inbound(
        Inbound::Reply {
            from: c.addr,
            stamp: stamp(&c, wall(ms(200), -1)),
        },
        wall(ms(201), -1),
        ms(201),
    );
    core.expire(ms(2_000));
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.sent, s.received, s.lost, s.late), (3, 3, 0, 0));
    assert_eq!(s.rtt.count(), 1, "only the unstepped probe is a sample");
    assert_eq!(s.rtt.quantile(0.0), Some(Duration::from_millis(1)));
    assert_eq!(core.counters().clock_steps, 2);
    assert_eq!(core.drain_flips().count(), 0);
}

#[test]
fn a_wall_clock_step_does_not_move_a_timeout() {
    // Deadlines are monotonic: a probe sent just before a 1 h forward step is lost at its
    // timeout on the monotonic clock, not at once, and not later.
    let mut core = Core::new(settings(), specs(1), 0, Some(1));
    let d = core.next_due(0).expect("due");
    core.sent(d, ms(3_600_000), 0);
    core.expire(ms(249));
    assert!(!core.finished());
    core.expire(ms(250));
    assert!(core.finished());
    assert_eq!(stats_of(&mut core)[0].lost, 1);
}

#[test]
fn local_send_failure_is_sent_and_lost_at_once() {
    let mut core = Core::new(settings(), specs(1), 0, Some(1));
    let d = core.next_due(0).expect("due");
    core.send_failed(d, 0, crate::prober::stats::SendError::Os(libc::EMSGSIZE));
    assert!(core.finished());
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.sent, s.lost, s.send_errors), (1, 1, 1));
    assert_eq!(core.counters().send_errors, 1);
}

#[test]
fn icmp_errors_match_by_stamp_or_by_quoted_sequence() {
    let mut core = Core::new(settings(), specs(2), 0, None);
    let a = send_all(&mut core, 0)[0];
    let b = send_all(&mut core, ms(50))[0];
    let router = IpAddr::from([10, 0, 0, 254]);
    core.inbound(
        Inbound::Error {
            reporter: router,
            target: a.addr,
            kind: IcmpErrorKind::HostUnreachable,
            seq16: (a.global & 0xffff) as u16,
            stamp: None,
        },
        ms(1),
        ms(1),
    );
    core.inbound(
        Inbound::Error {
            reporter: router,
            target: b.addr,
            kind: IcmpErrorKind::FragmentationNeeded { mtu: 1400 },
            seq16: (b.global & 0xffff) as u16,
            stamp: Some(ProbeStamp {
                global: b.global,
                target: b.target,
                seq: b.seq,
                sent_ns: ms(50),
            }),
        },
        ms(51),
        ms(51),
    );
    // About an address we do not probe: not ours.
    core.inbound(
        Inbound::Error {
            reporter: router,
            target: addr(9),
            kind: IcmpErrorKind::HostUnreachable,
            seq16: 0,
            stamp: None,
        },
        ms(52),
        ms(52),
    );
    assert_eq!(
        core.counters().rejected[crate::icmp::Reject::NotOurs.index()],
        1
    );
    let s = stats_of(&mut core);
    assert_eq!(s[0].errors.host_unreachable, 1);
    assert_eq!(s[1].errors.frag_needed, 1);
    assert_eq!(s[1].errors.last_mtu, Some(1400));
    assert_eq!(
        s[0].received + s[1].received,
        0,
        "an error is never a reply"
    );
}

#[test]
fn reassignment_keeps_stats_of_remaining_ids_and_forgets_removed_ones() {
    let mut core = Core::new(settings(), specs(3), 0, None);
    let sent = [
        send_all(&mut core, 0),
        send_all(&mut core, ms(34)),
        send_all(&mut core, ms(67)),
    ]
    .concat();
    assert_eq!(sent.len(), 3);
    // Keep target id 300 (was index 2), drop 100 and 200, add 400.
    let new = vec![
        TargetSpec {
            id: 300,
            addr: addr(3),
        },
        TargetSpec {
            id: 400,
            addr: addr(4),
        },
    ];
    core.assign(settings(), new, ms(70));
    reply(&mut core, &sent[2], ms(67), ms(68)); // in flight to the kept target: still counts
    reply(&mut core, &sent[0], 0, ms(69)); // to a removed target: untracked
    assert_eq!(core.counters().untracked_replies, 1);
    let w = core.take_window();
    assert_eq!(w.len(), 2);
    assert_eq!((w[0].id, w[0].stats.sent, w[0].stats.received), (300, 1, 1));
    assert_eq!((w[1].id, w[1].stats.sent), (400, 0));
    // The schedule restarted evenly over the new list.
    assert_eq!(core.next_due(ms(70)).map(|d| d.target), Some(0));
}

#[test]
fn windows_reset_but_in_flight_probes_carry_over() {
    let mut core = Core::new(settings(), specs(1), 0, None);
    let d = send_all(&mut core, 0)[0];
    let w1 = stats_of(&mut core);
    assert_eq!((w1[0].sent, w1[0].received), (1, 0));
    reply(&mut core, &d, 0, ms(10));
    let w2 = stats_of(&mut core);
    assert_eq!((w2[0].sent, w2[0].received), (0, 1));
}

#[test]
fn ring_overrun_expires_the_oldest_probe() {
    // 1 target, 1 ms interval, 60 s timeout: ring sized for it, so force wrap by sending a lot.
    let s = ProbeSettings {
        interval: Duration::from_millis(1),
        timeout: Duration::from_millis(1),
        ..settings()
    };
    let mut core = Core::new(s, specs(1), 0, None);
    let ring = core.ring.len() as u64;
    for t in 0..=ring {
        let d = core.next_due(t * 1_000_000).expect("due");
        core.sent(d, 0, 0); // deadline stays at 1 ms: never expired by time here
    }
    assert_eq!(core.counters().inflight_overruns, 1);
    assert_eq!(stats_of(&mut core)[0].lost, 1);
}

#[test]
fn reply_stamped_after_the_timeout_is_lost_and_late() {
    let mut core = Core::new(settings(), specs(1), 0, Some(1));
    let d = send_all(&mut core, 0)[0];
    // Read before the loop expired it, but the kernel stamped it 300 ms after the send.
    reply(&mut core, &d, 0, ms(300));
    assert!(core.finished());
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.received, s.lost, s.late), (0, 1, 1));
    assert_eq!(s.rtt.count(), 0);
}

#[test]
fn kernel_tx_stamp_replaces_the_user_stamp_when_plausible() {
    let mut core = Core::new(settings(), specs(2), 0, None);
    let a = send_all(&mut core, ms(1))[0]; // user stamp at 1 ms
    let b = send_all(&mut core, ms(50))[0]; // user stamp at 50 ms
    core.tx_stamp(a.global as u32, ms(1) + 3_000); // 3 us later: used
    core.tx_stamp(b.global as u32, ms(50) - 1); // before the user stamp: impossible, ignored
    core.tx_stamp(0xdead_beef, ms(60)); // no such probe
    assert_eq!(core.counters().kernel_tx_stamps, 1);
    assert_eq!(core.counters().unmatched_tx_stamps, 2);
    reply(&mut core, &a, ms(1), ms(1) + 10_000);
    reply(&mut core, &b, ms(50), ms(50) + 10_000);
    assert_eq!(
        core.counters().user_send_stamps,
        1,
        "b fell back to its user stamp"
    );
    let s = stats_of(&mut core);
    assert_eq!(
        s[0].rtt.quantile(0.5),
        Some(Duration::from_micros(7)),
        "wire RTT from the kernel stamp"
    );
    assert_eq!(s[1].rtt.quantile(0.5), Some(Duration::from_micros(10)));
}

/// Gathers every probe due at `now` the way a `sendmmsg` batch does (peeking ahead, nothing
/// marked sent yet).
fn gather(core: &Core, now: u64) -> Vec<Due> {
    (0..).map_while(|ahead| core.peek_due(now, ahead)).collect()
}

#[test]
fn a_gathered_batch_numbers_probes_as_sending_them_one_by_one_would() {
    // 3 targets, 100 ms interval, alternating sizes; 250 ms late: 8 probes due, targets repeat.
    let s = ProbeSettings {
        alt_payload_size: 1000,
        ..settings()
    };
    let mut one_by_one = Core::new(s, specs(3), 0, None);
    let mut batched = Core::new(s, specs(3), 0, None);
    for now in [ms(250), ms(400), ms(401)] {
        let expected = send_all(&mut one_by_one, now);
        let batch = gather(&batched, now);
        assert_eq!(batch, expected, "at {now} ns");
        for d in batch {
            batched.sent_in_batch(d, now, now);
        }
    }
    assert_eq!(batched.next_due_at(), one_by_one.next_due_at());
}

#[test]
fn a_dual_stack_list_is_visited_one_family_after_the_other() {
    // Each peer's two addresses side by side, as pinglists list them.
    let specs: Vec<TargetSpec> = (1..=3u8)
        .flat_map(|i| {
            [
                TargetSpec {
                    id: u64::from(i) * 10,
                    addr: addr(i),
                },
                TargetSpec {
                    id: u64::from(i) * 10 + 1,
                    addr: IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(i)]),
                },
            ]
        })
        .collect();
    let mut core = Core::new(settings(), specs, 0, None);
    let batch = gather(&core, ms(99));
    assert_eq!(
        batch.iter().map(|d| d.target).collect::<Vec<_>>(),
        [0, 2, 4, 1, 3, 5],
        "IPv4 first, then IPv6, each in list order"
    );
    // Still evenly spread, every target once per interval.
    let due: Vec<u64> = batch.iter().map(|d| d.due_ns).collect();
    assert_eq!(due, (0..6).map(|k| k * ms(100) / 6).collect::<Vec<_>>());
    for d in &batch {
        core.sent_in_batch(*d, ms(99), ms(99));
    }
    assert_eq!(gather(&core, ms(199))[0].target, 0);
}

#[test]
fn a_batch_cut_short_by_a_full_queue_resends_under_the_same_numbers() {
    let mut core = Core::new(settings(), specs(4), 0, None);
    let batch = gather(&core, ms(100));
    assert_eq!(batch.len(), 5);
    // The kernel took two, then the queue was full: the other three stay due, unchanged.
    for d in &batch[..2] {
        core.sent_in_batch(*d, ms(100), ms(100));
    }
    assert_eq!(gather(&core, ms(100)), batch[2..].to_vec());
}

#[test]
fn one_failed_message_of_a_batch_is_a_send_error_of_that_probe_only() {
    let mut core = Core::new(settings(), specs(3), 0, None);
    let batch = gather(&core, ms(70));
    assert_eq!(batch.len(), 3);
    core.sent_in_batch(batch[0], ms(70), ms(70));
    core.send_failed(batch[1], ms(70), SendError::Os(libc::EMSGSIZE));
    core.sent_in_batch(batch[2], ms(70), ms(70));
    for d in [batch[0], batch[2]] {
        core.tx_stamp(d.global as u32, ms(70) + 5_000);
        reply(&mut core, &d, ms(70), ms(70) + 12_000);
    }
    assert_eq!(core.counters().send_errors, 1);
    let s = stats_of(&mut core);
    assert_eq!((s[0].sent, s[0].received, s[0].send_errors), (1, 1, 0));
    assert_eq!((s[1].sent, s[1].lost, s[1].send_errors), (1, 1, 1));
    assert_eq!(s[1].last_send_error, Some(SendError::Os(libc::EMSGSIZE)));
    assert_eq!((s[2].sent, s[2].received, s[2].send_errors), (1, 1, 0));
}

#[test]
fn each_probe_of_a_batch_takes_its_rtt_from_its_own_kernel_stamp() {
    let mut core = Core::new(settings(), specs(3), 0, None);
    let batch_ns = ms(70);
    let batch = gather(&core, ms(70));
    for d in &batch {
        core.sent_in_batch(*d, batch_ns, ms(70));
    }
    // The kernel sent them 2, 9 and 16 us after the batch began; each answer took 4 us.
    for (k, d) in batch.iter().enumerate() {
        let tx = batch_ns + 2_000 + 7_000 * k as u64;
        core.tx_stamp(d.global as u32, tx);
        reply(&mut core, d, batch_ns, tx + 4_000);
    }
    assert_eq!(core.counters().kernel_tx_stamps, 3);
    for s in stats_of(&mut core) {
        assert_eq!(s.rtt.count(), 1);
        assert_eq!(s.rtt.quantile(0.5), Some(Duration::from_micros(4)));
    }
}

#[test]
fn a_batched_probe_without_its_kernel_stamp_is_received_but_not_an_rtt_sample() {
    let mut core = Core::new(settings(), specs(1), 0, None);
    let d = gather(&core, 0)[0];
    core.sent_in_batch(d, 0, 0);
    reply(&mut core, &d, 0, 30_000);
    assert_eq!(core.counters().batch_unstamped, 1);
    assert_eq!(core.counters().user_send_stamps, 0);
    let s = &stats_of(&mut core)[0];
    assert_eq!((s.sent, s.received, s.lost), (1, 1, 0));
    assert_eq!(s.rtt.count(), 0, "the batch's start is no send time");
}

#[test]
fn two_sizes_alternate_and_are_counted_apart() {
    // An MTU black hole: the large probes vanish or draw fragmentation-needed, the small ones pass.
    let s = ProbeSettings {
        alt_payload_size: 1372,
        ..ten_hz()
    };
    let mut core = Core::new(s, specs(1), 0, None);
    for k in 0..40u64 {
        let now = ms(100 * k);
        for d in send_all(&mut core, now) {
            assert_eq!(d.payload, if d.seq.is_multiple_of(2) { 56 } else { 1372 });
            if d.payload == 56 {
                reply(&mut core, &d, now, now + ms(1));
            } else if k % 4 == 1 {
                core.inbound(
                    Inbound::Error {
                        reporter: addr(254),
                        target: d.addr,
                        kind: IcmpErrorKind::FragmentationNeeded { mtu: 1000 },
                        seq16: (d.global & 0xffff) as u16,
                        stamp: None,
                    },
                    now + ms(1),
                    now + ms(1),
                );
            }
        }
        core.expire(now);
        assert_eq!(
            core.drain_flips().count(),
            0,
            "small replies keep it reachable"
        );
    }
    core.expire(ms(10_000));
    let st = &stats_of(&mut core)[0];
    assert_eq!((st.sent, st.received, st.lost), (40, 20, 20));
    assert_eq!(
        st.sizes
            .map(|c| (c.payload, c.sent, c.received, c.lost, c.too_big)),
        [(56, 20, 20, 0, 0), (1372, 20, 0, 20, 10)]
    );
    assert_eq!(st.errors.last_mtu, Some(1000));
}

#[test]
fn a_local_too_big_refusal_counts_for_its_size() {
    let s = ProbeSettings {
        alt_payload_size: 9000,
        ..ten_hz()
    };
    let mut core = Core::new(s, specs(1), 0, None);
    let small = core.next_due(0).expect("due");
    core.sent(small, 0, 0);
    let big = core.next_due(ms(100)).expect("due");
    assert_eq!(big.payload, 9000);
    core.send_failed(
        big,
        ms(100),
        crate::prober::stats::SendError::Os(libc::EMSGSIZE),
    );
    let st = &stats_of(&mut core)[0];
    assert_eq!(st.sizes[1].too_big, 1);
    assert_eq!(st.sizes[1].lost, 1);
}
