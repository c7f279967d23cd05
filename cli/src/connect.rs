//! Aggregator URLs to gRPC channels: `http://HOST:PORT`, or `unix:///path` for an agent socket.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint, Uri};

use crate::CliError;

/// Connects to `url` within `timeout`.
pub async fn channel(url: &str, timeout: Duration) -> Result<Channel, CliError> {
    if let Some(path) = url.strip_prefix("unix://") {
        if path.is_empty() {
            return Err(CliError::Url(format!(
                "{url:?}: unix:// needs a socket path"
            )));
        }
        let path = path.to_string();
        return Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(|source| CliError::Connect {
                url: url.to_string(),
                source,
            });
    }
    if !url.starts_with("http://") {
        return Err(CliError::Url(format!(
            "{url:?}: the aggregator URL must start with http:// or unix://"
        )));
    }
    Endpoint::from_shared(url.to_string())
        .map_err(|e| CliError::Url(format!("{url:?}: {e}")))?
        .connect_timeout(timeout)
        .timeout(timeout.max(Duration::from_secs(1)) * 6)
        .connect()
        .await
        .map_err(|source| CliError::Connect {
            url: url.to_string(),
            source,
        })
}
