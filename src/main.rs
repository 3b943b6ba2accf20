//! Entry point: parse the command line, run the verb, print the error chain, pick the exit code.

use std::process::ExitCode;

use botgate::cli::Cli;
use botgate::exit;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    botgate::diagnostics::init();
    botgate::install_crypto_provider();
    match botgate::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`botgate token list | head`) is not a failure.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
        || err
            .chain()
            .filter_map(|e| e.downcast_ref::<serde_json::Error>())
            .any(|e| e.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
}
