//! Entry point: parse the command line, run the verb, print the error chain, pick the exit code.

use std::process::ExitCode;

use botgate::cli::Cli;
use botgate::exit;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    botgate::diagnostics::init();
    match botgate::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(exit::code_for(&err))
        }
    }
}
