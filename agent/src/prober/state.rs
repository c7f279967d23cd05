//! The probe engine's state, with time passed in: what to send next, what is in flight, what a
//! reply or an error means, and when a probe counts as lost.
//!
//! Kept free of sockets and clocks so every rule (timeouts, duplicates, reordering, late replies,
//! reachability flips, reassignment) is unit-tested with exact times.
//!
//! In-flight probes live in a ring indexed by the engine-wide probe number (`global`), sized from
//! the probe rate × timeout. Probes are sent in deadline order, so expiring them is a walk from the
//! oldest slot: O(1) per probe, no timers, no allocation per packet.
//!
//! Reachability is judged faster than loss. A probe counts as *lost* only at its timeout (the
//! loss figures stay exact), but a target flips to unreachable as soon as `down_after` probes in a
//! row are each unanswered for [`miss_after`]: the target's retransmission timeout as TCP
//! estimates it (SRTT + 4·RTTVAR, RFC 6298) with TCP's Linux floor of [`MISS_FLOOR`], never above
//! the probe timeout. Why: a cut is certain
//! long before a one-second timeout runs out, and waiting for it made detection take
//! `timeout + (down_after − 1) × interval`. The rule's false-alarm probability is in
//! docs/aggregator.md.
//!
//! Clock steps: RTTs are kernel timestamps, which are wall-clock (`CLOCK_REALTIME`) times, while
//! deadlines and the schedule are monotonic. Every probe also keeps its monotonic send time, and a
//! wall-clock RTT that is negative or longer than the monotonic time the probe has been out is a
//! clock step, not a measurement: the reply counts as received, its RTT is discarded and
//! `EngineCounters::clock_steps` counts it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::icmp::IcmpErrorKind;
use crate::icmp::{Inbound, ProbeStamp};
use crate::prober::stats::{EngineCounters, SendError, SizeCounts, TargetStats};

use super::schedule::Schedule;
use super::{ProbeSettings, TargetFlip, TargetSpec, TargetWindow};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Empty,
    Pending,
    Replied,
    Expired,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    global: u64,
    target: u32,
    seq: u32,
    sent_ns: u64,
    /// Kernel TX timestamp (realtime ns), 0 until one arrives.
    tx_ns: u64,
    /// When it was sent on the monotonic clock: the bound a wall-clock RTT is checked against.
    sent_mono: u64,
    deadline: u64,
    status: Status,
    /// Sent in a `sendmmsg` batch: `sent_ns` is the batch's start, a lower bound only, so without a
    /// kernel TX stamp the reply gives no RTT sample.
    batched: bool,
}

const EMPTY: Slot = Slot {
    global: u64::MAX,
    target: u32::MAX,
    seq: 0,
    sent_ns: 0,
    tx_ns: 0,
    sent_mono: 0,
    deadline: 0,
    status: Status::Empty,
    batched: false,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Unknown,
    Up,
    Down,
}

#[derive(Debug)]
struct Target {
    spec: TargetSpec,
    stats: TargetStats,
    next_seq: u32,
    max_seq_replied: Option<u32>,
    consecutive_losses: u32,
    /// Probes sent since the newest answered one (see [`Core::check_down`]).
    unanswered: u32,
    /// When (monotonic) the `down_after`-th of those was due to be sent.
    nth_unanswered_ns: u64,
    /// Smoothed RTT and its mean deviation (RFC 6298), for [`miss_after`]; 0 before a sample.
    srtt_ns: u64,
    rttvar_ns: u64,
    reach: Reach,
}

impl Target {
    fn new(spec: TargetSpec) -> Self {
        Self {
            spec,
            stats: TargetStats::default(),
            next_seq: 0,
            max_seq_replied: None,
            consecutive_losses: 0,
            unanswered: 0,
            nth_unanswered_ns: 0,
            srtt_ns: 0,
            rttvar_ns: 0,
            reach: Reach::Unknown,
        }
    }
}

/// A probe ready to be sent: the caller stamps it, sends it, then calls [`Core::sent`] or
/// [`Core::send_failed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Index of the target.
    pub target: u32,
    /// Where to send it.
    pub addr: IpAddr,
    /// Engine-wide probe number.
    pub global: u64,
    /// Per-target sequence.
    pub seq: u32,
    /// When it was scheduled (monotonic ns).
    pub due_ns: u64,
    /// Payload bytes it carries (the settings alternate two sizes per target).
    pub payload: usize,
}

/// Engine state; all times are nanoseconds (monotonic for scheduling, realtime for RTTs).
#[derive(Debug)]
pub struct Core {
    settings: ProbeSettings,
    targets: Vec<Target>,
    by_addr: HashMap<IpAddr, u32>,
    ring: Vec<Slot>,
    next_global: u64,
    oldest: u64,
    schedule: Schedule,
    /// The order the schedule visits targets in: the IPv4 ones, then the IPv6 ones, each in list
    /// order. A dual-stack list alternates families (a peer's two addresses are next to each
    /// other), and a send batch holds one family, so grouping them keeps batches whole.
    order: Vec<u32>,
    per_target: Option<u64>,
    counters: EngineCounters,
    flips: Vec<TargetFlip>,
}

fn ring_size(settings: &ProbeSettings, targets: usize) -> usize {
    let per_interval = targets as u128;
    let windows = settings.timeout.as_nanos() / settings.interval.as_nanos().max(1) + 2;
    let need = (per_interval * windows * 2).clamp(1024, 1 << 24);
    (need as usize).next_power_of_two()
}

/// The shortest time a probe must go unanswered to count towards a reachability flip: Linux TCP's
/// minimum retransmission timeout, well above any healthy in-cluster RTT, short enough that a cut
/// is seen within a second at 10 Hz.
pub const MISS_FLOOR: Duration = Duration::from_millis(200);

/// Slack for a wall-clock RTT over the monotonic time the probe has been out (the two clocks may
/// run at rates that differ by up to 500 ppm while NTP slews).
const CLOCK_SLACK_NS: u64 = 1_000_000;

/// How long a probe to a target with smoothed RTT `srtt_ns` and mean deviation `rttvar_ns` must go
/// unanswered before it counts as missing: TCP's retransmission timeout `SRTT + 4·RTTVAR` (RFC
/// 6298), at least [`MISS_FLOOR`], at most the probe timeout. One slow reply raises it for a few
/// probes only (the deviation decays by a quarter per sample), so it cannot hold detection back
/// for long.
#[must_use]
pub fn miss_after(srtt_ns: u64, rttvar_ns: u64, timeout: Duration) -> u64 {
    let floor = MISS_FLOOR.as_nanos() as u64;
    floor
        .max(srtt_ns.saturating_add(rttvar_ns.saturating_mul(4)))
        .min(timeout.as_nanos() as u64)
}

impl Core {
    /// A core probing `targets` from `now_ns`; `per_target` bounds the run (one-shot mode).
    #[must_use]
    pub fn new(
        settings: ProbeSettings,
        targets: Vec<TargetSpec>,
        now_ns: u64,
        per_target: Option<u64>,
    ) -> Self {
        let mut core = Self {
            settings,
            targets: Vec::new(),
            by_addr: HashMap::new(),
            ring: Vec::new(),
            next_global: 0,
            oldest: 0,
            schedule: Schedule::new(now_ns, 1, 0, per_target),
            order: Vec::new(),
            per_target,
            counters: EngineCounters::default(),
            flips: Vec::new(),
        };
        core.assign(settings, targets, now_ns);
        core
    }

    /// Replaces the target list. Targets whose id and address stay keep their stats and sequence;
    /// a target whose address changed under the same id (ids do not follow addresses) starts
    /// afresh, since its probes in flight went to the old address; probes in flight to removed
    /// targets are forgotten; the schedule restarts evenly from `now_ns`.
    pub fn assign(&mut self, settings: ProbeSettings, specs: Vec<TargetSpec>, now_ns: u64) {
        let mut old: HashMap<u64, (u32, Target)> = std::mem::take(&mut self.targets)
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t.spec.id, (i as u32, t)))
            .collect();
        let mut remap: HashMap<u32, u32> = HashMap::new();
        let mut targets = Vec::with_capacity(specs.len());
        for (new_idx, spec) in specs.into_iter().enumerate() {
            let t = match old.remove(&spec.id) {
                Some((old_idx, mut t)) if t.spec.addr == spec.addr => {
                    remap.insert(old_idx, new_idx as u32);
                    t.spec = spec;
                    t
                }
                _ => Target::new(spec),
            };
            targets.push(t);
        }
        self.by_addr = targets
            .iter()
            .enumerate()
            .map(|(i, t)| (t.spec.addr, i as u32))
            .collect();
        self.targets = targets;
        let size = ring_size(&settings, self.targets.len()).max(self.ring.len());
        let old_ring = std::mem::replace(&mut self.ring, vec![EMPTY; size]);
        for mut slot in old_ring {
            if slot.status == Status::Empty {
                continue;
            }
            match remap.get(&slot.target) {
                Some(&t) => slot.target = t,
                None => continue,
            }
            let i = (slot.global as usize) & (size - 1);
            self.ring[i] = slot;
        }
        self.settings = settings;
        let family = |i: &u32| self.targets[*i as usize].spec.addr.is_ipv6();
        let mut order: Vec<u32> = (0..self.targets.len() as u32).collect();
        order.sort_by_key(family);
        self.order = order;
        self.schedule = Schedule::new(
            now_ns,
            settings.interval.as_nanos() as u64,
            self.targets.len(),
            self.per_target,
        );
    }

    fn mask(&self) -> usize {
        self.ring.len() - 1
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// The next probe if it is due at `now_ns`.
    pub fn next_due(&mut self, now_ns: u64) -> Option<Due> {
        self.peek_due(now_ns, 0)
    }

    /// The probe `ahead` places after [`Core::next_due`]'s, if it is due by `now_ns`: how a batch
    /// is gathered before any of it is sent. Its numbers are the ones it gets once every probe
    /// before it has been passed to [`Core::sent`] or [`Core::send_failed`], in order.
    #[must_use]
    pub fn peek_due(&self, now_ns: u64, ahead: u64) -> Option<Due> {
        let (place, due_ns) = self.schedule.peek_at(ahead)?;
        if due_ns > now_ns {
            return None;
        }
        let t = self.order[place] as usize;
        let target = &self.targets[t];
        // Earlier probes of the same target in the batch: one per full turn of the schedule.
        let turns = ahead / (self.targets.len() as u64).max(1);
        let seq = target.next_seq.wrapping_add(turns as u32);
        let payload = match self.size_index(seq) {
            Some(1) => self.settings.alt_payload_size,
            _ => self.settings.payload_size,
        };
        Some(Due {
            target: t as u32,
            addr: target.spec.addr,
            global: self.next_global.wrapping_add(ahead),
            seq,
            due_ns,
            payload,
        })
    }

    /// Which of the two payload sizes probe `seq` of a target carries; `None` when the settings
    /// have only one size (nothing is counted per size then).
    fn size_index(&self, seq: u32) -> Option<usize> {
        (self.settings.alt_payload_size != 0).then_some((seq & 1) as usize)
    }

    /// Applies `f` to the per-size counters of probe `seq` of target `t`, when sizes cycle.
    fn per_size(&mut self, t: usize, seq: u32, f: impl FnOnce(&mut SizeCounts)) {
        if let Some(i) = self.size_index(seq)
            && let Some(target) = self.targets.get_mut(t)
        {
            f(&mut target.stats.sizes[i]);
        }
    }

    /// When the next probe is due, if any.
    #[must_use]
    pub fn next_due_at(&self) -> Option<u64> {
        self.schedule.peek().map(|(_, at)| at)
    }

    /// The earliest deadline among probes in flight.
    #[must_use]
    pub fn next_deadline(&self) -> Option<u64> {
        let mut g = self.oldest;
        while g < self.next_global {
            let s = &self.ring[(g as usize) & self.mask()];
            if s.global == g && s.status == Status::Pending {
                return Some(s.deadline);
            }
            g += 1;
        }
        None
    }

    /// Records that `due` left at `sent_ns` (realtime) / `now_ns` (monotonic).
    pub fn sent(&mut self, due: Due, sent_ns: u64, now_ns: u64) {
        self.record_sent(due, sent_ns, now_ns, false);
    }

    /// Records that `due` left in a `sendmmsg` batch that started at `batch_ns` (realtime): its RTT
    /// then comes from its kernel TX stamp only, since the batch's start is earlier than the
    /// packet's own send by the packets ahead of it.
    pub fn sent_in_batch(&mut self, due: Due, batch_ns: u64, now_ns: u64) {
        self.record_sent(due, batch_ns, now_ns, true);
    }

    fn record_sent(&mut self, due: Due, sent_ns: u64, now_ns: u64, batched: bool) {
        let i = (due.global as usize) & self.mask();
        if self.ring[i].status == Status::Pending {
            // The ring wrapped onto a probe still waiting: it has waited a full ring; call it lost.
            self.counters.inflight_overruns += 1;
            self.expire_slot(i);
        }
        self.ring[i] = Slot {
            global: due.global,
            target: due.target,
            seq: due.seq,
            sent_ns,
            tx_ns: 0,
            sent_mono: now_ns,
            deadline: now_ns.saturating_add(self.settings.timeout.as_nanos() as u64),
            status: Status::Pending,
            batched,
        };
        self.advance(due, now_ns);
        self.targets[due.target as usize].stats.sent += 1;
        self.per_size(due.target as usize, due.seq, |s| {
            s.payload = due.payload as u32;
            s.sent += 1;
        });
        self.check_down(due.target as usize, now_ns);
    }

    /// Records that the kernel refused to send `due` (and why): counted as sent and lost at once.
    pub fn send_failed(&mut self, due: Due, now_ns: u64, why: SendError) {
        self.advance(due, now_ns);
        self.counters.send_errors += 1;
        let t = &mut self.targets[due.target as usize];
        t.stats.sent += 1;
        t.stats.send_errors += 1;
        t.stats.last_send_error = Some(why);
        self.lose(due.target as usize);
        let too_big = why == SendError::Os(libc::EMSGSIZE);
        self.per_size(due.target as usize, due.seq, |s| {
            s.payload = due.payload as u32;
            s.sent += 1;
            s.lost += 1;
            s.too_big += u64::from(too_big);
        });
        self.check_down(due.target as usize, now_ns);
    }

    fn advance(&mut self, due: Due, now_ns: u64) {
        let lag = Duration::from_nanos(now_ns.saturating_sub(due.due_ns));
        if lag > self.counters.max_schedule_lag {
            self.counters.max_schedule_lag = lag;
        }
        self.next_global += 1;
        let down_after = self.settings.down_after.max(1);
        let t = &mut self.targets[due.target as usize];
        t.next_seq = due.seq.wrapping_add(1);
        t.unanswered = t.unanswered.saturating_add(1);
        if t.unanswered == down_after {
            // Its scheduled time, not when the loop got to it: the probe that checks it is then
            // never a few microseconds short of the miss time, which would cost a whole interval.
            t.nth_unanswered_ns = due.due_ns.min(now_ns);
        }
        self.schedule.advance();
    }

    fn lose(&mut self, t: usize) {
        let target = &mut self.targets[t];
        target.stats.lost += 1;
        target.consecutive_losses += 1;
    }

    /// Flips target `t` to unreachable when its last `down_after` probes are all unanswered and
    /// the newest of them has been out for [`miss_after`]. Checked whenever a probe to `t` leaves,
    /// so it costs O(1) per probe; detection is therefore late by at most one interval.
    fn check_down(&mut self, t: usize, now_ns: u64) {
        let down_after = self.settings.down_after.max(1);
        let timeout = self.settings.timeout;
        let target = &mut self.targets[t];
        if target.reach == Reach::Down || target.unanswered < down_after {
            return;
        }
        let miss = miss_after(target.srtt_ns, target.rttvar_ns, timeout);
        if now_ns.saturating_sub(target.nth_unanswered_ns) < miss {
            return;
        }
        target.reach = Reach::Down;
        self.flips.push(TargetFlip {
            id: target.spec.id,
            addr: target.spec.addr,
            reachable: false,
            consecutive_losses: target.unanswered.saturating_sub(1),
        });
    }

    fn expire_slot(&mut self, i: usize) {
        let slot = self.ring[i];
        self.ring[i].status = Status::Expired;
        if slot.status == Status::Pending && (slot.target as usize) < self.targets.len() {
            self.lose(slot.target as usize);
            self.per_size(slot.target as usize, slot.seq, |s| s.lost += 1);
        }
    }

    /// Counts every probe whose deadline has passed at `now_ns` as lost.
    pub fn expire(&mut self, now_ns: u64) {
        while self.oldest < self.next_global {
            let i = (self.oldest as usize) & self.mask();
            let s = self.ring[i];
            if s.global == self.oldest && s.status == Status::Pending {
                if s.deadline > now_ns {
                    break;
                }
                self.expire_slot(i);
            }
            self.oldest += 1;
        }
    }

    /// True when a bounded run has sent everything and nothing is in flight.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.schedule.exhausted() && self.next_deadline().is_none()
    }

    /// Applies a verified packet the kernel received at `rx_ns` (realtime), read at `now_ns`
    /// (monotonic).
    pub fn inbound(&mut self, pkt: Inbound, rx_ns: u64, now_ns: u64) {
        match pkt {
            Inbound::Reply { from, stamp } => self.reply(from, stamp, rx_ns, now_ns),
            Inbound::Error {
                target,
                kind,
                seq16,
                stamp,
                ..
            } => {
                let slot = match stamp {
                    Some(s) => self.slot_of(s.global),
                    None => self.slot_by_seq16(seq16, target),
                };
                let t = match slot {
                    Some(i) if self.target_addr(self.ring[i].target) == Some(target) => {
                        Some(self.ring[i].target)
                    }
                    // Too old to be in flight, but about a target we probe: still worth counting.
                    _ => self.by_addr.get(&target).copied(),
                };
                match t {
                    Some(t) => self.targets[t as usize].stats.errors.record(kind),
                    None => self.counters.reject(crate::icmp::Reject::NotOurs),
                }
                if let (Some(i), IcmpErrorKind::FragmentationNeeded { .. }) = (slot, kind)
                    && Some(self.ring[i].target) == t
                {
                    let (target, seq) = (self.ring[i].target as usize, self.ring[i].seq);
                    self.per_size(target, seq, |s| s.too_big += 1);
                }
            }
        }
    }

    fn target_addr(&self, t: u32) -> Option<IpAddr> {
        self.targets.get(t as usize).map(|t| t.spec.addr)
    }

    fn slot_of(&self, global: u64) -> Option<usize> {
        let i = (global as usize) & self.mask();
        (self.ring[i].global == global && self.ring[i].status != Status::Empty).then_some(i)
    }

    fn slot_by_seq16(&self, seq16: u16, target: IpAddr) -> Option<usize> {
        // Newest first: of the probes sharing these 16 bits, the most recent is the likely one.
        let top = self.next_global.checked_sub(1)?;
        let mut g = top.checked_sub(top.wrapping_sub(u64::from(seq16)) & 0xffff)?;
        let lowest = self.next_global.saturating_sub(self.ring.len() as u64);
        while g >= lowest {
            if let Some(i) = self.slot_of(g)
                && self.target_addr(self.ring[i].target) == Some(target)
            {
                return Some(i);
            }
            g = g.checked_sub(0x1_0000)?;
        }
        None
    }

    /// Applies a kernel TX timestamp for the probe whose global id has these low 32 bits.
    ///
    /// A stamp is taken only if it is plausible: not before the user-space stamp taken just before
    /// the send, and within the timeout of it.
    pub fn tx_stamp(&mut self, key: u32, tx_ns: u64) {
        let timeout_ns = self.settings.timeout.as_nanos() as u64;
        let i = (key as usize) & self.mask();
        let s = &mut self.ring[i];
        if s.status != Status::Empty
            && s.global as u32 == key
            && tx_ns >= s.sent_ns
            && tx_ns - s.sent_ns <= timeout_ns
        {
            s.tx_ns = tx_ns;
            self.counters.kernel_tx_stamps += 1;
        } else {
            self.counters.unmatched_tx_stamps += 1;
        }
    }

    fn reply(&mut self, from: IpAddr, stamp: ProbeStamp, rx_ns: u64, now_ns: u64) {
        let Some(i) = self.slot_of(stamp.global) else {
            self.counters.untracked_replies += 1;
            if let Some(&t) = self.by_addr.get(&from) {
                self.targets[t as usize].stats.late += 1;
            }
            return;
        };
        let slot = self.ring[i];
        if self.target_addr(slot.target) != Some(from) || slot.sent_ns != stamp.sent_ns {
            // Signed by us but not for this slot: an earlier assignment's probe.
            self.counters.untracked_replies += 1;
            return;
        }
        let timeout_ns = self.settings.timeout.as_nanos() as u64;
        let sent_ns = if slot.tx_ns != 0 {
            slot.tx_ns
        } else {
            slot.sent_ns
        };
        // The probe has been out at most this long (monotonic), so a longer or negative wall-clock
        // RTT means the wall clock stepped in between.
        let out_ns = now_ns.saturating_sub(slot.sent_mono);
        let stepped = rx_ns < sent_ns || rx_ns - sent_ns > out_ns.saturating_add(CLOCK_SLACK_NS);
        if slot.status == Status::Pending && !stepped && rx_ns - sent_ns > timeout_ns {
            // Read after its deadline passed (the loop reads in batches): lost, and late.
            self.expire_slot(i);
            self.targets[slot.target as usize].stats.late += 1;
            return;
        }
        let t = &mut self.targets[slot.target as usize];
        match slot.status {
            Status::Pending => {
                self.ring[i].status = Status::Replied;
                t.stats.received += 1;
                if self.settings.alt_payload_size != 0 {
                    t.stats.sizes[(slot.seq & 1) as usize].received += 1;
                }
                if stepped {
                    self.counters.clock_steps += 1;
                } else if slot.batched && slot.tx_ns == 0 {
                    self.counters.batch_unstamped += 1;
                } else {
                    let rtt = rx_ns - sent_ns;
                    t.stats.rtt.record_ns(rtt);
                    if t.srtt_ns == 0 {
                        (t.srtt_ns, t.rttvar_ns) = (rtt.max(1), rtt / 2);
                    } else {
                        t.rttvar_ns = (3 * t.rttvar_ns + t.srtt_ns.abs_diff(rtt)) / 4;
                        t.srtt_ns = (7 * t.srtt_ns + rtt) / 8;
                    }
                    if slot.tx_ns == 0 {
                        self.counters.user_send_stamps += 1;
                    }
                }
                match t.max_seq_replied {
                    Some(m) if slot.seq.wrapping_sub(m) as i32 <= 0 => t.stats.reordered += 1,
                    _ => {
                        t.max_seq_replied = Some(slot.seq);
                        // Probes sent after this one are still unanswered.
                        t.unanswered = t.next_seq.wrapping_sub(slot.seq).saturating_sub(1);
                        if t.unanswered >= self.settings.down_after.max(1) {
                            // Their send times are gone; counting from now can only be late.
                            t.nth_unanswered_ns = now_ns;
                        }
                    }
                }
                t.consecutive_losses = 0;
                if t.reach == Reach::Down {
                    self.flips.push(TargetFlip {
                        id: t.spec.id,
                        addr: t.spec.addr,
                        reachable: true,
                        consecutive_losses: 0,
                    });
                }
                t.reach = Reach::Up;
            }
            Status::Replied => t.stats.duplicates += 1,
            Status::Expired => t.stats.late += 1,
            Status::Empty => self.counters.untracked_replies += 1,
        }
    }

    /// Engine-wide counters.
    #[must_use]
    pub fn counters(&self) -> &EngineCounters {
        &self.counters
    }

    /// Mutable engine-wide counters (rejects and socket errors are counted by the I/O loop).
    pub fn counters_mut(&mut self) -> &mut EngineCounters {
        &mut self.counters
    }

    /// Reachability changes since the last call.
    pub fn drain_flips(&mut self) -> std::vec::Drain<'_, TargetFlip> {
        self.flips.drain(..)
    }

    /// Every target's window so far; starts new windows.
    pub fn take_window(&mut self) -> Vec<TargetWindow> {
        self.targets
            .iter_mut()
            .map(|t| TargetWindow {
                id: t.spec.id,
                addr: t.spec.addr,
                stats: t.stats.take(),
            })
            .collect()
    }

    /// Number of targets.
    #[must_use]
    pub fn target_count(&self) -> usize {
        self.targets.len()
    }
}

#[cfg(test)]
mod tests;
