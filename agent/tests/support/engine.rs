//! A fake probe engine for tests of the run loop without raw sockets: it records what it is told
//! in a log the test shares, and every window reports one answered probe per current target.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use echomesh_agent::prober::stats::{EngineCounters, TargetStats};
use echomesh_agent::prober::{EngineError, ProbeSettings, TargetFlip, TargetSpec, TargetWindow};
use echomesh_agent::report::{ProbeEngine, StartEngine};
use tokio::sync::mpsc;

/// The RTT of every answered probe.
pub const RTT_NS: u64 = 250_000;

/// What the engine was told, shared with the test.
#[derive(Debug, Default)]
pub struct EngineLog {
    pub started: Vec<(ProbeSettings, Vec<TargetSpec>)>,
    pub assigned: Vec<(ProbeSettings, Vec<TargetSpec>)>,
    pub targets: Vec<TargetSpec>,
    pub windows_taken: u64,
    /// Set to play an engine that died (its task ended).
    pub stopped: bool,
}

impl EngineLog {
    /// Every target list the engine was given, at start and by reassignment.
    pub fn given(&self) -> Vec<Vec<TargetSpec>> {
        self.started
            .iter()
            .chain(&self.assigned)
            .map(|(_, targets)| targets.clone())
            .collect()
    }
}

pub type Shared = Arc<Mutex<EngineLog>>;

pub fn lock(log: &Shared) -> MutexGuard<'_, EngineLog> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

pub struct FakeEngine {
    log: Shared,
    flips: mpsc::Receiver<TargetFlip>,
}

impl ProbeEngine for FakeEngine {
    fn assign(&self, settings: ProbeSettings, targets: Vec<TargetSpec>) -> Result<(), EngineError> {
        let mut l = lock(&self.log);
        l.assigned.push((settings, targets.clone()));
        l.targets = targets;
        Ok(())
    }

    fn take_window(&self) -> impl Future<Output = Vec<TargetWindow>> + Send {
        let mut l = lock(&self.log);
        l.windows_taken += 1;
        let windows: Vec<TargetWindow> = l
            .targets
            .iter()
            .map(|t| {
                let mut stats = TargetStats {
                    sent: 1,
                    received: 1,
                    ..TargetStats::default()
                };
                stats.rtt.record_ns(RTT_NS);
                TargetWindow {
                    id: t.id,
                    addr: t.addr,
                    stats,
                }
            })
            .collect();
        async move { windows }
    }

    async fn counters(&self) -> EngineCounters {
        EngineCounters::default()
    }

    fn flips(&mut self) -> &mut mpsc::Receiver<TargetFlip> {
        &mut self.flips
    }

    async fn shutdown(self) {}

    fn is_running(&self) -> bool {
        !lock(&self.log).stopped
    }
}

/// Starts `FakeEngine`s on one shared log; the first one gets `flips`, when given.
pub struct FakeStarter {
    pub log: Shared,
    pub flips: Option<mpsc::Receiver<TargetFlip>>,
}

impl FakeStarter {
    pub fn new(log: &Shared) -> Self {
        Self {
            log: Arc::clone(log),
            flips: None,
        }
    }
}

impl StartEngine for FakeStarter {
    type Engine = FakeEngine;

    fn start(
        &mut self,
        settings: ProbeSettings,
        targets: Vec<TargetSpec>,
    ) -> Result<FakeEngine, EngineError> {
        let mut l = lock(&self.log);
        l.started.push((settings, targets.clone()));
        l.targets = targets;
        Ok(FakeEngine {
            log: Arc::clone(&self.log),
            flips: self.flips.take().unwrap_or_else(|| mpsc::channel(1).1),
        })
    }
}
