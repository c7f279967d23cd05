//! `echomesh-aggregator`: parse flags, start logging, serve until SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use clap::Parser as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = echomesh_aggregator::Config::parse();
    if let Err(msg) = cfg.validate() {
        // Exit 2 with the reason, like any other bad flag.
        <echomesh_aggregator::Config as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit();
    }
    echomesh_aggregator::telemetry::init(
        cfg.log_format == echomesh_aggregator::config::LogFormat::Json,
    );
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down");
    };
    echomesh_aggregator::run(cfg, shutdown).await?;
    Ok(())
}
