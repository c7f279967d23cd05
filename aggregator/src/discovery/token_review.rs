//! Agent authentication in Kubernetes: the agent's projected ServiceAccount token, verified by
//! the API server (a TokenReview) and bound to the agent pod discovery knows.
//!
//! Why a TokenReview and not local JWT verification: the API server knows whether the token's pod
//! still exists and whether the token was revoked, and no signing key has to be distributed. Why
//! a cache: every reconnect of every agent would otherwise be one API call; a verdict is kept for
//! the token's own lifetime (its `exp` claim, at most [`MAX_CACHE_TTL`]) in a bounded table keyed
//! by a keyed hash of the token, so the token itself is not kept. A refused token is remembered
//! for [`REFUSED_TTL`], and at most [`MAX_CONCURRENT_REVIEWS`] reviews run at once: anything that
//! reaches the gRPC port can present tokens, and must not turn the aggregator into a way to flood
//! the API server.
//!
//! Binding ([`bind_to_model`], a pure function): the token's pod (the review's
//! `authentication.kubernetes.io/pod-name` extra) must be an agent pod of the cluster model, on
//! the node the Hello names (also checked against the `node-name` extra when the API server sends
//! it), with `hostNetwork` matching the claimed network, announcing only that pod's or its node's
//! addresses.

use std::collections::HashMap;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;

use super::ModelPinglist;
use super::model::ClusterModel;
use crate::auth::{AgentAuth, AuthError, AuthFailure, Identity};
use crate::graph::{AgentInfo, AgentKey};

/// The audience agent tokens are issued for (the projected volume's `audience`).
pub const AUDIENCE: &str = "echomesh";
/// The extra claim naming the token's pod.
pub const POD_NAME_EXTRA: &str = "authentication.kubernetes.io/pod-name";
/// The extra claim naming the pod's node (Kubernetes 1.30+).
pub const NODE_NAME_EXTRA: &str = "authentication.kubernetes.io/node-name";
/// Longest a verdict is cached, whatever the token's expiry says.
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(10 * 60);
/// Most cached verdicts (a few per agent are enough).
pub const MAX_CACHED: usize = 20_000;
/// How long a refused token's verdict is remembered (a new token is reviewed at once).
pub const REFUSED_TTL: Duration = Duration::from_secs(10);
/// Most TokenReviews in flight; further sessions wait up to [`REVIEW_WAIT`] for a slot.
pub const MAX_CONCURRENT_REVIEWS: usize = 32;
/// Longest a session waits for a review slot before it is told to retry (`UNAVAILABLE`).
pub const REVIEW_WAIT: Duration = Duration::from_secs(5);

/// A verdict, until when it holds.
type Verdict = (Result<Identity, AuthError>, Instant);

/// Verifies agent tokens with TokenReviews and binds them to the cluster model.
pub struct TokenReviewAuth {
    client: tokio::sync::OnceCell<kube::Client>,
    model: Arc<ModelPinglist>,
    namespace: String,
    cache: Mutex<HashMap<u64, Verdict>>,
    hasher: std::collections::hash_map::RandomState,
    slots: tokio::sync::Semaphore,
    review_wait: Duration,
    refused_ttl: Duration,
}

impl std::fmt::Debug for TokenReviewAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewAuth")
            .field("namespace", &self.namespace)
            .field("cached", &self.cache.lock().len())
            .finish_non_exhaustive()
    }
}

impl TokenReviewAuth {
    /// Reviews through `client` (or, when `None`, the in-cluster configuration or kubeconfig,
    /// loaded at the first review) and binds against `model`. Tokens must belong to a
    /// ServiceAccount of `namespace` ("" accepts any namespace).
    #[must_use]
    pub fn new(client: Option<kube::Client>, model: Arc<ModelPinglist>, namespace: &str) -> Self {
        Self {
            client: tokio::sync::OnceCell::new_with(client),
            model,
            namespace: namespace.to_string(),
            cache: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
            slots: tokio::sync::Semaphore::new(MAX_CONCURRENT_REVIEWS),
            review_wait: REVIEW_WAIT,
            refused_ttl: REFUSED_TTL,
        }
    }

    /// Other limits than [`MAX_CONCURRENT_REVIEWS`], [`REVIEW_WAIT`] and [`REFUSED_TTL`]
    /// (tests fill small ones).
    #[must_use]
    pub fn with_limits(
        mut self,
        max_reviews: usize,
        review_wait: Duration,
        refused_ttl: Duration,
    ) -> Self {
        self.slots = tokio::sync::Semaphore::new(max_reviews.max(1));
        self.review_wait = review_wait;
        self.refused_ttl = refused_ttl;
        self
    }

    fn key(&self, token: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(token.as_bytes());
        h.finish()
    }

    async fn review(&self, token: &str) -> Result<Identity, AuthError> {
        let unavailable = |e: &dyn std::fmt::Display| {
            AuthError::new(
                AuthFailure::ReviewUnavailable,
                format!("cannot verify the agent token (TokenReview): {e}"),
            )
        };
        let client = self
            .client
            .get_or_try_init(kube::Client::try_default)
            .await
            .map_err(|e| unavailable(&e))?;
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_string()),
                audiences: Some(vec![AUDIENCE.to_string()]),
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(client.clone())
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| unavailable(&e))?;
        identity_of(&answer, &self.namespace)
    }
}

/// Reads a TokenReview's answer: authenticated, for the `echomesh` audience, a ServiceAccount of
/// `namespace`, bound to a pod.
///
/// # Errors
/// Which of these the answer is not.
pub fn identity_of(answer: &TokenReview, namespace: &str) -> Result<Identity, AuthError> {
    let status = answer.status.clone().unwrap_or_default();
    if status.authenticated != Some(true) {
        return Err(AuthError::new(
            AuthFailure::BadToken,
            format!(
                "the API server did not accept the agent token: {}",
                status.error.as_deref().unwrap_or("not authenticated")
            ),
        ));
    }
    if let Some(aud) = &status.audiences
        && !aud.iter().any(|a| a == AUDIENCE)
    {
        return Err(AuthError::new(
            AuthFailure::BadToken,
            format!("the agent token is not for audience {AUDIENCE:?} (it is for {aud:?})"),
        ));
    }
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let sa_namespace = username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(ns, _)| ns);
    match sa_namespace {
        Some(ns) if namespace.is_empty() || ns == namespace => {}
        _ => {
            return Err(AuthError::new(
                AuthFailure::NotAgentPod,
                format!(
                    "the agent token belongs to {:?}, not to a ServiceAccount of namespace {namespace:?}",
                    username.chars().take(253).collect::<String>()
                ),
            ));
        }
    }
    let extra = user.extra.unwrap_or_default();
    let first = |k: &str| extra.get(k).and_then(|v| v.first()).cloned();
    let Some(pod) = first(POD_NAME_EXTRA) else {
        return Err(AuthError::new(
            AuthFailure::NotAgentPod,
            "the agent token is not bound to a pod: mount a projected ServiceAccount token \
             (audience \"echomesh\") into the agent pod",
        ));
    };
    Ok(Identity {
        pod: Some(pod),
        node: first(NODE_NAME_EXTRA),
    })
}

/// Checks that the pod `who` names may make this Hello, against `model`.
///
/// # Errors
/// The reason it may not (see the module docs).
pub fn bind_to_model(
    model: &ClusterModel,
    who: &Identity,
    key: &AgentKey,
    info: &AgentInfo,
) -> Result<(), AuthError> {
    let pod = who.pod.as_deref().unwrap_or_default();
    let Some(agent) = model.agent_pods.get(pod) else {
        return Err(AuthError::new(
            AuthFailure::NotAgentPod,
            format!("pod {pod:?} is not an echomesh agent pod known to discovery"),
        ));
    };
    let token_node = who.node.as_deref().unwrap_or(&agent.node);
    if *agent.node != *key.node || token_node != &*key.node {
        return Err(AuthError::new(
            AuthFailure::WrongNode,
            format!(
                "pod {pod:?} runs on node {:?}; it may not speak for node {:?}",
                agent.node, key.node
            ),
        ));
    }
    if agent.network != key.network {
        return Err(AuthError::new(
            AuthFailure::WrongNetwork,
            format!(
                "pod {pod:?} is on the {} network (hostNetwork); its Hello claims the {} network",
                agent.network.name(),
                key.network.name()
            ),
        ));
    }
    // The pod's own addresses; a host-network agent may also announce any of its node's.
    let mut known = agent.ips.clone();
    if agent.network == echomesh_proto::v1::Network::Host
        && let Some(n) = model.nodes.get(&agent.node)
    {
        known.extend(n.internal_ips.iter().chain(&n.external_ips));
    }
    let foreign: Vec<String> = info
        .addresses
        .iter()
        .filter(|a| !known.contains(a))
        .map(ToString::to_string)
        .collect();
    if !foreign.is_empty() {
        return Err(AuthError::new(
            AuthFailure::ForeignAddress,
            format!(
                "pod {pod:?} announced {} but the API server lists {known:?} for it",
                foreign.join(", ")
            ),
        ));
    }
    Ok(())
}

/// When a token expires: its JWT `exp` claim (read, not verified: the review verified it).
#[must_use]
pub fn token_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    UNIX_EPOCH.checked_add(Duration::from_secs(exp))
}

#[tonic::async_trait]
impl AgentAuth for TokenReviewAuth {
    async fn authenticate(&self, bearer: Option<&str>) -> Result<Identity, AuthError> {
        let Some(token) = bearer else {
            return Err(AuthError::new(
                AuthFailure::MissingToken,
                "this aggregator requires the agent's ServiceAccount token: send \
                 \"authorization: Bearer <token>\" (echomesh-agent --agent-token-file)",
            ));
        };
        let key = self.key(token);
        if let Some((verdict, until)) = self.cache.lock().get(&key)
            && *until > Instant::now()
        {
            return verdict.clone();
        }
        let _slot = tokio::time::timeout(self.review_wait, self.slots.acquire())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                AuthError::new(
                    AuthFailure::ReviewUnavailable,
                    "too many agent tokens are under review; retry shortly",
                )
            })?;
        let verdict = self.review(token).await;
        let ttl = match &verdict {
            Ok(_) => token_expiry(token)
                .and_then(|exp| exp.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::from_secs(60))
                .min(MAX_CACHE_TTL),
            // The API server could not be asked: nothing is known, nothing is remembered.
            Err(e) if e.reason == AuthFailure::ReviewUnavailable => return verdict,
            Err(_) => self.refused_ttl,
        };
        let now = Instant::now();
        let mut cache = self.cache.lock();
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (verdict.clone(), now + ttl));
        verdict
    }

    fn bind(&self, who: &Identity, key: &AgentKey, info: &AgentInfo) -> Result<(), AuthError> {
        let Some(model) = self.model.model() else {
            return Err(AuthError::new(
                AuthFailure::ReviewUnavailable,
                "discovery has not listed the cluster's agent pods yet; retry shortly",
            ));
        };
        bind_to_model(&model, who, key, info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use echomesh_proto::v1::Network;
    use echomesh_testkit::k8s::fixtures;
    use echomesh_testkit::k8s::token_review::MockTokenReview;

    /// A TokenReview answer as a 1.34 API server sends it (testkit's recorded JSON).
    fn recorded(pod: &str, node: &str) -> TokenReview {
        let text = include_str!("../../../testkit/src/k8s/recorded/tokenreview-agent.json")
            .replace("\"POD\"", &format!("{pod:?}"))
            .replace("\"NODE\"", &format!("{node:?}"));
        serde_json::from_str(&text).expect("recorded TokenReview")
    }

    fn rejected() -> TokenReview {
        serde_json::from_str(include_str!(
            "../../../testkit/src/k8s/recorded/tokenreview-rejected.json"
        ))
        .expect("recorded TokenReview")
    }

    fn info(addrs: &[&str]) -> AgentInfo {
        AgentInfo {
            pod: String::new(),
            addresses: addrs.iter().map(|a| a.parse().expect("ip")).collect(),
            version: String::new(),
            boot_id: 0,
            connected: true,
            disconnected_at: None,
        }
    }

    fn key(node: &str, network: Network) -> AgentKey {
        AgentKey {
            node: node.into(),
            network,
        }
    }

    fn reviewer(
        max: usize,
        wait: Duration,
        refused_ttl: Duration,
    ) -> (MockTokenReview, Arc<TokenReviewAuth>) {
        let (mock, client) = MockTokenReview::start();
        let auth = TokenReviewAuth::new(Some(client), Arc::default(), "echomesh").with_limits(
            max,
            wait,
            refused_ttl,
        );
        (mock, Arc::new(auth))
    }

    #[tokio::test]
    async fn beyond_the_concurrent_reviews_a_session_waits_then_is_told_to_retry() {
        let (mock, auth) = reviewer(1, Duration::from_millis(100), REFUSED_TTL);
        mock.issue("tok-a", "agent-a", "a");
        // Far longer than the second review's wait.
        mock.set_latency(Duration::from_secs(1));
        let first = tokio::spawn({
            let auth = auth.clone();
            async move { auth.authenticate(Some("tok-a")).await }
        });
        echomesh_testkit::eventually(
            "the first review holds the slot",
            echomesh_testkit::SOON,
            Duration::from_millis(5),
            || {
                let auth = auth.clone();
                async move { auth.slots.available_permits() == 0 }
            },
        )
        .await;
        let e = auth.authenticate(Some("tok-b")).await.expect_err("no slot");
        assert_eq!(e.reason, AuthFailure::ReviewUnavailable);
        assert_eq!(
            e.message,
            "too many agent tokens are under review; retry shortly"
        );
        first.await.expect("task").expect("the first review passes");
        assert_eq!(mock.reviews(), 1, "the refused session sent no review");
    }

    #[tokio::test]
    async fn a_refused_token_is_remembered_for_the_refused_ttl_only() {
        let (mock, auth) = reviewer(4, REVIEW_WAIT, Duration::from_secs(1));
        for _ in 0..3 {
            let e = auth
                .authenticate(Some("forged"))
                .await
                .expect_err("refused");
            assert_eq!(e.reason, AuthFailure::BadToken);
        }
        assert_eq!(mock.reviews(), 1, "one review, then the cached verdict");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        auth.authenticate(Some("forged"))
            .await
            .expect_err("refused");
        assert_eq!(mock.reviews(), 2, "reviewed again once the verdict expired");
    }

    #[test]
    fn a_recorded_review_names_the_pod_and_node() {
        let id = identity_of(&recorded("echomesh-agent-pod-a", "a"), "echomesh").expect("ok");
        assert_eq!(id.pod.as_deref(), Some("echomesh-agent-pod-a"));
        assert_eq!(id.node.as_deref(), Some("a"));
        assert!(
            identity_of(&recorded("p", "a"), "").is_ok(),
            "any namespace"
        );
    }

    #[test]
    fn reviews_that_do_not_prove_an_agent_pod_are_refused_with_the_reason() {
        let e = identity_of(&rejected(), "echomesh").expect_err("rejected");
        assert_eq!(e.reason, AuthFailure::BadToken);
        assert!(e.message.starts_with(
            "the API server did not accept the agent token: [invalid bearer token, token audiences"
        ));
        let e = identity_of(&recorded("p", "a"), "other").expect_err("namespace");
        assert_eq!(e.reason, AuthFailure::NotAgentPod);
        assert_eq!(
            e.message,
            "the agent token belongs to \"system:serviceaccount:echomesh:echomesh-agent\", not to a \
             ServiceAccount of namespace \"other\""
        );
        let mut wrong_aud = recorded("p", "a");
        if let Some(s) = wrong_aud.status.as_mut() {
            s.audiences = Some(vec!["https://kubernetes.default.svc".into()]);
        }
        assert_eq!(
            identity_of(&wrong_aud, "echomesh").map_err(|e| e.reason),
            Err(AuthFailure::BadToken)
        );
        let mut no_pod = recorded("p", "a");
        if let Some(u) = no_pod.status.as_mut().and_then(|s| s.user.as_mut()) {
            u.extra = None;
        }
        let e = identity_of(&no_pod, "echomesh").expect_err("no pod");
        assert_eq!(e.reason, AuthFailure::NotAgentPod);
        assert!(e.message.contains("mount a projected ServiceAccount token"));
    }

    #[test]
    fn binding_checks_pod_node_network_and_addresses() {
        let (nodes, pods) = fixtures::three_nodes();
        let (model, _) = ClusterModel::build(&nodes, &pods);
        let who = |pod: &str, node: &str| Identity {
            pod: Some(pod.into()),
            node: Some(node.into()),
        };
        let a_pod = who("echomesh-agent-pod-a", "a");
        assert_eq!(
            bind_to_model(
                &model,
                &a_pod,
                &key("a", Network::Pod),
                &info(&["10.244.0.10"])
            ),
            Ok(())
        );
        let host = who("echomesh-agent-host-a", "a");
        assert_eq!(
            bind_to_model(
                &model,
                &host,
                &key("a", Network::Host),
                &info(&["192.168.0.1"])
            ),
            Ok(())
        );
        let reason = |w: &Identity, k: AgentKey, addrs: &[&str]| {
            bind_to_model(&model, w, &k, &info(addrs)).map_err(|e| e.reason)
        };
        assert_eq!(
            reason(
                &who("stranger", "a"),
                key("a", Network::Pod),
                &["10.244.0.10"]
            ),
            Err(AuthFailure::NotAgentPod)
        );
        assert_eq!(
            reason(
                &who("echomesh-agent-pod-b", "b"),
                key("a", Network::Pod),
                &["10.244.0.10"]
            ),
            Err(AuthFailure::WrongNode)
        );
        // The token's node claim disagrees with the pod's node in the model.
        assert_eq!(
            reason(
                &who("echomesh-agent-pod-a", "b"),
                key("a", Network::Pod),
                &["10.244.0.10"]
            ),
            Err(AuthFailure::WrongNode)
        );
        assert_eq!(
            reason(&a_pod, key("a", Network::Host), &["192.168.0.1"]),
            Err(AuthFailure::WrongNetwork)
        );
        assert_eq!(
            reason(&a_pod, key("a", Network::Pod), &["10.244.1.10"]),
            Err(AuthFailure::ForeignAddress)
        );
        // A pod agent may not announce its node's address; a host agent may.
        assert_eq!(
            reason(&a_pod, key("a", Network::Pod), &["192.168.0.1"]),
            Err(AuthFailure::ForeignAddress)
        );
    }

    #[test]
    fn during_a_rollout_both_pods_of_a_node_may_authenticate_as_themselves() {
        let (nodes, mut pods) = fixtures::three_nodes();
        let mut surge = fixtures::agent_pod("a", false, &["10.244.0.11"]);
        surge.metadata.name = Some("echomesh-agent-pod-a-new".into());
        pods.push(surge);
        let (model, _) = ClusterModel::build(&nodes, &pods);
        let new = Identity {
            pod: Some("echomesh-agent-pod-a-new".into()),
            node: Some("a".into()),
        };
        assert_eq!(
            bind_to_model(
                &model,
                &new,
                &key("a", Network::Pod),
                &info(&["10.244.0.11"])
            ),
            Ok(())
        );
        // Each speaks only for its own addresses.
        assert_eq!(
            bind_to_model(
                &model,
                &new,
                &key("a", Network::Pod),
                &info(&["10.244.0.10"])
            )
            .map_err(|e| e.reason),
            Err(AuthFailure::ForeignAddress)
        );
    }

    #[test]
    fn the_expiry_comes_from_the_token_itself() {
        let enc = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let jwt = format!(
            "{}.{}.sig",
            enc("{\"alg\":\"RS256\"}"),
            enc("{\"exp\":1800000000}")
        );
        assert_eq!(
            token_expiry(&jwt),
            UNIX_EPOCH.checked_add(Duration::from_secs(1_800_000_000))
        );
        assert_eq!(token_expiry("opaque-shared-token"), None);
        assert_eq!(token_expiry("a.!!!.c"), None);
    }
}
