//! Query strings of the JSON API: decoding, unknown keys refused, named choices.
//!
//! Why strict: a typo in a filter (`?stat=down`) silently ignored would show every edge and look
//! like an answer; refusing it with the list of known keys turns it into a fix.

use std::collections::HashMap;

use echomesh_proto::v1::{EdgeSort, EdgeState, MatrixMetric, Network, NodeSort, Scope};
use echomesh_proto::view::state_name;

use super::ApiError;

/// Decodes `%XX` and `+` in a query-string component.
#[must_use]
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed query string that refuses parameters the endpoint does not know.
#[derive(Debug, Default)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// Parses `raw`, allowing only `known` keys (a typo is a 400, not a silently ignored filter).
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Self, ApiError> {
        let mut m = HashMap::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = percent_decode(k);
            if !known.contains(&k.as_str()) {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {:?}: expected one of {}",
                    k.chars().take(40).collect::<String>(),
                    known.join(", ")
                )));
            }
            m.insert(k, percent_decode(v));
        }
        Ok(Self(m))
    }

    /// The value of `k`, empty when absent.
    #[must_use]
    pub fn str(&self, k: &str) -> &str {
        self.0.get(k).map_or("", String::as_str)
    }

    pub(super) fn num<T: std::str::FromStr + Default>(
        &self,
        k: &str,
        what: &str,
    ) -> Result<T, ApiError> {
        match self.0.get(k).map(String::as_str) {
            None | Some("") => Ok(T::default()),
            Some(v) => v.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "{k} must be {what}, got {:?}",
                    v.chars().take(40).collect::<String>()
                ))
            }),
        }
    }
}

/// The option of `options` named `v` (case-insensitive), `default` when empty.
pub(super) fn choice<T: Copy>(
    k: &str,
    v: &str,
    options: &[(&str, T)],
    default: T,
) -> Result<T, ApiError> {
    if v.is_empty() {
        return Ok(default);
    }
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(v))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            ApiError::BadRequest(format!(
                "unknown {k} {:?}: expected one of {}",
                v.chars().take(40).collect::<String>(),
                names.join(", ")
            ))
        })
}

/// The network names, as every tool spells them ([`Network::name`]).
pub(super) fn networks() -> [(&'static str, Network); 3] {
    [Network::Pod, Network::Host, Network::Unspecified].map(|n| (n.name(), n))
}

/// The edge state names, as every tool spells them ([`state_name`]).
pub(super) fn states() -> [(&'static str, EdgeState); 4] {
    [
        EdgeState::Up,
        EdgeState::Degraded,
        EdgeState::Down,
        EdgeState::Unknown,
    ]
    .map(|s| (state_name(s as i32), s))
}

pub(super) const METRICS: [(&str, MatrixMetric); 3] = [
    ("loss", MatrixMetric::Loss),
    ("p50", MatrixMetric::P50),
    ("p99", MatrixMetric::P99),
];
pub(super) const SORTS: [(&str, EdgeSort); 5] = [
    ("none", EdgeSort::Unspecified),
    ("loss", EdgeSort::Loss),
    ("p50", EdgeSort::P50),
    ("p99", EdgeSort::P99),
    ("state", EdgeSort::State),
];
pub(super) const NODE_SORTS: [(&str, NodeSort); 2] =
    [("badness", NodeSort::Badness), ("name", NodeSort::Name)];
pub(super) const SCOPES: [(&str, Scope); 3] = [
    ("cluster", Scope::Cluster),
    ("node", Scope::Node),
    ("edge", Scope::Edge),
];

/// The network named by parameter `k`, `any` when absent.
pub(super) fn network(p: &Params, k: &str) -> Result<Network, ApiError> {
    choice(k, p.str(k), &networks(), Network::Unspecified)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_decode_and_refuse_unknown_keys() {
        assert_eq!(percent_decode("a%20b+c%2Fd%"), "a b c/d%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        let p = Params::parse(Some("metric=p99&network=pod"), &["metric", "network"]).expect("ok");
        assert_eq!(p.str("metric"), "p99");
        assert_eq!(p.str("missing"), "");
        let e = Params::parse(Some("metrc=p99"), &["metric", "network"]).expect_err("typo");
        assert_eq!(
            e.to_string(),
            "unknown parameter \"metrc\": expected one of metric, network"
        );
    }

    #[test]
    fn choices_name_the_options() {
        let e = choice("metric", "p95", &METRICS, MatrixMetric::Loss).expect_err("bad");
        assert_eq!(
            e,
            ApiError::BadRequest("unknown metric \"p95\": expected one of loss, p50, p99".into())
        );
        assert_eq!(
            choice("network", "HOST", &networks(), Network::Unspecified),
            Ok(Network::Host)
        );
        assert_eq!(
            choice("network", "", &networks(), Network::Unspecified),
            Ok(Network::Unspecified)
        );
    }

    #[test]
    fn names_are_the_shared_ones() {
        assert_eq!(networks().map(|(n, _)| n), ["pod", "host", "any"]);
        assert_eq!(
            states().map(|(n, _)| n),
            ["up", "degraded", "down", "unknown"]
        );
    }
}
