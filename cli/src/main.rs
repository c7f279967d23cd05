//! `echomesh`: parse flags, run one command, exit with its code (0 ok, 1 check failed, 2 error,
//! 3 not found; see the library's documentation).
#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() {
    let cli = echomesh_cli::Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("echomesh: cannot start the runtime: {e}");
            std::process::exit(echomesh_cli::EXIT_UNREACHABLE);
        }
    };
    let code = rt.block_on(async {
        let mut out = std::io::stdout();
        let mut err = std::io::stderr();
        echomesh_cli::run(&cli, &mut out, &mut err).await
    });
    // Whatever is still buffered; a reader that went away is not an error.
    if let Err(e) = std::io::Write::flush(&mut std::io::stdout())
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("echomesh: output: {e}");
        std::process::exit(echomesh_cli::EXIT_UNREACHABLE);
    }
    std::process::exit(code);
}
