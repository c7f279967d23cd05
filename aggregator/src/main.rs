//! `echomesh-aggregator`: parse flags, start logging, serve until SIGINT/SIGTERM.
#![forbid(unsafe_code)]

use clap::Parser as _;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    echomesh_aggregator::memory::small_pages_only();
    let cfg = echomesh_aggregator::Config::parse();
    if let Err(msg) = cfg.validate() {
        // Exit 2 with the reason, like any other bad flag.
        <echomesh_aggregator::Config as clap::CommandFactory>::command()
            .error(clap::error::ErrorKind::ValueValidation, msg)
            .exit();
    }
    echomesh_runtime::telemetry::init(cfg.log_format, &cfg.log);
    echomesh_aggregator::run(cfg, echomesh_runtime::shutdown::signal()).await?;
    Ok(())
}
