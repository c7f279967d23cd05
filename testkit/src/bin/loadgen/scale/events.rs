//! The scripted events, each timed from the moment it happens.
//!
//! The edges an event must turn DOWN are the ones in the agents' lists at that moment (lists keep
//! rotating under the budget policy; an edge assigned after the cut starts UNKNOWN and is not
//! what detection time is about). Assignment bytes are counted on the simulated agents' side:
//! all of them, against those whose list actually changed (a session's first list counts as
//! changed: it had to be sent).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use echomesh_proto::v1::{CulpritKind, EdgeState};
use tokio::task::JoinHandle;

use super::cluster::{Cluster, PER_NODE, node_name};
use super::look::{self, Reader};
use super::{Figures, agent};
use crate::stats::pct;

/// Longest wait for any verdict.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How often the read API is polled while waiting: often enough to time a 3 s goal, rarely
/// enough that the node-filtered `ListEdges` scans do not load the server being measured.
const POLL: Duration = Duration::from_millis(250);

/// The event script's context.
pub(crate) struct Events {
    pub(crate) cluster: Arc<Cluster>,
    pub(crate) url: String,
    pub(crate) fast_probers: usize,
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || format!("not within {}s", TIMEOUT.as_secs()),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

impl Events {
    /// The end of an event's byte-counting window: 10 s from now. The budget policy's rotation
    /// moves an eighth of the lists every eighth of an epoch (the agents' epochs are staggered),
    /// so no stretch is free of it and the window's changed lists include the rotation's; what
    /// the ratio checks is that no list is sent that did not change.
    fn byte_window() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// The assignment counters at `end`, read by a task of its own so slow waits elsewhere do
    /// not move the end of the window.
    fn counters_at(&self, end: Instant) -> JoinHandle<[u64; 4]> {
        let cl = self.cluster.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(end.into()).await;
            cl.assign.snapshot()
        })
    }

    /// Runs every event; returns the node that left (excluded from the coverage check).
    pub(crate) async fn run_all(
        &self,
        c: &mut Reader,
        tasks: &mut [Option<JoinHandle<()>>],
        figs: &mut Figures,
    ) -> anyhow::Result<usize> {
        self.node_vanishes(c, figs).await?;
        self.zone_partitions(c, figs).await?;
        self.restart_wave(tasks, figs).await?;
        self.join_and_leave(tasks, figs).await
    }

    /// Heals every cut and waits until the graph has no DOWN edges left (at most 30 s).
    async fn heal(&self, c: &mut Reader, base_down: u64) -> anyhow::Result<()> {
        self.cluster.truth.heal();
        self.cluster.truth_changed();
        let t = Instant::now();
        while t.elapsed() < TIMEOUT {
            if look::summary(c).await?.edges_down <= base_down {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!(
            "  healed: DOWN edges back to {base_down} or fewer after {:.1}s",
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// (a) A node vanishes: every edge from and to it is cut.
    async fn node_vanishes(&self, c: &mut Reader, figs: &mut Figures) -> anyhow::Result<()> {
        let cl = &self.cluster;
        let x = cl.nodes / 2 + 7;
        println!(
            "== event: node {} vanishes (all its edges cut both ways)",
            node_name(x)
        );
        let base_down = look::summary(c).await?.edges_down;
        let mut want: HashSet<(usize, usize)> = cl.probers_of(x).into_iter().collect();
        for a in [x * PER_NODE, x * PER_NODE + 1] {
            for &t in cl.list(a).iter() {
                want.insert((a, t as usize));
            }
        }
        let t0 = Instant::now();
        cl.truth.cut_node(x);
        cl.truth_changed();
        let (mut down_at, mut flag_at) = (None, None);
        while t0.elapsed() < TIMEOUT && (down_at.is_none() || flag_at.is_none()) {
            if down_at.is_none() {
                let edges = look::edges_of(c, x).await?;
                let still: Vec<_> = want
                    .iter()
                    .filter(|(s, t)| {
                        let now_assigned = cl.list(*s).contains(&(*t as u32));
                        now_assigned && edges.get(&(*s, *t)) != Some(&EdgeState::Down)
                    })
                    .collect();
                if still.is_empty() {
                    down_at = Some(t0.elapsed());
                }
            }
            if flag_at.is_none() {
                let name = node_name(x);
                if look::culprits(c).await?.iter().any(|k| {
                    k.node == name
                        && matches!(
                            k.kind(),
                            CulpritKind::Node | CulpritKind::PodNetwork | CulpritKind::HostNetwork
                        )
                }) {
                    flag_at = Some(t0.elapsed());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        figs.add(
            "node isolation: all its edges DOWN",
            format!("{} ({} edges)", secs(down_at), want.len()),
            "<= 3 s",
        );
        figs.add(
            "node isolation: flagged by Diagnose",
            secs(flag_at),
            "<= 3 s",
        );
        self.heal(c, base_down).await
    }

    /// (b) A zone partitions from the rest.
    async fn zone_partitions(&self, c: &mut Reader, figs: &mut Figures) -> anyhow::Result<()> {
        let cl = &self.cluster;
        let last = cl.nodes - 1;
        let zone = cl.truth.zone(last);
        let zone_name = cl.truth.zone_name(last);
        let size = (0..cl.nodes).filter(|&n| cl.truth.zone(n) == zone).count();
        println!("== event: {zone_name} ({size} nodes) partitions from the other zones");
        let base_down = look::summary(c).await?.edges_down;
        // Crossing pairs in the lists now: what must turn DOWN.
        let crossing: u64 = (0..cl.nodes * PER_NODE)
            .map(|a| {
                let inside = cl.truth.zone(a / PER_NODE) == zone;
                cl.list(a)
                    .iter()
                    .filter(|&&t| (cl.truth.zone(t as usize / PER_NODE) == zone) != inside)
                    .count() as u64
            })
            .sum();
        let stop = Arc::new(AtomicBool::new(false));
        let getter = look::get_edge_loop(&self.url, cl.clone(), stop.clone());
        let t0 = Instant::now();
        cl.truth.cut_zone(zone);
        cl.truth_changed();
        let (mut status_at, mut diag_at) = (None, None);
        let mut seen_down = 0;
        while t0.elapsed() < TIMEOUT && (status_at.is_none() || diag_at.is_none()) {
            if status_at.is_none() {
                seen_down = look::summary(c).await?.edges_down.saturating_sub(base_down);
                if seen_down * 10 >= crossing * 9 {
                    status_at = Some(t0.elapsed());
                }
            }
            if diag_at.is_none()
                && look::culprits(c)
                    .await?
                    .iter()
                    .any(|k| k.kind() == CulpritKind::Zone && k.zone == zone_name)
            {
                diag_at = Some(t0.elapsed());
            }
            tokio::time::sleep(POLL).await;
        }
        // GetEdge through the storm: the first 10 s after the cut.
        tokio::time::sleep(Duration::from_secs(10).saturating_sub(t0.elapsed())).await;
        stop.store(true, Ordering::Relaxed);
        let mut gets = getter.await??;
        figs.add(
            "zone partition: visible in status (Summary: 90 % of crossing edges DOWN)",
            format!(
                "{} ({seen_down} of {crossing} crossing edges DOWN)",
                secs(status_at)
            ),
            "<= 3 s",
        );
        figs.add(
            "zone partition: zone named by Diagnose",
            secs(diag_at),
            "<= 3 s",
        );
        figs.add(
            "zone partition: GetEdge p99 during the storm",
            format!(
                "{:.2} ms ({} calls, max {:.1} ms, alerts sent so far {})",
                pct(&mut gets, 0.99) / 1000.0,
                gets.len(),
                pct(&mut gets, 1.0) / 1000.0,
                cl.alerts.load(Ordering::Relaxed)
            ),
            "< 10 ms",
        );
        self.heal(c, base_down).await
    }

    /// (c) 5 % of the nodes restart: both sessions close and reconnect with a new boot id.
    async fn restart_wave(
        &self,
        tasks: &mut [Option<JoinHandle<()>>],
        figs: &mut Figures,
    ) -> anyhow::Result<()> {
        let cl = &self.cluster;
        let nodes: Vec<usize> = (0..cl.nodes).filter(|n| n % 20 == 3).collect();
        println!("== event: {} nodes (5 %) restart", nodes.len());
        let end = Self::byte_window();
        let window = end - Instant::now();
        let before = cl.assign.snapshot();
        let after = self.counters_at(end);
        let mut firsts = Vec::new();
        for &n in &nodes {
            for a in [n * PER_NODE, n * PER_NODE + 1] {
                if let Some(t) = tasks[a].take() {
                    t.abort();
                }
            }
        }
        let t0 = Instant::now();
        for &n in &nodes {
            for a in [n * PER_NODE, n * PER_NODE + 1] {
                let (tx, rx) = tokio::sync::oneshot::channel();
                tasks[a] = Some(tokio::spawn(agent::run(cl.clone(), a, 2, Some(tx))));
                firsts.push(rx);
            }
        }
        let mut lat = Vec::new();
        for rx in firsts {
            if let Ok(Ok(at)) = tokio::time::timeout_at((t0 + TIMEOUT).into(), rx).await {
                lat.push(at.duration_since(t0).as_micros().min(u128::from(u32::MAX)) as u32);
            }
        }
        let n = nodes.len() * PER_NODE;
        let after = after.await?;
        figs.add(
            "restart 5 %: new assignments on the wire",
            format!(
                "p50 {:.2} s, max {:.2} s ({} of {n} sessions assigned)",
                pct(&mut lat, 0.5) / 1e6,
                pct(&mut lat, 1.0) / 1e6,
                lat.len()
            ),
            "<= 5 s",
        );
        figs.add(
            "restart 5 %: assignment bytes sent / bytes of changed lists",
            bytes_ratio(before, after, window),
            "<= 2x",
        );
        Ok(())
    }

    /// (d) A node joins while another leaves.
    async fn join_and_leave(
        &self,
        tasks: &mut [Option<JoinHandle<()>>],
        figs: &mut Figures,
    ) -> anyhow::Result<usize> {
        let cl = &self.cluster;
        let (joiner, leaver) = (cl.nodes, 1);
        println!(
            "== event: node {} joins ({}) while node {} leaves",
            node_name(joiner),
            cl.truth.zone_name(joiner),
            node_name(leaver)
        );
        let end = Self::byte_window();
        let window = end - Instant::now();
        let before = cl.assign.snapshot();
        let after = self.counters_at(end);
        let t0 = Instant::now();
        for a in [leaver * PER_NODE, leaver * PER_NODE + 1] {
            if let Some(t) = tasks[a].take() {
                t.abort();
            }
            *cl.lists[a].lock() = Arc::new(Vec::new());
        }
        let mut firsts = Vec::new();
        for a in [joiner * PER_NODE, joiner * PER_NODE + 1] {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks[a] = Some(tokio::spawn(agent::run(cl.clone(), a, 1, Some(tx))));
            firsts.push(rx);
        }
        let (mut probed_at, mut gone_at) = (None, None);
        while t0.elapsed() < TIMEOUT && (probed_at.is_none() || gone_at.is_none()) {
            if probed_at.is_none() {
                let probers = cl.probers_of(joiner);
                let per = |net: usize| probers.iter().filter(|(_, t)| t % PER_NODE == net).count();
                if per(0) >= self.fast_probers && per(1) >= self.fast_probers {
                    probed_at = Some(t0.elapsed());
                }
            }
            if gone_at.is_none() && cl.probers_of(leaver).is_empty() {
                gone_at = Some(t0.elapsed());
            }
            tokio::time::sleep(POLL).await;
        }
        let mut own = Vec::new();
        for rx in firsts {
            if let Ok(Ok(at)) = tokio::time::timeout_at((t0 + TIMEOUT).into(), rx).await {
                own.push(at.duration_since(t0).as_secs_f64());
            }
        }
        let after = after.await?;
        figs.add(
            "join: the new node's own lists on the wire",
            own.iter()
                .copied()
                .reduce(f64::max)
                .map_or_else(|| "not within 30s".into(), |s| format!("{s:.2} s")),
            "<= 5 s",
        );
        figs.add(
            "join: k fast probers per network probe the new node",
            secs(probed_at),
            "<= 5 s",
        );
        figs.add(
            "leave: no list holds the node that left",
            secs(gone_at),
            "<= 5 s",
        );
        figs.add(
            "join + leave: assignment bytes sent / bytes of changed lists",
            bytes_ratio(before, after, window),
            "<= 2x",
        );
        Ok(leaver)
    }
}

/// "sent / changed" of two assignment counter snapshots.
fn bytes_ratio(before: [u64; 4], after: [u64; 4], window: Duration) -> String {
    let d: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let ratio = if d[3] == 0 {
        if d[1] == 0 { 1.0 } else { f64::INFINITY }
    } else {
        d[1] as f64 / d[3] as f64
    };
    format!(
        "{ratio:.2}x over {:.1}s, rotation included ({} assignments, {:.1} MB; {} with a changed list, {:.1} MB)",
        window.as_secs_f64(),
        d[0],
        d[1] as f64 / 1e6,
        d[2],
        d[3] as f64 / 1e6
    )
}
