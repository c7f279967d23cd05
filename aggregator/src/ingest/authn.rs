//! The session's side of agent authentication: the two checks of [`crate::auth`] at the points
//! of the session where they belong, each refusal counted.
//!
//! Why here and not in a tower layer: binding needs the Hello, which only the session reads; and
//! keeping both steps together means one place shows what a refused client can and cannot reach
//! (nothing: it is refused before its session takes a place in the session table).

use tonic::Status;

use super::Ingest;
use crate::auth::{AuthError, Identity, bearer};
use crate::graph::{AgentInfo, AgentKey};

impl Ingest {
    /// Step 1, before anything is read from the stream. `Ok(None)` when no authentication is
    /// configured.
    pub(super) async fn authenticate(
        &self,
        authorization: Option<&str>,
    ) -> Result<Option<Identity>, Status> {
        let Some(auth) = &self.inner.auth else {
            return Ok(None);
        };
        let checked = match bearer(authorization) {
            Ok(token) => auth.authenticate(token).await,
            Err(e) => Err(e),
        };
        checked.map(Some).map_err(|e| self.refuse(&e, None))
    }

    /// Step 2, once the Hello validated.
    pub(super) fn bind(
        &self,
        who: Option<&Identity>,
        key: &AgentKey,
        info: &AgentInfo,
    ) -> Result<(), Status> {
        let (Some(auth), Some(who)) = (&self.inner.auth, who) else {
            return Ok(());
        };
        auth.bind(who, key, info)
            .map_err(|e| self.refuse(&e, Some(key)))
    }

    fn refuse(&self, e: &AuthError, key: Option<&AgentKey>) -> Status {
        self.inner.auth_failures.count(e.reason);
        match key {
            Some(k) => {
                tracing::warn!(agent = %k, reason = e.reason.label(), error = %e, "agent session refused")
            }
            None => tracing::warn!(reason = e.reason.label(), error = %e, "agent session refused"),
        }
        e.to_status()
    }
}
