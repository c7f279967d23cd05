//! Dials the aggregator and says in words why that failed. The URL forms and their checks are
//! shared with the agent (`echomesh_proto::url`); what is the CLI's own is how long it waits
//! (`--timeout` bounds the whole command, see [`crate::commands::dispatch`]) and how failures read:
//! a refused connection, a timeout, or an HTTP server where gRPC was expected.

use std::error::Error as _;
use std::time::Duration;

use echomesh_proto::url::AggregatorUrl;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::CliError;
use crate::render::printable;

/// Connects to `url` within `timeout`.
///
/// # Errors
/// [`CliError::Url`] for a URL of the wrong form, [`CliError::Connect`] saying why the
/// connection failed.
pub async fn channel(url: &str, timeout: Duration) -> Result<Channel, CliError> {
    channel_with(url, None, timeout).await
}

/// [`channel`] checking an `https://` aggregator against the CA in `tls_ca` (`--tls-ca`).
///
/// # Errors
/// As [`channel`]; a CA for a URL that is not `https://`, or an unreadable CA file, is
/// [`CliError::Url`].
pub async fn channel_with(
    url: &str,
    tls_ca: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Channel, CliError> {
    let parsed = AggregatorUrl::parse(url).map_err(|e| CliError::Url(e.to_string()))?;
    parsed
        .check_ca(tls_ca.is_some())
        .map_err(|e| CliError::Url(e.to_string()))?;
    let pem = tls_ca
        .map(echomesh_proto::url::read_ca)
        .transpose()
        .map_err(CliError::Url)?;
    parsed
        .connect_with(timeout, None, pem.as_deref())
        .await
        .map_err(|e| CliError::Connect {
            url: url.to_string(),
            why: describe(&e, timeout),
        })
}

/// Why a connection failed, in words: the first cause an operator can act on.
fn describe(e: &(dyn std::error::Error + 'static), timeout: Duration) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut last = e.to_string();
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused => {
                    return "the connection was refused (is the aggregator running, and is this its gRPC port?)".into();
                }
                K::NotFound => return "no such socket".into(),
                K::PermissionDenied => return "permission denied".into(),
                K::TimedOut => return format!("the connection timed out after {timeout:?}"),
                K::ConnectionReset | K::BrokenPipe | K::UnexpectedEof => {
                    return format!("the connection was closed ({io})");
                }
                _ => {}
            }
        }
        let text = x.to_string();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return format!("the connection timed out after {timeout:?}");
        }
        last = text;
        cur = x.source();
    }
    printable(&last)
}

/// What a failed call means for the operator.
#[must_use]
pub fn status(url: &str, s: Status, timeout: Duration) -> CliError {
    let msg = s.message();
    let not_grpc = [
        "invalid compression flag",
        "content-type",
        "HTTP status",
        "h2 protocol",
    ];
    if not_grpc.iter().any(|n| msg.contains(n)) {
        return CliError::NotGrpc {
            url: url.to_string(),
            detail: printable(msg),
        };
    }
    match s.code() {
        Code::NotFound => CliError::NotFound(printable(msg)),
        Code::DeadlineExceeded => CliError::Timeout {
            url: url.to_string(),
            after: timeout,
        },
        Code::Unavailable | Code::Unknown if s.source().is_some() => CliError::Connect {
            url: url.to_string(),
            why: s
                .source()
                .map_or_else(|| printable(msg), |e| describe(e, timeout)),
        },
        _ => CliError::Rpc(s),
    }
}
