//! What the session loop needs from a probe engine, as a trait.
//!
//! The real engine needs raw sockets (root or CAP_NET_RAW); behind this trait the loop runs with
//! a scripted engine in tests, so hello, assignments, reports, acks, replay and reconnects are
//! all checked without privileges and under paused time.

use std::future::Future;

use tokio::sync::mpsc;

use crate::prober::stats::EngineCounters;
use crate::prober::{
    self, EngineError, EngineHandle, ProbeSettings, TargetFlip, TargetSpec, TargetWindow,
};

/// A running probe engine, as the session loop drives it.
pub trait ProbeEngine: Send + Sync + Sized {
    /// Replaces the targets and settings; stats of ids still present carry over.
    fn assign(&self, settings: ProbeSettings, targets: Vec<TargetSpec>) -> Result<(), EngineError>;
    /// Every target's counters since the previous call.
    fn take_window(&self) -> impl Future<Output = Vec<TargetWindow>> + Send;
    /// Engine-wide counters so far.
    fn counters(&self) -> impl Future<Output = EngineCounters> + Send;
    /// Reachability changes, as they happen.
    fn flips(&mut self) -> &mut mpsc::Receiver<TargetFlip>;
    /// Stops the engine and waits for it.
    fn shutdown(self) -> impl Future<Output = ()> + Send;
    /// False once the engine stopped on its own: its windows would be empty from then on.
    fn is_running(&self) -> bool {
        true
    }
}

/// Starts an engine on the first assignment (the real one opens its sockets then).
pub trait StartEngine: Send {
    /// The engine started.
    type Engine: ProbeEngine;
    /// Starts probing `targets`; fails at once rather than in the background.
    fn start(
        &mut self,
        settings: ProbeSettings,
        targets: Vec<TargetSpec>,
    ) -> Result<Self::Engine, EngineError>;
}

/// Starts the raw-socket engine ([`prober::start`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawSockets;

impl StartEngine for RawSockets {
    type Engine = EngineHandle;

    fn start(
        &mut self,
        settings: ProbeSettings,
        targets: Vec<TargetSpec>,
    ) -> Result<EngineHandle, EngineError> {
        prober::start(settings, targets)
    }
}

impl ProbeEngine for EngineHandle {
    fn assign(&self, settings: ProbeSettings, targets: Vec<TargetSpec>) -> Result<(), EngineError> {
        EngineHandle::assign(self, settings, targets)
    }

    fn take_window(&self) -> impl Future<Output = Vec<TargetWindow>> + Send {
        EngineHandle::take_window(self)
    }

    fn counters(&self) -> impl Future<Output = EngineCounters> + Send {
        EngineHandle::counters(self)
    }

    fn flips(&mut self) -> &mut mpsc::Receiver<TargetFlip> {
        EngineHandle::flips(self)
    }

    fn shutdown(self) -> impl Future<Output = ()> + Send {
        EngineHandle::shutdown(self)
    }

    fn is_running(&self) -> bool {
        EngineHandle::is_running(self)
    }
}
