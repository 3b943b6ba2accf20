//! `botgate completions SHELL` and `botgate man --out DIR`: both generated from the one clap
//! definition in `cli.rs`, so they never drift from the real options.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;

/// Print the completion script for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "botgate", &mut std::io::stdout().lock());
    Ok(())
}

/// Write `botgate.1` and one page per subcommand (`botgate-token-create.1` …) into `out`.
pub fn man(out: &Path) -> Result<()> {
    super::ensure_out_dir(out)?;
    clap_mangen::generate_to(Cli::command(), out)
        .with_context(|| format!("cannot write man pages into {}", out.display()))?;
    let count = std::fs::read_dir(out)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "1"))
                .count()
        })
        .unwrap_or(0);
    eprintln!(
        "wrote {count} man pages to {} (try `man -l {}/botgate.1`)",
        out.display(),
        out.display()
    );
    Ok(())
}
