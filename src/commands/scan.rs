//! `botgate scan PATH... [--git] [--json]`: find leaked botgate secrets and hard-coded
//! `CF-Access-Client-Secret` values; exit 1 if any (so it can gate a commit or a CI job).

use anyhow::Result;

use crate::cli::ScanArgs;
use crate::exit::Failure;
use crate::scan::{self, ScanError};

/// Binary files named one by one on stderr; the rest are counted.
const BINARY_NOTES: usize = 10;

pub fn run(args: ScanArgs) -> Result<()> {
    let mut report = scan::scan_paths(&args.paths).map_err(to_failure)?;
    if args.git {
        for path in &args.paths {
            report.merge(scan::git::scan_history(path).map_err(to_failure)?);
        }
    }
    for u in &report.unreadable {
        eprintln!("warning: cannot read {}: {}", u.path.display(), u.error);
    }
    for b in report.binary_files.iter().take(BINARY_NOTES) {
        eprintln!(
            "note: {} contains NUL bytes (binary); scanned as bytes",
            b.display()
        );
    }
    if report.binary_files.len() > BINARY_NOTES {
        eprintln!(
            "note: … and {} more binary files, scanned as bytes (--json lists them all)",
            report.binary_files.len() - BINARY_NOTES
        );
    }
    if report.binary_files_skipped > 0 {
        eprintln!(
            "note: {} binary file versions in git history not scanned (git shows no content for them)",
            report.binary_files_skipped
        );
    }
    if args.json.json {
        super::print_json(&report)?;
    } else {
        for f in &report.findings {
            println!("{f}");
        }
    }
    match report.findings.len() {
        0 => Ok(()),
        n => Err(Failure::refused(format!(
            "{n} leaked secret{} found in {} scanned files: revoke and rotate {}, then remove {} (from history too)",
            if n == 1 { "" } else { "s" },
            report.files_scanned,
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it" } else { "them" },
        ))),
    }
}

fn to_failure(e: ScanError) -> anyhow::Error {
    match e {
        ScanError::GitSpawn { .. } => Failure::refused(e.to_string()),
        ScanError::Path { .. } | ScanError::NotAFile { .. } | ScanError::Git { .. } => {
            Failure::bad_input(e.to_string())
        }
    }
}
