//! How a failed API request is answered: gRPC status codes mapped to HTTP ones, JSON bodies.
//!
//! Why mapped and not passed through: browsers and `curl` understand 400/404/429, and the
//! message is the query API's own, so both front ends say the same thing.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::{Code, Status};

use super::json_reply;

/// Why an API request failed, as the HTTP reply says it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiError {
    /// The query string was wrong (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matched (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// A limit was hit (HTTP 429).
    #[error("{0}")]
    Exhausted(String),
    /// Anything else (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl From<Status> for ApiError {
    fn from(s: Status) -> Self {
        let m = s.message().to_string();
        match s.code() {
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
                Self::BadRequest(m)
            }
            Code::NotFound => Self::NotFound(m),
            Code::ResourceExhausted => Self::Exhausted(m),
            _ => Self::Internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Exhausted(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (code, json_reply(&json!({ "error": self.to_string() }))).into_response()
    }
}
