//! The lab's IP family: IPv4 only, dual-stack, or IPv6 only, and what each one means for the
//! addresses and the overlay.
//!
//! Real clusters come in all three shapes and an agent must work in each, so the lab can build
//! each: `ipv4` (the default), `dual` (IPv6 added, the overlay still carried over the IPv4
//! underlay, as dual-stack flannel does), and `ipv6` (no IPv4 address anywhere; the overlay runs
//! over an IPv6 underlay, as flannel's IPv6-only backend does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which IP families hosts and pods have addresses in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpFamily {
    /// IPv4 only.
    #[default]
    Ipv4,
    /// IPv4 and IPv6; the overlay is carried over IPv4.
    Dual,
    /// IPv6 only; the overlay is carried over IPv6.
    Ipv6,
}

/// VXLAN overhead over an IPv4 underlay: outer IPv4 (20) + UDP (8) + VXLAN (8) + Ethernet (14).
const VXLAN4_OVERHEAD: u32 = 50;
/// VXLAN overhead over an IPv6 underlay: the outer header is IPv6 (40) instead of IPv4.
const VXLAN6_OVERHEAD: u32 = 70;
/// MTU of the underlay links.
pub const UNDERLAY_MTU: u32 = 1500;

impl IpFamily {
    /// Every family, in the order the flag lists them.
    pub const ALL: [IpFamily; 3] = [IpFamily::Ipv4, IpFamily::Dual, IpFamily::Ipv6];

    /// True if hosts and pods get IPv4 addresses.
    pub fn has_v4(self) -> bool {
        matches!(self, IpFamily::Ipv4 | IpFamily::Dual)
    }

    /// True if hosts and pods get IPv6 addresses.
    pub fn has_v6(self) -> bool {
        matches!(self, IpFamily::Dual | IpFamily::Ipv6)
    }

    /// True if the VXLAN overlay is carried over IPv6 (only when there is no IPv4 at all).
    pub fn v6_underlay(self) -> bool {
        self == IpFamily::Ipv6
    }

    /// MTU of the overlay: the underlay's minus what VXLAN over this underlay adds.
    pub fn overlay_mtu(self) -> u32 {
        UNDERLAY_MTU
            - if self.v6_underlay() {
                VXLAN6_OVERHEAD
            } else {
                VXLAN4_OVERHEAD
            }
    }

    /// `ipv4`, `dual` or `ipv6`, as `--ip-family` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "ipv4",
            IpFamily::Dual => "dual",
            IpFamily::Ipv6 => "ipv6",
        }
    }

    /// How the demo describes it.
    pub fn describe(self) -> &'static str {
        match self {
            IpFamily::Ipv4 => "IPv4",
            IpFamily::Dual => "dual-stack",
            IpFamily::Ipv6 => "IPv6-only",
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An `--ip-family` value that is not one of the three.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the IP family must be ipv4, dual or ipv6, not {0:?}")]
pub struct FamilyError(pub String);

impl FromStr for IpFamily {
    type Err = FamilyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IpFamily::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| FamilyError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_names_and_refuses_others() {
        for f in IpFamily::ALL {
            assert_eq!(f.as_str().parse::<IpFamily>(), Ok(f));
            assert_eq!(f.to_string(), f.as_str());
        }
        assert_eq!("IPv6".parse::<IpFamily>(), Ok(IpFamily::Ipv6));
        assert_eq!(
            "v6".parse::<IpFamily>().expect_err("v6").to_string(),
            "the IP family must be ipv4, dual or ipv6, not \"v6\""
        );
        assert_eq!(IpFamily::default(), IpFamily::Ipv4);
    }

    #[test]
    fn families_and_overlay_mtu() {
        assert!(IpFamily::Ipv4.has_v4() && !IpFamily::Ipv4.has_v6());
        assert!(IpFamily::Dual.has_v4() && IpFamily::Dual.has_v6());
        assert!(!IpFamily::Ipv6.has_v4() && IpFamily::Ipv6.has_v6());
        assert!(!IpFamily::Dual.v6_underlay() && IpFamily::Ipv6.v6_underlay());
        assert_eq!(IpFamily::Ipv4.overlay_mtu(), 1450);
        assert_eq!(IpFamily::Dual.overlay_mtu(), 1450);
        assert_eq!(IpFamily::Ipv6.overlay_mtu(), 1430);
    }
}
