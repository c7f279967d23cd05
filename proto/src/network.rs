//! The one set of names for `v1::Network`: flags, tables, JSON, metric labels and the lab all
//! say `pod` and `host`, so a name printed by one tool can be typed into another.

use std::fmt;
use std::str::FromStr;

use crate::v1::Network;

impl Network {
    /// The short lower-case name: `pod`, `host`, or `any` for the unspecified value (which
    /// queries use as "both networks").
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Host => "host",
            Self::Unspecified => "any",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A network name that is not `pod`, `host` or `any`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown network {0:?}: use pod, host or any")]
pub struct UnknownNetwork(pub String);

impl FromStr for Network {
    type Err = UnknownNetwork;

    /// Parses `pod`, `host` or `any` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "pod" => Ok(Self::Pod),
            "host" => Ok(Self::Host),
            "any" => Ok(Self::Unspecified),
            _ => Err(UnknownNetwork(s.chars().take(64).collect())),
        }
    }
}

/// Parses the network an agent probes from (`pod` or `host`; not `any`), for clap's
/// `value_parser`.
///
/// # Errors
/// A message naming the input and the accepted names.
pub fn parse_agent_network(s: &str) -> Result<Network, String> {
    match s.parse::<Network>() {
        Ok(Network::Unspecified) | Err(_) => Err(format!(
            "unknown network {:?}: an agent probes from pod or host",
            s.chars().take(64).collect::<String>()
        )),
        Ok(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [Network::Pod, Network::Host, Network::Unspecified] {
            assert_eq!(n.name().parse::<Network>(), Ok(n));
            assert_eq!(n.to_string(), n.name());
        }
        assert_eq!("HOST".parse::<Network>(), Ok(Network::Host));
    }

    #[test]
    fn unknown_names_are_refused_with_the_reason() {
        assert_eq!(
            "overlay".parse::<Network>().map_err(|e| e.to_string()),
            Err("unknown network \"overlay\": use pod, host or any".into())
        );
        assert_eq!(
            parse_agent_network("any"),
            Err("unknown network \"any\": an agent probes from pod or host".into())
        );
        assert_eq!(parse_agent_network("pod"), Ok(Network::Pod));
    }
}
