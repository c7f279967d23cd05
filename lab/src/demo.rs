//! `echomesh-lab demo`: build a lab, say what to try, show the live matrix, clean up on exit.
//!
//! The lab is started on a blocking thread while the signal handlers are already installed, so a
//! Ctrl-C during start-up is not lost: start-up finishes (or fails and cleans up), then the lab
//! is dropped, which stops every process and deletes every namespace.

use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::process::Command;
use std::time::Duration;

use crate::lab::{Lab, LabConfig, LabError};

/// How to run the demo.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// The lab.
    pub lab: LabConfig,
    /// How often the matrix is redrawn (zero: never, just wait).
    pub refresh: Duration,
}

/// Runs the demo until `shutdown` completes.
pub async fn run(cfg: DemoConfig, shutdown: impl Future<Output = ()>) -> Result<(), LabError> {
    tokio::pin!(shutdown);
    let lab_cfg = cfg.lab.clone();
    crate::lab::check(&lab_cfg)?;
    eprintln!(
        "echomesh-lab: building a {}-node {} lab ...",
        lab_cfg.nodes,
        lab_cfg.family.describe()
    );
    let mut start = tokio::task::spawn_blocking(move || Lab::start(lab_cfg));
    let started = tokio::select! {
        r = &mut start => r,
        _ = &mut shutdown => {
            eprintln!("echomesh-lab: interrupted during start-up; cleaning up ...");
            if let Ok(Ok(lab)) = start.await {
                stop(lab).await;
            }
            return Ok(());
        }
    };
    let lab = match started {
        Ok(r) => r?,
        Err(join) => {
            return Err(LabError::Aggregator(format!(
                "start-up thread failed: {join}"
            )));
        }
    };
    let mut lab = Some(lab);
    let banner = lab.as_ref().map(banner).unwrap_or_default();
    print!("{banner}");
    let _ = std::io::stdout().flush();

    let mut tick = tokio::time::interval(if cfg.refresh.is_zero() {
        Duration::from_secs(3600)
    } else {
        cfg.refresh
    });
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported_exits = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tick.tick() => {
                let Some(l) = lab.as_mut() else { break };
                let exited = l.exited();
                if exited.len() > reported_exits {
                    for (name, status) in &exited[reported_exits..] {
                        eprintln!(
                            "echomesh-lab: {name} exited ({status}); its log: {}",
                            l.dir().log_file(name).display()
                        );
                    }
                    reported_exits = exited.len();
                }
                if cfg.refresh.is_zero() || !cfg.lab.echomesh {
                    continue;
                }
                let matrix = matrix_command(l);
                let out = tokio::task::spawn_blocking(move || matrix.and_then(|mut c| c.output().ok()))
                    .await
                    .ok()
                    .flatten();
                let text = match out {
                    Some(o) => format!(
                        "{}{}",
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    None => "(could not run `echomesh matrix`)\n".into(),
                };
                if std::io::stdout().is_terminal() {
                    print!("\x1b[2J\x1b[H{banner}\n{text}");
                } else {
                    print!("\n{text}");
                }
                let _ = std::io::stdout().flush();
            }
        }
    }
    eprintln!("echomesh-lab: stopping; removing every process and namespace of the lab ...");
    if let Some(l) = lab.take() {
        stop(l).await;
    }
    eprintln!("echomesh-lab: done, nothing left behind.");
    Ok(())
}

async fn stop(lab: Lab) {
    let _ = tokio::task::spawn_blocking(move || lab.shutdown()).await;
}

fn matrix_command(lab: &Lab) -> Option<Command> {
    let url = lab.grpc_url()?;
    let mut c = Command::new(lab.state().bin_dir.join("echomesh"));
    c.args(["--aggregator", &url, "matrix"]);
    // The demo shows the matrix on its own terminal: keep the CLI's state colours (DOWN red).
    if std::io::stdout().is_terminal() {
        c.env("CLICOLOR_FORCE", "1");
    }
    Some(c)
}

/// What the demo prints once the lab is up: where things are and what to try.
pub fn banner(lab: &Lab) -> String {
    let st = lab.state();
    let p = lab.prefix();
    let nodes = st.plan.nodes.len();
    let cli = st.bin_dir.join("echomesh").display().to_string();
    let me = lab.lab_exe().display().to_string();
    let mut s = format!(
        "echomesh lab {p}: {nodes} nodes (pod + host namespace each, {}), lab files in {}\n",
        st.plan.family().describe(),
        lab.dir().path().display()
    );
    if let Some(a) = &st.aggregator {
        s.push_str(&format!(
            "  aggregator: gRPC {grpc}, HTTP http://{http}/, agents connect to {socket}\n\nTry, from another terminal:\n  export ECHOMESH_AGGREGATOR=http://{grpc}\n  {cli} matrix\n  {cli} status\n  {cli} watch\n  grpcurl -plaintext {grpc} list\n  open http://{http}/ in a browser\n",
            grpc = a.grpc,
            http = a.http,
            socket = a.socket.display(),
        ));
    } else {
        s.push_str("  network only (no aggregator, no agents)\n");
    }
    s.push_str(&format!(
        "Faults, from another terminal (as root):\n  {me} cut node{n} | heal node{n} | loss node{n} 10 | delay node{n} 5ms | clear node{n}\nCtrl-C stops the lab and removes everything ({me} down --prefix {p} if this process is killed).\n",
        n = nodes.min(3),
    ));
    s
}
