//! Which text format a scrape gets, and the `/metrics` route.
//!
//! Why negotiated: Prometheus asks for OpenMetrics first, while `promtool check metrics` and
//! `curl` expect the classic text format; both come from the same registry.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

use super::Metrics;

/// The two text formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (what Prometheus asks for first).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (what `promtool check metrics` and curl get).
    PrometheusText,
}

impl Format {
    /// Chooses the format from an `Accept` header.
    #[must_use]
    pub fn from_accept(accept: Option<&str>) -> Self {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Self::OpenMetrics
        } else {
            Self::PrometheusText
        }
    }

    /// The `Content-Type` of this format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// `GET /metrics`: one scrape, rendered on the blocking pool (it walks the graph); OpenMetrics
/// when the scraper accepts it, the Prometheus text format otherwise.
pub fn router(metrics: Metrics) -> Router {
    // Scrapes beyond the limit wait briefly, then get 429 (see `crate::limit`).
    let walks = metrics.scrape_limit().clone();
    Router::new().route(
        "/metrics",
        get(move |headers: axum::http::HeaderMap| {
            let metrics = metrics.clone();
            let walks = walks.clone();
            async move {
                let Ok(slot) = walks.enter().await else {
                    return (
                        StatusCode::TOO_MANY_REQUESTS,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; charset=utf-8",
                        )],
                        "too many concurrent scrapes; retry later\n".to_string(),
                    );
                };
                let accept = headers
                    .get(axum::http::header::ACCEPT)
                    .and_then(|v| v.to_str().ok());
                let format = Format::from_accept(accept);
                let render = move || {
                    let _slot = slot;
                    metrics.render_as(format)
                };
                match crate::background::run(render).await {
                    Ok(body) => (
                        StatusCode::OK,
                        [(axum::http::header::CONTENT_TYPE, format.content_type())],
                        body,
                    ),
                    Err(e) => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; charset=utf-8",
                        )],
                        format!("metrics collection failed: {e}\n"),
                    ),
                }
            }
        }),
    )
}
