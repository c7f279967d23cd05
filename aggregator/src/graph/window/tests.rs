//! Step changes read exactly one window later; slots roll over and expire.

use super::*;

const SEC: Tick = TICKS_PER_SEC;

/// An edge probed at 10 Hz, reporting every second from `from` to `to` (seconds) with `pct`
/// loss; returns the new head.
fn feed(w: &mut LossWindows, mut head: Tick, from: u32, to: u32, pct: u64) -> Tick {
    for s in from..to {
        let now = s * SEC;
        w.record(head, now, 10, 10 * pct / 100, 0);
        head = now;
    }
    head
}

#[test]
fn a_step_to_twenty_percent_reads_exactly_one_window_later() {
    for (span, len_s) in [(Span::Short, 10), (Span::Minute, 60), (Span::Long, 600)] {
        // Start at an odd second so the step does not fall on a slot boundary.
        let start = 1_000 + 7;
        let mut w = LossWindows::default();
        let mut head = feed(&mut w, start * SEC, start, start + 700, 0);
        let step = start + 700;
        head = feed(&mut w, head, step, step + len_s, 20);
        let got = w.loss_pct(span, head, head).expect("probes");
        assert_eq!(got, 20.0, "{span:?} one window after the step");
        // And just before one window, the window still held clean probes.
        let mut early = LossWindows::default();
        let h = feed(&mut early, start * SEC, start, start + 700, 0);
        let h = feed(&mut early, h, step, step + len_s * 4 / 5 - 1, 20);
        assert!(
            early.loss_pct(span, h, h).expect("probes") < 20.0,
            "{span:?}"
        );
        // After a clear, 0 one window later.
        let clear = step + len_s;
        head = feed(&mut w, head, clear, clear + len_s, 0);
        assert_eq!(
            w.loss_pct(span, head, head),
            Some(0.0),
            "{span:?} after clear"
        );
    }
}

#[test]
fn windows_cover_four_fifths_to_all_of_their_length() {
    let mut w = LossWindows::default();
    // One report per second, all lost, for 700 s.
    let head = feed(&mut w, 0, 0, 700, 100);
    let (sent, _) = w.short.sums(Span::Short.slot_ticks(), head, head);
    assert!((80..=100).contains(&sent), "{sent}");
    let (sent, _) = w.minute.sums(Span::Minute.slot_ticks(), head, head);
    assert!((480..=600).contains(&sent), "{sent}");
    let (sent, _) = w.long.sums(Span::Long.slot_ticks(), head, head);
    assert!((4_800..=6_000).contains(&sent), "{sent}");
}

#[test]
fn silence_empties_the_windows_and_a_query_later_sees_nothing_stale() {
    let mut w = LossWindows::default();
    let head = feed(&mut w, 0, 0, 30, 50);
    assert_eq!(w.loss_pct(Span::Short, head, head), Some(50.0));
    // Read 11 s after the last report: the short window is empty, the minute one is not.
    assert_eq!(w.loss_pct(Span::Short, head, head + 11 * SEC), None);
    assert_eq!(w.loss_pct(Span::Minute, head, head + 11 * SEC), Some(50.0));
    assert_eq!(w.loss_pct(Span::Minute, head, head + 61 * SEC), None);
    assert_eq!(w.loss_pct(Span::Long, head, head + 601 * SEC), None);
    // A report much later clears every skipped slot.
    let later = head + 3_000 * SEC;
    w.record(head, later, 10, 0, 0);
    assert_eq!(w.loss_pct(Span::Long, later, later), Some(0.0));
    assert_eq!(w.worst_p99_ns(later, later), None);
}

#[test]
fn history_lists_two_minute_slots_newest_first_with_the_worst_p99() {
    let mut w = LossWindows::default();
    let mut head = 0;
    for (s, p99) in [(10u32, 40u8), (20, 90), (130, 30), (250, 0)] {
        let now = s * SEC;
        w.record(head, now, 10, 1, p99);
        head = now;
    }
    let h = w.history(head, head);
    let ago: Vec<u32> = h.iter().map(|e| e.0).collect();
    assert_eq!(ago, [0, 2, 4]);
    assert_eq!(h[2].1, 20);
    assert_eq!(h[2].3, pair_value_ns(90));
    assert_eq!(h[1].3, pair_value_ns(30));
    assert_eq!(h[0].3, None);
    assert_eq!(w.worst_p99_ns(head, head), pair_value_ns(90));
    // Ten minutes on, the first slot is gone.
    assert_eq!(
        w.worst_p99_ns(head, 600 * SEC + 10 * SEC),
        pair_value_ns(30)
    );
}

#[test]
fn slots_saturate_instead_of_wrapping() {
    let mut w = LossWindows::default();
    w.record(0, 0, 1 << 40, 1 << 40, 0);
    w.record(0, 1, 5, 0, 0);
    assert_eq!(w.loss_pct(Span::Short, 1, 1), Some(100.0));
}
