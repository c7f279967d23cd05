//! The simulated network: which pairs of nodes can reach each other and with what round trip.
//!
//! The simulated agents answer their reports from this model instead of from real probes, so a
//! scripted event (a node vanishes, a zone partitions) is one change here and every agent's next
//! report shows it, exactly as real probes would within one report interval. A version number
//! lets agents re-encode their report only when the truth or their list changed.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;

/// What is cut right now.
#[derive(Debug, Default, Clone)]
struct Cuts {
    /// Nodes cut from everything, both ways.
    nodes: HashSet<usize>,
    /// A zone cut from every other zone (its inside still works).
    zone: Option<usize>,
}

/// The simulated network: nodes in zones of `zone_size`, `zones` zones (a node beyond the last
/// zone wraps around to the first, so a joining node lands in an existing zone).
#[derive(Debug)]
pub(crate) struct Truth {
    zone_size: usize,
    zones: usize,
    cuts: RwLock<Cuts>,
    version: AtomicU64,
}

impl Truth {
    /// Every pair reachable; node `i` is in zone `(i / zone_size) % zones`.
    pub(crate) fn new(zone_size: usize, zones: usize) -> Self {
        Self {
            zone_size: zone_size.max(1),
            zones: zones.max(1),
            cuts: RwLock::new(Cuts::default()),
            version: AtomicU64::new(1),
        }
    }

    /// The zone index of `node`.
    pub(crate) fn zone(&self, node: usize) -> usize {
        (node / self.zone_size) % self.zones
    }

    /// The zone's name, as the Hello carries it (`zone-a`, `zone-b`, ... `zone-z`, `zone-26`...).
    pub(crate) fn zone_name(&self, node: usize) -> String {
        let z = self.zone(node);
        match u8::try_from(z) {
            Ok(z) if z < 26 => format!("zone-{}", char::from(b'a' + z)),
            _ => format!("zone-{z}"),
        }
    }

    /// Changes with every cut or heal.
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Cuts `node` from everything, both ways.
    pub(crate) fn cut_node(&self, node: usize) {
        self.cuts.write().nodes.insert(node);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Cuts zone `zone` from every other zone.
    pub(crate) fn cut_zone(&self, zone: usize) {
        self.cuts.write().zone = Some(zone);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Heals every cut.
    pub(crate) fn heal(&self) {
        *self.cuts.write() = Cuts::default();
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// A view for answering many pairs at once (one lock for a whole report).
    pub(crate) fn view(&self) -> View<'_> {
        View {
            truth: self,
            cuts: self.cuts.read().clone(),
        }
    }
}

/// [`Truth`] at one moment.
pub(crate) struct View<'a> {
    truth: &'a Truth,
    cuts: Cuts,
}

impl View<'_> {
    /// The round trip from `src` to `dst` in microseconds, or `None` when every probe is lost.
    pub(crate) fn rtt_us(&self, src: usize, dst: usize) -> Option<u64> {
        if self.cuts.nodes.contains(&src) || self.cuts.nodes.contains(&dst) {
            return None;
        }
        let (zs, zd) = (self.truth.zone(src), self.truth.zone(dst));
        if let Some(z) = self.cuts.zone
            && (zs == z) != (zd == z)
        {
            return None;
        }
        Some(rtt_model_us(zs, zd))
    }
}

/// The zone-pair latency model: 250 µs inside a zone, 800 µs between zones plus 100 µs per zone
/// of distance (zones in a row, like racks along a corridor), so per-zone figures differ.
pub(crate) fn rtt_model_us(za: usize, zb: usize) -> u64 {
    if za == zb {
        250
    } else {
        800 + 100 * za.abs_diff(zb) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_names() {
        let t = Truth::new(500, 10);
        assert_eq!(t.zone(0), 0);
        assert_eq!(t.zone(499), 0);
        assert_eq!(t.zone(4999), 9);
        assert_eq!(t.zone_name(0), "zone-a");
        assert_eq!(t.zone_name(4999), "zone-j");
        assert_eq!(t.zone(5000), 0, "a joiner wraps to the first zone");
        assert_eq!(Truth::new(1, 40).zone_name(30), "zone-30");
    }

    #[test]
    fn every_pair_answers_until_cut() {
        let t = Truth::new(10, 3);
        let v0 = t.version();
        assert_eq!(t.view().rtt_us(1, 2), Some(250));
        assert_eq!(t.view().rtt_us(1, 25), Some(1000));
        t.cut_node(3);
        assert!(t.version() > v0);
        let v = t.view();
        assert_eq!(v.rtt_us(3, 4), None, "a vanished node reaches nobody");
        assert_eq!(v.rtt_us(4, 3), None, "and nobody reaches it");
        assert_eq!(v.rtt_us(4, 5), Some(250));
    }

    #[test]
    fn a_partitioned_zone_works_inside_only() {
        let t = Truth::new(10, 4);
        t.cut_zone(2);
        let v = t.view();
        assert_eq!(v.rtt_us(20, 29), Some(250), "inside the zone");
        assert_eq!(v.rtt_us(20, 5), None, "out of the zone");
        assert_eq!(v.rtt_us(5, 20), None, "into the zone");
        assert_eq!(v.rtt_us(5, 15), Some(900), "between other zones");
        t.heal();
        assert_eq!(t.view().rtt_us(5, 20), Some(1000));
    }
}
