//! Dispatch from the parsed command line to each verb's module. Each verb builds the services it
//! needs from one `Paths` (+ `Config` + `Store`); none holds domain logic.

mod completions;
mod console;
mod demo;
mod doctor;
pub mod explain;
mod inspect;
mod issuer;
mod keys;
mod logs;
mod pki;
mod policy;
mod rotate;
mod scan;
mod serve;
mod store;
pub mod token;

use std::io::Write;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::paths::Paths;

/// Run one invocation.
pub fn run(cli: Cli) -> Result<()> {
    // These need no state dir (not even HOME): answered before `Paths::resolve`.
    let command = match cli.command {
        Command::Completions { shell } => return completions::completions(shell),
        Command::Man { out } => return completions::man(&out),
        other => other,
    };
    let paths = Paths::resolve(&cli.global)?;
    match command {
        Command::Demo(args) => demo::run(&paths, args),
        Command::Serve(args) => serve::run(&paths, args),
        Command::Token(cmd) => token::run(&paths, cmd),
        Command::Console(args) => console::run(&paths, args),
        Command::Policy(cmd) => policy::run(&paths, cmd),
        Command::Scan(args) => scan::run(args),
        Command::Logs(cmd) => logs::run(&paths, cmd),
        Command::Store(cmd) => store::run(&paths, cmd),
        Command::Keys(cmd) => keys::run(&paths, cmd),
        Command::Issuer(cmd) => issuer::run(&paths, cmd),
        Command::Ca(cmd) => pki::run_ca(&paths, cmd),
        Command::Cert(cmd) => pki::run_cert(&paths, cmd),
        Command::Rotate(cmd) => rotate::run(&paths, cmd),
        Command::Inspect(args) => inspect::run(&paths, args),
        Command::Doctor(json) => doctor::run(&paths, json.json),
        Command::Completions { .. } | Command::Man { .. } => Ok(()),
    }
}

/// A directory given with `--out`: used as it is when it exists, else created (with its
/// parents) readable only by the owner, since it receives keys and secrets.
pub(crate) fn ensure_out_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(crate::exit::Failure::bad_input(format!(
            "--out {}: exists and is not a directory",
            dir.display()
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            crate::exit::Failure::refused(format!("--out {}: cannot create it: {e}", dir.display()))
        })
}

pub(crate) use crate::clock::rfc3339;

/// Print `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Render rows as a left-aligned plain-text table (no escape codes).
pub(crate) fn print_table(headers: &[&str], rows: &[Vec<String>]) -> Result<()> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    let mut line = |cells: &[&str]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(headers)?;
    for row in rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    Ok(())
}
