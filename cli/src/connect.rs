//! Dials the aggregator for one command. The URL forms and their checks are shared with the agent
//! (`echomesh_proto::url`); what is the CLI's own is how long it waits: `--timeout` for the
//! connection, six times that (at least six seconds) for a call, so a slow `matrix` on a large
//! cluster is not cut off while an unreachable aggregator is reported quickly.

use std::time::Duration;

use echomesh_proto::url::AggregatorUrl;
use tonic::transport::Channel;

use crate::CliError;

/// Connects to `url` within `timeout`.
pub async fn channel(url: &str, timeout: Duration) -> Result<Channel, CliError> {
    let parsed = AggregatorUrl::parse(url).map_err(|e| CliError::Url(e.to_string()))?;
    let calls = match parsed {
        AggregatorUrl::Http(_) => Some(timeout.max(Duration::from_secs(1)) * 6),
        AggregatorUrl::Unix(_) => None,
    };
    parsed
        .connect(timeout, calls)
        .await
        .map_err(|source| CliError::Connect {
            url: url.to_string(),
            source,
        })
}
