//! Runs the `echomesh` command line in-process, as the binary would, for the CLI's integration
//! tests: each test file drives the CLI against a real aggregator and reads back the exit code,
//! stdout and stderr, so that one piece of code does it for all of them.
#![allow(dead_code, unreachable_pub)]

use clap::Parser as _;
use echomesh_cli::Cli;

/// `echomesh --aggregator URL ARGS`: its exit code, stdout and stderr. A command line clap
/// refuses comes back as clap's exit code and message, as from the binary.
pub async fn run(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut argv = vec!["echomesh", "--aggregator", url];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv) {
        Ok(cli) => run_cli(&cli).await,
        Err(e) => (e.exit_code(), String::new(), e.to_string()),
    }
}

/// A parsed command line: its exit code, stdout and stderr.
pub async fn run_cli(cli: &Cli) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = echomesh_cli::run(cli, &mut out, &mut err).await;
    (
        code,
        String::from_utf8(out).expect("utf8"),
        String::from_utf8(err).expect("utf8"),
    )
}
