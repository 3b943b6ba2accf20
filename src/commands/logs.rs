//! `botgate logs export --format logpush|jsonl [--since DURATION]`: print the audit log's
//! events on stdout. Corrupt lines are reported on stderr (with their line number) and skipped;
//! only a missing log is an error.

use std::io::{BufReader, BufWriter, ErrorKind};
use std::path::Path;

use anyhow::{Context, Result};

use crate::audit::export::{self, ExportFormat};
use crate::cli::{self, LogsCommand};
use crate::exit::Failure;
use crate::paths::Paths;

pub fn run(paths: &Paths, cmd: LogsCommand) -> Result<()> {
    match cmd {
        LogsCommand::Export { format, since } => {
            let since = match since {
                Some(s) => Some(chrono::Utc::now() - crate::duration::parse(&s)?),
                None => None,
            };
            let format = match format {
                cli::ExportFormat::Logpush => ExportFormat::Logpush,
                cli::ExportFormat::Jsonl => ExportFormat::Jsonl,
            };
            export_file(&paths.audit_log(), format, since)
        }
    }
}

fn export_file(
    path: &Path,
    format: ExportFormat,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(Failure::refused(format!(
                "no audit log at {} (has the gate run with this --state-dir?)",
                path.display()
            )));
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot open the audit log {}", path.display()));
        }
    };
    let stdout = std::io::stdout().lock();
    let shown = path.display();
    let result = export::export(
        BufReader::new(file),
        BufWriter::new(stdout),
        format,
        since,
        |line, err| {
            eprintln!("warning: {shown}:{line}: skipped a corrupt line ({err})");
        },
    );
    match result {
        Ok(stats) => {
            if stats.corrupt > 0 {
                eprintln!(
                    "warning: {} corrupt line(s) skipped in {shown}",
                    stats.corrupt
                );
            }
            Ok(())
        }
        // `botgate logs export | head` closes the pipe early: that is not a failure.
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot export {shown}")),
    }
}
