//! `echomesh-agent run`: the Session stream to the aggregator.
//!
//! Split along what changes for different reasons: the flags ([`args`]), how a channel is made
//! ([`connect`]), which reports wait and when they may be replayed ([`replay`]), the translation
//! between engine and protocol ([`wire`]), what the loop needs from an engine ([`engine`]), and
//! the loop itself ([`session`]), and when it stands by for a newer agent ([`standby`]). The loop is generic over the engine and the connector, so the
//! whole protocol is tested over an in-memory gRPC stream with a scripted engine, without root.

pub mod args;
pub mod connect;
pub mod engine;
pub mod guard;
pub mod replay;
pub mod session;
pub mod standby;
pub mod token;
pub mod wire;

use std::future::Future;

pub use args::{RunArgs, RunError};
pub use connect::{ConnectError, Connector, UrlConnector};
pub use engine::{ProbeEngine, RawSockets, StartEngine};
pub use guard::{Guard, GuardArgs};
pub use replay::ReplayBuffer;
pub use session::LoopSettings;

use crate::metrics::{self, AgentMetrics};

/// Runs the agent until `shutdown` resolves, serving `/metrics` and `/healthz` on
/// `--http-listen`.
pub async fn run(args: RunArgs, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listener =
        echomesh_runtime::listen::bind_tcp(args.http_listen).map_err(|source| RunError::Bind {
            addr: args.http_listen,
            source,
        })?;
    let metrics = AgentMetrics::new();
    let http = tokio::spawn(metrics::serve(listener, metrics.clone()));
    let r = run_with(args, metrics, shutdown).await;
    http.abort();
    r
}

/// [`run`] without the HTTP server: the run loop feeds `metrics` (tests and embedding serve it).
pub async fn run_with(
    args: RunArgs,
    metrics: AgentMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let hello = wire::hello(&args, rand::random(), std::time::SystemTime::now())?;
    let connector = UrlConnector::new(&args.aggregator)?
        .with_token(args.agent_token_file.clone().map(token::TokenSource::file))
        .with_tls_ca(args.tls_ca.clone())?;
    session::drive(
        hello,
        loop_settings(&args),
        connector,
        RawSockets,
        metrics,
        shutdown,
    )
    .await
}

/// [`run_with`] over any connector and engine: `--aggregator` and `--http-listen` are ignored.
pub async fn run_over<S: StartEngine, C: Connector>(
    args: &RunArgs,
    connector: C,
    starter: S,
    metrics: AgentMetrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let hello = wire::hello(args, rand::random(), std::time::SystemTime::now())?;
    session::drive(
        hello,
        loop_settings(args),
        connector,
        starter,
        metrics,
        shutdown,
    )
    .await
}

fn loop_settings(args: &RunArgs) -> LoopSettings {
    LoopSettings {
        replay_buffer: args.replay_buffer,
        replay_buffer_bytes: args.replay_buffer_bytes,
        max_backoff: args.max_backoff,
        guard: Guard::new(&args.guard, &args.addresses),
    }
}
