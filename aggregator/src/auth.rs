//! Who may open an agent session, and which node it may speak for.
//!
//! Why a separate step before the Hello is believed: the Hello names a node, and whatever holds the
//! session for a node decides that node's edges and what its agent probes. Without a check, anything
//! that reaches the gRPC port could replace a real agent and feed the graph forged reports. Two
//! checks, in order:
//!
//! 1. *authenticate* the bearer token in the Session call's `authorization` metadata
//!    (`UNAUTHENTICATED` when missing or wrong): a shared token file ([`token`]) outside
//!    Kubernetes, a TokenReview of the agent's projected ServiceAccount token inside it
//!    ([`crate::discovery::token_review`]);
//! 2. *bind* the authenticated identity to the Hello (`PERMISSION_DENIED` when it does not
//!    match): a Kubernetes identity names one pod on one node, and that pod may only speak for its
//!    own node, network and addresses. A shared token names no node, so it binds to any.
//!
//! Every refusal is counted by reason ([`AuthFailure`], `echomesh_agent_auth_failures_total`) and
//! happens before the session takes its place, so a refused client never replaces a running agent.

pub mod token;

use std::sync::atomic::{AtomicU64, Ordering};

use tonic::Status;

use crate::graph::{AgentInfo, AgentKey};

/// The metadata key the agent's bearer token travels in.
pub const AUTHORIZATION: &str = "authorization";

pub use echomesh_proto::token::MAX_TOKEN_BYTES;

/// Who a session proved to be.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// The agent pod the token was issued to (Kubernetes), `None` for a shared token.
    pub pod: Option<String>,
    /// The node that pod runs on (Kubernetes), `None` for a shared token.
    pub node: Option<String>,
}

/// Why a session was refused (the `reason` label of `echomesh_agent_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `authorization: Bearer ...` metadata.
    MissingToken,
    /// A token that is not the expected one, or that the API server does not accept.
    BadToken,
    /// The TokenReview could not be made (API server unreachable, RBAC missing).
    ReviewUnavailable,
    /// The token's pod is not an echomesh agent pod known to discovery.
    NotAgentPod,
    /// The Hello names another node than the token's pod runs on.
    WrongNode,
    /// The Hello claims the other network than the pod's `hostNetwork` says.
    WrongNetwork,
    /// The Hello announces an address that is not the pod's or its node's.
    ForeignAddress,
}

impl AuthFailure {
    /// Every reason, in label order.
    pub const ALL: [Self; 7] = [
        Self::MissingToken,
        Self::BadToken,
        Self::ReviewUnavailable,
        Self::NotAgentPod,
        Self::WrongNode,
        Self::WrongNetwork,
        Self::ForeignAddress,
    ];

    /// The metric label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::BadToken => "bad_token",
            Self::ReviewUnavailable => "review_unavailable",
            Self::NotAgentPod => "not_agent_pod",
            Self::WrongNode => "wrong_node",
            Self::WrongNetwork => "wrong_network",
            Self::ForeignAddress => "foreign_address",
        }
    }
}

/// A refusal with its reason and a message for the client and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// Why, for the metric.
    pub reason: AuthFailure,
    /// What the client is told.
    pub message: String,
}

impl AuthError {
    /// A refusal for `reason`.
    pub fn new(reason: AuthFailure, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    /// `UNAUTHENTICATED` for a token problem, `UNAVAILABLE` when the verdict could not be had,
    /// `PERMISSION_DENIED` for a Hello the identity may not make.
    #[must_use]
    pub fn to_status(&self) -> Status {
        match self.reason {
            AuthFailure::MissingToken | AuthFailure::BadToken => {
                Status::unauthenticated(self.message.clone())
            }
            AuthFailure::ReviewUnavailable => Status::unavailable(self.message.clone()),
            _ => Status::permission_denied(self.message.clone()),
        }
    }
}

/// Checks agent sessions; see the module docs for the two steps.
#[tonic::async_trait]
pub trait AgentAuth: Send + Sync + std::fmt::Debug {
    /// Step 1: who holds `bearer` (the token from the `authorization` metadata, if any).
    async fn authenticate(&self, bearer: Option<&str>) -> Result<Identity, AuthError>;

    /// Step 2: may `who` make this Hello (already validated into `key` and `info`)?
    fn bind(&self, who: &Identity, key: &AgentKey, info: &AgentInfo) -> Result<(), AuthError>;
}

/// The bearer token of an `authorization` metadata value: `Bearer <token>` (scheme
/// case-insensitive). `Err` for a value that is not a bearer token.
pub fn bearer(value: Option<&str>) -> Result<Option<&str>, AuthError> {
    let Some(v) = value else { return Ok(None) };
    let malformed = || {
        AuthError::new(
            AuthFailure::BadToken,
            "authorization metadata must be \"Bearer <token>\"",
        )
    };
    let (scheme, token) = v.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(malformed());
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::new(
            AuthFailure::BadToken,
            format!("bearer token longer than {MAX_TOKEN_BYTES} bytes"),
        ));
    }
    Ok(Some(token))
}

/// Refusals so far, by reason.
#[derive(Debug, Default)]
pub struct AuthCounters([AtomicU64; AuthFailure::ALL.len()]);

impl AuthCounters {
    /// Counts one refusal.
    pub fn count(&self, r: AuthFailure) {
        self.0[r as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Every reason with its count, in label order (for `/metrics`).
    #[must_use]
    pub fn snapshot(&self) -> [(AuthFailure, u64); AuthFailure::ALL.len()] {
        AuthFailure::ALL.map(|r| (r, self.0[r as usize].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values_are_read_or_refused_with_the_reason() {
        assert_eq!(bearer(None), Ok(None));
        assert_eq!(bearer(Some("Bearer abc")), Ok(Some("abc")));
        assert_eq!(bearer(Some("bearer  abc ")), Ok(Some("abc")));
        for bad in ["Basic abc", "Bearer", "Bearer ", "abc"] {
            let e = bearer(Some(bad)).expect_err(bad);
            assert_eq!(e.reason, AuthFailure::BadToken);
            assert_eq!(
                e.to_string(),
                "authorization metadata must be \"Bearer <token>\""
            );
        }
        let long = format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            bearer(Some(&long)).map_err(|e| e.to_string()),
            Err("bearer token longer than 16384 bytes".into())
        );
    }

    #[test]
    fn reasons_map_to_grpc_codes() {
        let code = |r| AuthError::new(r, "x").to_status().code();
        assert_eq!(
            code(AuthFailure::MissingToken),
            tonic::Code::Unauthenticated
        );
        assert_eq!(code(AuthFailure::BadToken), tonic::Code::Unauthenticated);
        assert_eq!(
            code(AuthFailure::ReviewUnavailable),
            tonic::Code::Unavailable
        );
        assert_eq!(code(AuthFailure::WrongNode), tonic::Code::PermissionDenied);
        assert_eq!(
            code(AuthFailure::ForeignAddress),
            tonic::Code::PermissionDenied
        );
    }

    #[test]
    fn counters_count_by_reason() {
        let c = AuthCounters::default();
        c.count(AuthFailure::WrongNode);
        c.count(AuthFailure::WrongNode);
        let snap = c.snapshot();
        assert_eq!(
            snap[AuthFailure::WrongNode as usize],
            (AuthFailure::WrongNode, 2)
        );
        assert_eq!(snap[0], (AuthFailure::MissingToken, 0));
    }
}
